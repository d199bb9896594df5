package guild

import (
	"slices"
	"time"
)

// Deduplication of retried deliveries. A grain call retried after a
// timeout delivers the same interaction twice (PITFALLS.md: a caller
// cannot tell "maybe delivered" from "not delivered"). Every attempt of
// one delivery falls within the shard's delivery deadline (5 s); across
// members, the remote layer may still hand over a queued first attempt
// after its resends (5 tries 2 s apart), about 10 s. dedupWindow covers
// both with margin. Discord's 15-minute token lifetime would be the other
// bound, but no delivery is retried that late, and a busy guild would hold
// 30 times as many IDs for nothing.
const (
	dedupWindow = 30 * time.Second
	// dedupMax bounds a guild taking more than dedupMax interactions per
	// window (34/s): the oldest are forgotten early, which risks a double
	// run only for a retry that is both that late and that busy.
	dedupMax = 1024
	// dedupIndexAt is the size above which lookups use a map: a short
	// slice is smaller and as fast to scan.
	dedupIndexAt = 32
)

// recentIDs is a set of the interaction IDs seen in the last dedupWindow,
// in arrival order, holding nothing (not even a slice) when empty.
type recentIDs struct {
	entries []seenID
	index   map[string]struct{}
}

type seenID struct {
	id string
	// at is when it was seen (monotonic, since Deps.epoch).
	at time.Duration
}

// add reports whether id is new at now, remembering it. now must not go
// backwards between calls (the grain's clock is monotonic).
func (r *recentIDs) add(id string, now time.Duration) bool {
	r.expire(now - dedupWindow)
	if r.contains(id) {
		return false
	}
	if len(r.entries) >= dedupMax {
		r.dropOldest()
	}
	r.entries = append(r.entries, seenID{id: id, at: now})
	switch {
	case r.index != nil:
		r.index[id] = struct{}{}
	case len(r.entries) > dedupIndexAt:
		r.index = make(map[string]struct{}, len(r.entries))
		for _, e := range r.entries {
			r.index[e.id] = struct{}{}
		}
	}
	return true
}

func (r *recentIDs) contains(id string) bool {
	if r.index != nil {
		_, ok := r.index[id]
		return ok
	}
	for _, e := range r.entries {
		if e.id == id {
			return true
		}
	}
	return false
}

// expire forgets the IDs seen at or before cutoff, and gives back memory
// the set no longer needs.
func (r *recentIDs) expire(cutoff time.Duration) {
	for len(r.entries) > 0 && r.entries[0].at <= cutoff {
		r.dropOldest()
	}
	switch n := len(r.entries); {
	case n == 0:
		r.entries, r.index = nil, nil
	case n <= dedupIndexAt/2:
		r.index = nil
		fallthrough
	default:
		if c := cap(r.entries); c > 16 && n < c/4 {
			r.entries = slices.Clone(r.entries)
		}
	}
}

func (r *recentIDs) dropOldest() {
	if r.index != nil {
		delete(r.index, r.entries[0].id)
	}
	r.entries[0] = seenID{} // the backing array must not keep the string
	r.entries = r.entries[1:]
}

func (r *recentIDs) len() int { return len(r.entries) }
