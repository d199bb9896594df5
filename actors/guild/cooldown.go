package guild

import (
	"time"

	"github.com/ensemble-bot/ensemble/internal/recent"
)

// cooldowns are the per-user, per-command cooldowns, owned by one grain:
// a key is in the set while it cools down, so an idle guild holds one or
// two entries, and expired ones go at every take. With one cooldown for
// every command, the oldest entry is the one that ends soonest, so the
// set's eviction of the oldest when full drops the entry that matters
// least.
type cooldowns struct {
	set recent.Set[struct{}]
}

// take returns how long key must still wait at now, or 0 after starting a
// new cooldown of d for it, keeping at most limit entries.
func (c *cooldowns) take(key string, now, d time.Duration, limit int) time.Duration {
	if d <= 0 {
		return 0
	}
	at, added := c.set.Add(key, struct{}{}, now, recent.Bounds{Window: d, Max: limit})
	if added {
		return 0
	}
	return at + d - now
}
