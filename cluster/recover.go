package cluster

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"
)

// GrainPanicked handles a panic a grain handler recovered (r): it logs it,
// turns it into an error for the caller (when err is not nil) and stops
// the activation. protoactor would restart the generated actor without
// ClusterInit, leaving its inner grain nil so every later message panics;
// the next call activates the grain afresh from the store.
func GrainPanicked(ctx actor.Context, log *slog.Logger, what string, r any, err *error) {
	log.Error(what+" panic; stopping the activation", "panic", r, "stack", string(debug.Stack()))
	if err != nil {
		*err = fmt.Errorf("%s: internal error", what)
	}
	ctx.Poison(ctx.Self())
}
