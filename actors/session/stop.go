package session

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
)

// local is the session activations of each member. A session writes its
// snapshot off its mailbox: a member that closed its store with writes
// still on their way would lose the last changes (a restored session would
// miss its voice facts, or its latest queue). StopLocal flushes and stops
// the member's sessions first.
var local ecluster.Locals

// flushReq asks a session to answer once every change it made is stored
// (or its store refused or failed the write).
type flushReq struct{}

type flushed struct{}

// StopLocal has every session active on a member store what it has not
// stored yet, then stops them, and waits for both, or until ctx ends. It
// is a step of a member's stop, before the store closes. It returns how
// many sessions were stopped.
func StopLocal(ctx context.Context, system *actor.ActorSystem) (int, error) {
	return StopLocalIf(ctx, system, nil)
}

// StopLocalIf is StopLocal for the sessions of the guilds which selects:
// a member hands over the sessions the cluster now places elsewhere (their
// new owner restores them from what they stored).
func StopLocalIf(ctx context.Context, system *actor.ActorSystem, which func(guildID string) bool) (int, error) {
	wait := time.Until(deadlineOf(ctx))
	return local.Stop(ctx, system, "sessions", which, func(pid *actor.PID) {
		_, _ = system.Root.RequestFuture(pid, flushReq{}, wait).Result()
		_ = system.Root.PoisonFuture(pid).Wait()
	})
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(10 * time.Second)
}

// flush answers to once everything changed so far is stored, or at once
// when nothing is waiting to be.
func (g *Grain) flush(to *actor.PID) {
	if g.st == nil || g.fenced || !g.unsaved() {
		g.sys.Root.Send(to, flushed{})
		return
	}
	g.sv.waiters = append(g.sv.waiters, saveWaiter{version: g.sv.version, done: func(bool) { g.sys.Root.Send(to, flushed{}) }})
	if g.sv.retryArmed {
		// The store was down: try once more now rather than wait.
		g.sv.retryArmed = false
	}
	g.startWrite()
}
