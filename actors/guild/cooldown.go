package guild

import "time"

// cooldowns is a bounded, expiring map of per-user, per-command cooldowns,
// owned by one grain (no locking).
type cooldowns struct {
	limit int
	until map[string]time.Time
}

func newCooldowns(limit int) *cooldowns {
	return &cooldowns{limit: limit, until: make(map[string]time.Time)}
}

// take returns how long key must still wait, or 0 after starting a new
// cooldown of d for it.
func (c *cooldowns) take(key string, now time.Time, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if until, ok := c.until[key]; ok && now.Before(until) {
		return until.Sub(now)
	}
	if len(c.until) >= c.limit {
		c.evict(now)
	}
	c.until[key] = now.Add(d)
	return 0
}

// evict drops expired entries, and if none expired the one that expires
// soonest, so the map never exceeds its limit.
func (c *cooldowns) evict(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, u := range c.until {
		if !now.Before(u) {
			delete(c.until, k)
			continue
		}
		if oldestKey == "" || u.Before(oldest) {
			oldestKey, oldest = k, u
		}
	}
	if len(c.until) >= c.limit && oldestKey != "" {
		delete(c.until, oldestKey)
	}
}
