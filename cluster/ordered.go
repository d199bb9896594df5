package cluster

import (
	"hash/fnv"
	"sync"
)

// Ordered runs work in order per key on a fixed set of goroutines. Library
// callbacks (disgo's gateway reader, disgolink's websocket reader) must
// hand events to grains without blocking and without reordering one
// guild's events (a voice server update must not overtake the voice state,
// a track end must not overtake the track start); one slow guild only
// delays the guilds that share its worker.
type Ordered struct {
	queues []chan func()
	wg     sync.WaitGroup
	once   sync.Once
	// mu makes Submit after Close a no-op instead of a send on a closed
	// channel: library readers may still deliver while a node stops.
	mu     sync.RWMutex
	closed bool
}

// NewOrdered starts workers goroutines, each with a queue of depth items.
// Submit blocks when a worker's queue is full (backpressure), so memory is
// bounded.
func NewOrdered(workers, depth int) *Ordered {
	o := &Ordered{queues: make([]chan func(), max(workers, 1))}
	for i := range o.queues {
		q := make(chan func(), max(depth, 1))
		o.queues[i] = q
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			for fn := range q {
				fn()
			}
		}()
	}
	return o
}

// Submit queues fn behind every earlier fn with the same key. After Close
// it drops fn.
func (o *Ordered) Submit(key string, fn func()) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	o.queues[h.Sum32()%uint32(len(o.queues))] <- fn
}

// Close runs what is queued, then stops the workers.
func (o *Ordered) Close() {
	o.once.Do(func() {
		o.mu.Lock()
		o.closed = true
		for _, q := range o.queues {
			close(q)
		}
		o.mu.Unlock()
	})
	o.wg.Wait()
}
