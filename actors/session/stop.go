package session

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
)

// local is the session activations of each member. A session writes its
// snapshot off its mailbox: a member that closed its store with writes
// still on their way would lose the last changes (a restored session would
// miss its voice facts, or its latest queue). StopLocal has the member's
// sessions store what they have and stop first.
var local ecluster.Locals

// named is each activation in local with its guild and logger, for
// StopLocalIf to name the sessions it gave up on.
var named sync.Map // *actor.PID → activation

type activation struct {
	guild string
	log   *slog.Logger
}

// stopReq asks a session to stop once every change it made is stored (or
// its store refused or failed the write).
type stopReq struct{}

// StopLocal has every session active on a member store what it has not
// stored yet and stop, and waits for that, or until ctx ends. It is a
// step of a member's stop, before the store closes. It returns how many
// sessions stopped; those still storing when ctx ends are named in a
// *NotStoredError.
func StopLocal(ctx context.Context, system *actor.ActorSystem) (int, error) {
	return StopLocalIf(ctx, system, nil)
}

// StopLocalIf is StopLocal for the sessions of the guilds which selects:
// a member hands over the sessions the cluster now places elsewhere (their
// new owner restores them from what they stored).
//
// Every wait ends with ctx. A session is done when it has stopped, for
// whatever reason: it is watched, not asked for an answer, because
// something else may stop it first (protoactor poisons the activations a
// membership change moved, a newer activation fences it, a panic), and
// then neither the request nor an answer to it would ever come: the stop
// used to wait for such a session until ctx ended, and a member's drain
// then had no time left for its other steps (it overran
// node.shutdown_timeout). A session that cannot store in time (its store
// write is slow) is left running when ctx ends: it still stops once its
// writes end, in order, so the store keeps what it stored last, and its
// next owner restores that (the next owner's activation fences it).
func StopLocalIf(ctx context.Context, system *actor.ActorSystem, which func(guildID string) bool) (int, error) {
	var mu sync.Mutex
	waiting := map[*actor.PID]bool{} // asked, not stopped (yet)
	stopped := 0
	_, err := local.Stop(ctx, system, "sessions", which, func(pid *actor.PID) {
		mu.Lock()
		waiting[pid] = true
		mu.Unlock()
		ok := awaitStop(ctx, system, pid)
		mu.Lock()
		if ok {
			delete(waiting, pid)
			stopped++
		}
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	if err == nil && len(waiting) == 0 {
		return stopped, nil
	}
	late := &NotStoredError{Err: ctx.Err()}
	if late.Err == nil {
		late.Err = context.DeadlineExceeded // the wait ended with ctx's deadline, a moment before ctx
	}
	for pid := range waiting {
		a, ok := named.Load(pid)
		if !ok {
			continue // it stopped just now
		}
		a.(activation).log.Warn("session not stored in time; left to its next owner, which restores what it stored last")
		late.Guilds = append(late.Guilds, a.(activation).guild)
	}
	slices.Sort(late.Guilds)
	return stopped, late
}

// NotStoredError is StopLocalIf's error when ctx ended before every
// session it asked had stopped: Guilds are those still storing, left
// running to stop once stored, and to their next owner.
type NotStoredError struct {
	Guilds []string
	// Err is ctx's error.
	Err error
}

func (e *NotStoredError) Error() string {
	return fmt.Sprintf("stop sessions: %d not stored in time, left to their next owner (%s): %v",
		len(e.Guilds), strings.Join(e.Guilds, ", "), e.Err)
}

func (e *NotStoredError) Unwrap() error { return e.Err }

// awaitStop asks the session pid to stop once stored and reports whether
// it stopped before ctx's deadline.
func awaitStop(ctx context.Context, system *actor.ActorSystem, pid *actor.PID) bool {
	// Watched before it is asked, as PoisonFuture does: a session that
	// stopped already, or stops first for another reason, ends the wait
	// at once (a watch that reaches a stopped actor is answered
	// Terminated by the dead-letter process).
	// (A future with a negative timeout would never time out.)
	stopped := actor.NewFuture(system, max(time.Until(deadlineOf(ctx)), 0))
	p, _ := system.ProcessRegistry.Get(pid)
	p.SendSystemMessage(pid, &actor.Watch{Watcher: stopped.PID()})
	system.Root.Send(pid, stopReq{})
	return stopped.Wait() == nil
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(10 * time.Second)
}

// register records the activation in local, for StopLocal.
func (g *Grain) register(guild string) {
	local.Add(g.sys, g.self, guild)
	named.Store(g.self, activation{guild: guild, log: g.log})
}

// unregister forgets the activation (it is stopping).
func (g *Grain) unregister() {
	local.Remove(g.self)
	named.Delete(g.self)
}

// stopWhenStored stops the activation once everything changed so far is
// stored, at once when nothing waits to be. A write that failed or was
// refused stops it too (its Stopping makes a last try at a failed one, as
// for any stop). Changes made while the write ran are stored by the lane
// after it before the activation stops, rather than by Stopping's last
// try beside a write still under way, so its writes reach the store in
// order.
func (g *Grain) stopWhenStored() {
	if g.st == nil || g.fenced || !g.unsaved() {
		g.poison()
		return
	}
	var done func(stored bool)
	done = func(stored bool) {
		if stored && !g.fenced && g.unsaved() {
			// written starts the write of these changes right after
			// this.
			g.sv.waiters = append(g.sv.waiters, saveWaiter{version: g.sv.version, done: done})
			return
		}
		g.poison()
	}
	g.sv.waiters = append(g.sv.waiters, saveWaiter{version: g.sv.version, done: done})
	if g.sv.retryArmed {
		// The store was down: try once more now rather than wait.
		g.sv.retryArmed = false
	}
	g.startWrite()
}
