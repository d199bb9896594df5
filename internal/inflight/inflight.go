// Package inflight bounds the interactions a member has taken on and not yet
// acknowledged. Past the bound, the member answers new interactions busy at
// its gateway reader, before they cost it anything more: the backlog behind
// an overloaded member stays short, so the interactions it takes are answered
// quickly and the rest get a fast "busy" instead of a late answer.
//
// An interaction leaves the count when its first answer has been sent, or at
// the latest when Discord's deadline for that answer has passed: an
// interaction that is never answered (a bug, a lost delivery) cannot hold a
// place for longer.
package inflight

import (
	"sync"
	"time"
)

// Limit counts interactions in flight. It is safe for concurrent use: the
// gateway readers acquire, the REST calls that answer release.
type Limit struct {
	max int
	ttl time.Duration
	now func() time.Duration

	mu sync.Mutex
	// live is each interaction in flight, with when it was taken.
	live map[string]time.Duration
	// order is the interactions taken, oldest first, some of them released
	// already; it is trimmed as they expire.
	order []taken
	head  int
}

type taken struct {
	id string
	at time.Duration
}

// New returns a Limit of max interactions, each counted for at most ttl.
func New(max int, ttl time.Duration) *Limit {
	start := time.Now()
	return newLimit(max, ttl, func() time.Duration { return time.Since(start) })
}

func newLimit(max int, ttl time.Duration, now func() time.Duration) *Limit {
	return &Limit{max: max, ttl: ttl, now: now, live: make(map[string]time.Duration)}
}

// Acquire counts interaction id in flight and reports true, or reports false
// when max are in flight already. Acquiring an id in flight is a no-op that
// reports true.
func (l *Limit) Acquire(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	if _, ok := l.live[id]; ok {
		return true
	}
	if len(l.live) >= l.max {
		return false
	}
	l.live[id] = now
	l.order = append(l.order, taken{id: id, at: now})
	return true
}

// Release ends interaction id's flight; an id not in flight is ignored.
func (l *Limit) Release(id string) {
	l.mu.Lock()
	delete(l.live, id)
	l.mu.Unlock()
}

// Len is the number of interactions in flight.
func (l *Limit) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(l.now())
	return len(l.live)
}

// expire forgets the interactions taken ttl or longer ago.
func (l *Limit) expire(now time.Duration) {
	for l.head < len(l.order) && now-l.order[l.head].at >= l.ttl {
		t := l.order[l.head]
		// The same id may have been released and taken again since.
		if at, ok := l.live[t.id]; ok && at == t.at {
			delete(l.live, t.id)
		}
		l.order[l.head] = taken{}
		l.head++
	}
	// Give the slice's front back once it is the larger part.
	if l.head > 64 && l.head*2 > len(l.order) {
		l.order = append(l.order[:0:0], l.order[l.head:]...)
		l.head = 0
	}
}
