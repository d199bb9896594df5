package cluster

import (
	"sync"
)

// Ordered runs work in order per key, each key on its own goroutine while
// it has work. Library callbacks (disgo's gateway reader, disgolink's
// websocket reader) and actors hand events to grains through it: one
// guild's events keep their order (a voice server update must not overtake
// the voice state, a track end must not overtake the track start), Submit
// never blocks, and a slow guild delays only its own events. A key with
// no work holds no goroutine and no memory.
type Ordered struct {
	perKey, maxKeys int

	mu     sync.Mutex
	keys   map[string]*keyQueue
	closed bool
	wg     sync.WaitGroup
}

type keyQueue struct {
	jobs []func()
}

// NewOrdered returns an Ordered that keeps at most perKey jobs waiting or
// running per key, and works on at most maxKeys keys at once (admission
// control: past either, Submit refuses).
func NewOrdered(perKey, maxKeys int) *Ordered {
	return &Ordered{perKey: max(perKey, 1), maxKeys: max(maxKeys, 1), keys: map[string]*keyQueue{}}
}

// Submit queues fn behind every earlier fn with the same key. It reports
// false, and drops fn, when the key already has perKey jobs, when a new
// key would exceed maxKeys, or after Close: the caller answers "busy"
// rather than let a backlog grow.
func (o *Ordered) Submit(key string, fn func()) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	q := o.keys[key]
	if q == nil {
		if len(o.keys) >= o.maxKeys {
			return false
		}
		q = &keyQueue{}
		o.keys[key] = q
		o.wg.Add(1)
		Go(func() { o.run(key, q) })
	} else if len(q.jobs) >= o.perKey {
		return false
	}
	q.jobs = append(q.jobs, fn)
	return true
}

// Pending is how many jobs wait or run for key.
func (o *Ordered) Pending(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if q := o.keys[key]; q != nil {
		return len(q.jobs)
	}
	return 0
}

// run works through one key's jobs and ends when there are none.
func (o *Ordered) run(key string, q *keyQueue) {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		if len(q.jobs) == 0 {
			delete(o.keys, key)
			o.mu.Unlock()
			return
		}
		fn := q.jobs[0]
		o.mu.Unlock()
		fn()
		o.mu.Lock()
		q.jobs[0] = nil
		q.jobs = q.jobs[1:]
		o.mu.Unlock()
	}
}

// Close refuses new work and waits for what is queued to run.
func (o *Ordered) Close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.wg.Wait()
}
