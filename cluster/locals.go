package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Locals is the set of one kind's activations on each member of the
// process. protoactor never stops activations when a member shuts down
// (Shutdown only cancels the system's context), so kinds that must end
// before their member does (a shard's gateway connection, a session's
// pending writes) keep their activations here and are stopped with Stop.
// Keyed by actor system, so that several members in one process (tests)
// stop only their own. The zero value is ready to use.
type Locals struct {
	mu     sync.Mutex
	grains map[*actor.PID]local
}

type local struct {
	system   *actor.ActorSystem
	identity string
}

// Add records an activation of identity on system.
func (l *Locals) Add(system *actor.ActorSystem, pid *actor.PID, identity string) {
	l.mu.Lock()
	if l.grains == nil {
		l.grains = map[*actor.PID]local{}
	}
	l.grains[pid] = local{system, identity}
	l.mu.Unlock()
}

// Remove forgets an activation.
func (l *Locals) Remove(pid *actor.PID) {
	l.mu.Lock()
	delete(l.grains, pid)
	l.mu.Unlock()
}

// Stop runs stop for each activation of system whose identity which
// selects (nil: all), all at once, and waits until each has returned or
// ctx ends. stop must return once the activation has stopped (or cannot).
// It returns how many stopped; what names them in the error ("shards",
// "sessions").
func (l *Locals) Stop(ctx context.Context, system *actor.ActorSystem, what string, which func(identity string) bool, stop func(pid *actor.PID)) (int, error) {
	l.mu.Lock()
	var pids []*actor.PID
	for pid, g := range l.grains {
		if g.system == system && (which == nil || which(g.identity)) {
			pids = append(pids, pid)
		}
	}
	l.mu.Unlock()
	done := make(chan struct{}, len(pids))
	for _, pid := range pids {
		go func() {
			defer func() { done <- struct{}{} }()
			stop(pid)
		}()
	}
	for i := range pids {
		select {
		case <-done:
		case <-ctx.Done():
			return i, fmt.Errorf("stop %s: %d of %d still running: %w", what, len(pids)-i, len(pids), ctx.Err())
		}
	}
	return len(pids), nil
}
