package shard

import (
	"context"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ensemble-bot/ensemble/cluster"
)

// local is the shard activations of each member: without StopLocal a
// shard's gateway connection would outlive its member's place in the
// cluster, and Discord would see two connections for one shard after the
// handover.
var local cluster.Locals

// closers holds each local activation's grain by PID, for StopLocalIf to
// turn its reader to busy answers before the PoisonPill is queued (see
// grain.closing).
var closers sync.Map // *actor.PID → *grain

// StopLocal stops the shard grains active on a member and waits until each
// has closed its gateway connection, or ctx ends. It is a step of a
// member's drain: stop the keeper first, or it activates the shards again.
// It returns how many shards were stopped.
func StopLocal(ctx context.Context, system *actor.ActorSystem) (int, error) {
	return StopLocalIf(ctx, system, nil)
}

// StopLocalIf is StopLocal for the shards (by identity, see Identity) which
// selects: a member hands over the shards the cluster now places
// elsewhere.
func StopLocalIf(ctx context.Context, system *actor.ActorSystem, which func(identity string) bool) (int, error) {
	return local.Stop(ctx, system, "shards", which, func(pid *actor.PID) {
		if g, ok := closers.Load(pid); ok {
			g.(*grain).beginClose()
		}
		_ = system.Root.PoisonFuture(pid).Wait()
	})
}
