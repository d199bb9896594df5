package guild

import (
	"slices"
	"time"
)

// cooldowns is a bounded, expiring set of per-user, per-command cooldowns,
// owned by one grain (no locking). It is a slice, nil when nothing cools
// down: an idle guild holds one or two entries, for which a map would
// cost ten times the memory, and expired entries go at every take.
type cooldowns struct {
	entries []cooldown
}

type cooldown struct {
	key string
	// until is when it ends (monotonic, since Deps.epoch).
	until time.Duration
}

// take returns how long key must still wait at now, or 0 after starting a
// new cooldown of d for it, keeping at most limit entries.
func (c *cooldowns) take(key string, now, d time.Duration, limit int) time.Duration {
	if d <= 0 {
		return 0
	}
	c.expire(now)
	for _, e := range c.entries {
		if e.key == key {
			return e.until - now
		}
	}
	if len(c.entries) >= limit {
		// All are still cooling down: the one that ends soonest matters
		// least.
		soonest := 0
		for i, e := range c.entries {
			if e.until < c.entries[soonest].until {
				soonest = i
			}
		}
		c.entries = slices.Delete(c.entries, soonest, soonest+1)
	}
	c.entries = append(c.entries, cooldown{key: key, until: now + d})
	return 0
}

// expire drops the entries that ended by now, and gives back memory the
// set no longer needs.
func (c *cooldowns) expire(now time.Duration) {
	c.entries = slices.DeleteFunc(c.entries, func(e cooldown) bool { return e.until <= now })
	switch n := len(c.entries); {
	case n == 0:
		c.entries = nil
	case cap(c.entries) > 16 && n < cap(c.entries)/4:
		c.entries = slices.Clone(c.entries)
	}
}
