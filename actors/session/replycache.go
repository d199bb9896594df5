package session

import (
	"time"

	"github.com/ensemble-bot/ensemble/internal/recent"
)

// replyBounds bound the answers a session remembers by request ID
// (Grain.replies). Grain calls are retried after a timeout even though the
// first attempt may still run, so without them a slow /play would queue
// its track twice. Answers are kept only as long as a caller may still
// retry: the window outlives the guild grain's retries of one call (its
// work timeout, 30 s by default). An idle session holds none.
var replyBounds = recent.Bounds{Window: time.Minute, Max: 64}

// clock is the grain's monotonic clock, for the reply cache.
func (g *Grain) clock() time.Duration { return g.deps.Now().Sub(g.deps.origin) }
