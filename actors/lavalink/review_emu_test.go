//go:build !race

package lavalink

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"

	"github.com/ensemble-bot/ensemble/internal/config"
)

// TestOpenBreakerMoveDestroysOldPlayer (finding 2): a node whose breaker
// opened while its websocket stays up still plays: when its players move,
// the old ones are destroyed there, so no guild has two live players.
func TestOpenBreakerMoveDestroysOldPlayer(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 0.5, MinRequests: 3, ResetTimeout: time.Hour}
	h := newHarness(t, harnessOpts{nodes: 2, breaker: br, timing: Timing{HealthInterval: time.Hour}})
	h.waitUsable(2)
	ss := h.start(4)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 4 })
	onN0 := 0
	for _, s := range ss {
		if h.nodeOf(s) == "n0" {
			onN0++
		}
	}
	if onN0 == 0 {
		t.Fatal("no session on n0")
	}
	// n0 answers 5xx (as seen by the breaker) but its websocket is up.
	for range 8 {
		h.c.report("n0", lavalink.Error{Status: 500})
	}
	h.waitFor("n0's sessions moved to n1", 10*time.Second, func() bool {
		for _, s := range ss {
			if h.nodeOf(s) != "n1" {
				return false
			}
		}
		return true
	})
	h.waitFor("one player per guild, none left on n0", 20*time.Second, func() bool {
		for _, ps := range h.players() {
			if len(ps) != 1 {
				return false
			}
		}
		return len(h.emus["n0"].Players("")) == 0
	})
}

// TestIncidentCountedOnce (finding 7): a node that dies is one failure
// for the breaker: the lost websocket, not also the failed resume.
func TestIncidentCountedOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2, timing: Timing{HealthInterval: time.Hour}})
	h.waitUsable(2)
	h.emus["n0"].Kill()
	// A second failed attempt is a later message through the node actor:
	// whatever it counted for the failed resume try is counted by then
	// (and the retry counts nothing).
	h.waitFor("the resume try and a retry failed", 10*time.Second, func() bool {
		return h.metric("ensemble_lavalink_reconnects_total", "node", "n0", "result", "failed") >= 2
	})
	total := 0.0
	for _, k := range []string{"websocket", "connect", "silent", "timeout", "transport", "rest_5xx", "probe"} {
		total += h.metric("ensemble_lavalink_node_failures_total", "node", "n0", "kind", k)
	}
	if total != 1 {
		t.Fatalf("one outage counted %v times (websocket %v, connect %v)", total,
			h.metric("ensemble_lavalink_node_failures_total", "node", "n0", "kind", "websocket"),
			h.metric("ensemble_lavalink_node_failures_total", "node", "n0", "kind", "connect"))
	}
}

// TestNudgeAfterStopDoesNotRestart (finding 4), against Lavalink: a nudge
// decided before the session stopped the track does not start it again.
func TestNudgeAfterStopDoesNotRestart(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 1, timing: Timing{StallThreshold: time.Hour}})
	h.waitUsable(1)
	ss := h.start(1)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 1 })
	g := ss[0].guild
	gp := h.c.guild(g, false)
	gp.mu.Lock()
	node, gen := gp.node, gp.gen // the watchdog's decision
	gp.mu.Unlock()
	if err := h.c.Stop(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	h.c.nudge(g, gp, node, gen)
	gid, _ := strconv.ParseUint(g, 10, 64)
	for _, p := range h.emus["n0"].Players("") {
		if p.GuildID == gid && p.Track != nil {
			t.Fatalf("a stale nudge restarted the stopped track: %+v", p.Track)
		}
	}
}
