package session

import "github.com/ensemble-bot/ensemble/cluster/clusterpb"

// replyCache remembers the last answers by request ID. Grain calls are
// retried after a timeout even though the first attempt may still run, so
// without it a slow /play would queue its track twice.
type replyCache struct {
	ids     []string
	replies map[string]*clusterpb.SessionReply
}

const replyCacheSize = 64

func (c *replyCache) get(id string) (*clusterpb.SessionReply, bool) {
	r, ok := c.replies[id]
	return r, ok
}

func (c *replyCache) put(id string, r *clusterpb.SessionReply) {
	if id == "" {
		return
	}
	if c.replies == nil {
		c.replies = make(map[string]*clusterpb.SessionReply, replyCacheSize)
	}
	if len(c.ids) == replyCacheSize {
		delete(c.replies, c.ids[0])
		c.ids = c.ids[1:]
	}
	c.ids = append(c.ids, id)
	c.replies[id] = r
}
