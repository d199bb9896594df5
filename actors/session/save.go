package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// saver writes the session's snapshot, in order and one write at a time,
// off the mailbox. Every change gets a version; a write stores the state
// as it is when the write starts, so it covers every change before it,
// and whoever waits for a change (a reply that must not say "done" before
// it is stored) is released by the first write that covers it. Changes
// made while a write runs are coalesced into the next one.
type saver struct {
	version  uint64 // of the newest change
	written  uint64 // newest version known stored
	inFlight bool
	waiters  []saveWaiter
	// retryArmed: a write failed (the store is down) and a retry is
	// scheduled; meanwhile the session plays from memory. failures counts
	// the failed writes in a row (the retry backoff's attempt).
	retryArmed bool
	failures   int
}

// saveRetryBackoff spaces the retries of a failed write. It grows and is
// jittered so that the sessions of a store that went down do not retry
// in step every second; its cap bounds how long after the store is back
// the state stays unsaved.
var saveRetryBackoff = supervisor.Backoff{Base: time.Second, Max: 5 * time.Second, Jitter: 0.5}

type saveWaiter struct {
	version uint64
	done    func(stored bool)
}

// save records a change and starts storing it. done, if not nil, runs on
// the grain once a write covering the change ended: stored is false when
// it failed (retried later) or was refused (the grain is fenced then).
func (g *Grain) save(done func(stored bool)) {
	g.sv.version++
	if done != nil {
		g.sv.waiters = append(g.sv.waiters, saveWaiter{version: g.sv.version, done: done})
	}
	if !g.sv.retryArmed {
		g.startWrite()
	}
}

// unsaved reports changes not known to be stored.
func (g *Grain) unsaved() bool { return g.sv.written < g.sv.version }

// startWrite writes the current state if a change is not stored and no
// write runs. An empty session deletes its snapshot, so guilds that left
// do not pile up in the store (nor are woken at every start).
func (g *Grain) startWrite() {
	if g.sv.inFlight || g.fenced || !g.unsaved() {
		return
	}
	v, guild, epoch, st := g.sv.version, g.guildID, g.epoch, g.deps.Store
	var op func(context.Context) error
	if g.st.empty() {
		op = func(c context.Context) error { return st.DeleteSession(c, guild, epoch) }
	} else {
		data, err := proto.Marshal(g.st.snapshot(guild, epoch))
		if err != nil {
			g.log.Error("encode snapshot", "err", err)
			return
		}
		op = func(c context.Context) error { return st.SaveSession(c, guild, epoch, data) }
	}
	g.sv.inFlight = true
	g.do(laneStore, func(c context.Context) any { return op(c) }, func(res any) {
		err, _ := res.(error)
		g.written(v, err)
	})
}

// written applies the outcome of the write of version v.
func (g *Grain) written(v uint64, err error) {
	g.sv.inFlight = false
	switch {
	case err == nil:
		g.sv.written = max(g.sv.written, v)
		g.sv.failures = 0
		g.release(v, true)
		g.startWrite() // changes made meanwhile
	case errors.Is(err, store.ErrFenced):
		g.fence()
	default:
		// Keep serving from memory and retry in order (ARCHITECTURE.md, Session grain).
		g.log.Warn("session not saved; will retry", "err", err)
		g.release(v, false)
		if !g.sv.retryArmed {
			d, _ := saveRetryBackoff.Delay(g.sv.failures, rand.Float64())
			g.sv.failures++
			g.sv.retryArmed = true
			g.after(d, retrySave{})
		}
	}
}

// release runs the waiters that version v covers.
func (g *Grain) release(v uint64, stored bool) {
	kept := g.sv.waiters[:0]
	var done []func(bool)
	for _, w := range g.sv.waiters {
		if w.version <= v {
			done = append(done, w.done)
		} else {
			kept = append(kept, w)
		}
	}
	g.sv.waiters = kept
	if len(kept) == 0 {
		g.sv.waiters = nil
	}
	for _, f := range done {
		f(stored)
	}
}

// fence stops an activation a newer one replaced: every waiter hears the
// write was refused, and the grain stops.
func (g *Grain) fence() {
	if g.fenced {
		return
	}
	g.fenced = true
	g.log.Warn("a newer activation owns this session; stopping", "epoch", g.epoch)
	g.poison() // before the answers: a retry must reach a new activation
	waiters := g.sv.waiters
	g.sv.waiters = nil
	for _, w := range waiters {
		w.done(false)
	}
}
