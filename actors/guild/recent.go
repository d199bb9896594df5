package guild

import (
	"time"

	"github.com/ensemble-bot/ensemble/internal/recent"
)

// dedupBounds bound the interaction IDs a guild remembers (Grain.seen) to
// drop retried deliveries. A grain call retried after a timeout delivers
// the same interaction twice (protoactor: a caller cannot tell "maybe
// delivered" from "not delivered"). Every attempt of one delivery falls
// within the shard's delivery deadline (5 s); across members, the remote
// layer may still hand over a queued first attempt after its resends (5
// tries 2 s apart), about 10 s. The window covers both with margin.
// Discord's 15-minute token lifetime would be the other bound, but no
// delivery is retried that late, and a busy guild would hold 30 times as
// many IDs for nothing. Max bounds a guild taking more than 1024
// interactions per window (34/s): the oldest are forgotten early, which
// risks a double run only for a retry that is both that late and that
// busy.
var dedupBounds = recent.Bounds{Window: 30 * time.Second, Max: 1024}
