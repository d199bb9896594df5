package session

import (
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// replyCache remembers recent answers by request ID. Grain calls are
// retried after a timeout even though the first attempt may still run, so
// without it a slow /play would queue its track twice. Entries are kept
// only as long as a caller may still retry, and at most replyCacheSize of
// them: an idle session holds none.
type replyCache struct {
	entries []cachedReply
}

type cachedReply struct {
	id    string
	at    time.Time
	reply *clusterpb.SessionReply
}

const (
	replyCacheSize = 64
	// replyCacheTTL outlives the guild grain's retries of one call (its
	// work timeout, 30 s by default).
	replyCacheTTL = time.Minute
)

func (c *replyCache) get(id string, now time.Time) (*clusterpb.SessionReply, bool) {
	c.expire(now)
	for _, e := range c.entries {
		if e.id == id {
			return e.reply, true
		}
	}
	return nil, false
}

func (c *replyCache) put(id string, r *clusterpb.SessionReply, now time.Time) {
	if id == "" {
		return
	}
	c.expire(now)
	if len(c.entries) == replyCacheSize {
		c.entries = append(c.entries[:0], c.entries[1:]...)
	}
	c.entries = append(c.entries, cachedReply{id: id, at: now, reply: r})
}

// expire drops entries past their TTL (the oldest come first).
func (c *replyCache) expire(now time.Time) {
	n := 0
	for n < len(c.entries) && now.Sub(c.entries[n].at) > replyCacheTTL {
		n++
	}
	if n == len(c.entries) {
		c.entries = nil
		return
	}
	c.entries = c.entries[n:]
}
