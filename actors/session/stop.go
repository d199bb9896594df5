package session

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// protoactor never stops activations when a member shuts down, and a
// session writes its snapshot off its mailbox: a member that closed its
// store with writes still on their way would lose the last changes (a
// restored session would miss its voice facts, or its latest queue).
// StopLocal flushes and stops the member's sessions first. Keyed by actor
// system, so that several members in one process (tests) stop only their
// own.
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

// flushReq asks a session to answer once every change it made is stored
// (or its store refused or failed the write).
type flushReq struct{}

type flushed struct{}

// StopLocal has every session active on a member store what it has not
// stored yet, then stops them, and waits for both, or until ctx ends. It
// is a step of a member's stop, before the store closes. It returns how
// many sessions were stopped.
func StopLocal(ctx context.Context, system *actor.ActorSystem) (int, error) {
	local.Lock()
	var pids []*actor.PID
	for pid, sys := range local.grains {
		if sys == system {
			pids = append(pids, pid)
		}
	}
	local.Unlock()
	wait := time.Until(deadlineOf(ctx))
	done := make(chan struct{}, len(pids))
	for _, pid := range pids {
		go func() {
			defer func() { done <- struct{}{} }()
			_, _ = system.Root.RequestFuture(pid, flushReq{}, wait).Result()
			_ = system.Root.PoisonFuture(pid).Wait()
		}()
	}
	for i := range pids {
		select {
		case <-done:
		case <-ctx.Done():
			return i, fmt.Errorf("stop sessions: %d of %d still storing: %w", len(pids)-i, len(pids), ctx.Err())
		}
	}
	return len(pids), nil
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
