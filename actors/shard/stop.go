package shard

import (
	"context"
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// protoactor never stops activations when a member shuts down (Shutdown
// only cancels the system's context), so without StopLocal a shard's
// gateway connection would outlive its member's place in the cluster and
// Discord would see two connections for one shard after the handover.
// Keyed by actor system, so that several members in one process (tests)
// stop only their own shards.
var local = struct {
	sync.Mutex
	grains map[*actor.PID]*actor.ActorSystem
}{grains: map[*actor.PID]*actor.ActorSystem{}}

func register(system *actor.ActorSystem, pid *actor.PID) {
	local.Lock()
	local.grains[pid] = system
	local.Unlock()
}

func unregister(pid *actor.PID) {
	local.Lock()
	delete(local.grains, pid)
	local.Unlock()
}

// StopLocal stops the shard grains active on a member and waits until each
// has closed its gateway connection, or ctx ends. It is a step of a
// member's drain: stop the keeper first, or it activates the shards again.
// It returns how many shards were stopped.
func StopLocal(ctx context.Context, system *actor.ActorSystem) (int, error) {
	local.Lock()
	var pids []*actor.PID
	for pid, sys := range local.grains {
		if sys == system {
			pids = append(pids, pid)
		}
	}
	local.Unlock()
	done := make(chan struct{}, len(pids))
	for _, pid := range pids {
		f := system.Root.PoisonFuture(pid)
		go func() {
			_ = f.Wait()
			done <- struct{}{}
		}()
	}
	for i := range pids {
		select {
		case <-done:
		case <-ctx.Done():
			return i, fmt.Errorf("stop shards: %d of %d still running: %w", len(pids)-i, len(pids), ctx.Err())
		}
	}
	return len(pids), nil
}
