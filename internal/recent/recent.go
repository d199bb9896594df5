// Package recent provides Set, the bounded, expiring set of keys a grain
// keeps about the recent past: the interaction IDs it has seen (to drop a
// retried delivery), the answers it gave by request ID (to repeat one), or
// the commands each member used (to space them).
package recent

import (
	"slices"
	"time"
)

// indexAt is the size above which lookups use a map: a short slice is
// smaller and as fast to scan.
const indexAt = 32

// Bounds are how long and how many keys a Set keeps. A Set is given them
// at each call instead of holding them, so that an empty one costs two
// words: grains keep sets whether or not anything happens.
type Bounds struct {
	// Window is how long a key is kept after it was added.
	Window time.Duration
	// Max is the most keys kept (at least one); past it the oldest is
	// forgotten early.
	Max int
}

// Set is a set of keys, each with a value, in the order they were added.
// It forgets a key Window after it was added and keeps at most Max keys.
// The zero value is empty and holds no memory, and a Set gives memory back
// as its keys expire. Times are readings of a monotonic clock (durations
// since any fixed origin) that never go backwards between calls. A Set is
// owned by one goroutine (a grain's).
type Set[V any] struct {
	entries []entry[V]
	idx     *index
}

type entry[V any] struct {
	// v comes first: a zero-size V last would be padded.
	v   V
	key string
	at  time.Duration
}

// index finds a key's entry once the set is large.
type index struct {
	// pos is each key's position, counted from the first entry the index
	// saw; base is the position of entries[0].
	pos  map[string]int
	base int
}

// Add adds key with v at now, unless the set holds key already. It returns
// when key was added, and whether that was now.
func (s *Set[V]) Add(key string, v V, now time.Duration, b Bounds) (at time.Duration, added bool) {
	s.Expire(now, b)
	if i, ok := s.find(key); ok {
		return s.entries[i].at, false
	}
	if len(s.entries) >= max(b.Max, 1) {
		s.dropOldest()
	}
	s.entries = append(s.entries, entry[V]{v: v, key: key, at: now})
	switch {
	case s.idx != nil:
		s.idx.pos[key] = s.idx.base + len(s.entries) - 1
	case len(s.entries) > indexAt:
		s.idx = &index{pos: make(map[string]int, len(s.entries))}
		for i, e := range s.entries {
			s.idx.pos[e.key] = i
		}
	}
	return now, true
}

// Get returns key's value if the set holds key at now.
func (s *Set[V]) Get(key string, now time.Duration, b Bounds) (v V, ok bool) {
	s.Expire(now, b)
	i, ok := s.find(key)
	if !ok {
		return v, false
	}
	return s.entries[i].v, true
}

// Len is the number of keys held, those that expired since the last call
// included.
func (s *Set[V]) Len() int { return len(s.entries) }

// Expire forgets the keys added at or before now−b.Window, and gives back
// memory the set no longer needs.
func (s *Set[V]) Expire(now time.Duration, b Bounds) {
	cutoff := now - b.Window
	for len(s.entries) > 0 && s.entries[0].at <= cutoff {
		s.dropOldest()
	}
	switch n := len(s.entries); {
	case n == 0:
		s.entries, s.idx = nil, nil
	case n <= indexAt/2:
		s.idx = nil
		fallthrough
	default:
		if c := cap(s.entries); c > 16 && n < c/4 {
			s.entries = slices.Clone(s.entries)
		}
	}
}

func (s *Set[V]) find(key string) (int, bool) {
	if s.idx != nil {
		p, ok := s.idx.pos[key]
		return p - s.idx.base, ok
	}
	for i, e := range s.entries {
		if e.key == key {
			return i, true
		}
	}
	return 0, false
}

func (s *Set[V]) dropOldest() {
	if s.idx != nil {
		delete(s.idx.pos, s.entries[0].key)
		s.idx.base++
	}
	s.entries[0] = entry[V]{} // the backing array must not keep the key or the value
	s.entries = s.entries[1:]
}
