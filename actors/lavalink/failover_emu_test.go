//go:build !race

package lavalink

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

// failover is what one kill measured.
type failover struct {
	sessions, moved int
	// resumeMs: kill → the player playing on its new node (Play returned).
	resumeMs []float64
	// posErrMs: the position each moved player was created at, minus where
	// its track would have been at that moment had nothing happened.
	posErrMs []float64
	// serverErrMs: the same, read from the surviving emulators once every
	// player had moved.
	serverErrMs []float64
}

// runFailover plays n sessions over three nodes, kills the busiest node and
// waits until each of its sessions plays on a survivor.
func runFailover(t testing.TB, n int) failover {
	h := newHarness(t, harnessOpts{nodes: 3})
	h.waitUsable(3)
	ss := h.start(n)
	h.waitFor("every session playing", 30*time.Second, func() bool {
		playing := 0
		for _, ps := range h.players() {
			if len(ps) == 1 && ps[0].Track != nil && ps[0].Connected && !ps[0].Paused {
				playing++
			}
		}
		return playing == n
	})
	// Positions move on; playerUpdates reach the sessions.
	h.waitFor("a playerUpdate with a position for every session", 30*time.Second, func() bool {
		return h.updatedPast(ss, 0)
	})

	perNode := map[string]int{}
	for _, s := range ss {
		perNode[h.nodeOf(s)]++
	}
	victim := ""
	for node, c := range perNode {
		if victim == "" || c > perNode[victim] {
			victim = node
		}
	}
	before := map[string]int64{}
	for _, p := range h.emus[victim].Players("") {
		before[strconv.FormatUint(p.GuildID, 10)] = p.Position
	}
	killAt := time.Now()
	h.emus[victim].Kill()

	var moved []*fakeSession
	for _, s := range ss {
		if _, ok := before[s.guild]; ok {
			moved = append(moved, s)
		}
	}
	h.waitFor("every session of the killed node resumed elsewhere", 30*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range moved {
			if s.node == victim || s.resumedAt.Before(killAt) {
				return false
			}
		}
		return true
	})
	res := failover{sessions: n, moved: len(moved)}
	h.mu.Lock()
	for _, s := range moved {
		res.resumeMs = append(res.resumeMs, float64(s.resumedAt.Sub(killAt).Microseconds())/1000)
		// sentPos was computed just before the Play that placed it.
		sentAt := s.posAt
		want := before[s.guild] + sentAt.Sub(killAt).Milliseconds()
		res.posErrMs = append(res.posErrMs, float64(s.sentPos.Milliseconds()-want))
	}
	h.mu.Unlock()

	// The emulators' own view: one playing player per guild, none lost,
	// at the position the track would have had without the kill.
	now := time.Now()
	ps := h.players()
	for _, s := range ss {
		gid, _ := strconv.ParseUint(s.guild, 10, 64)
		got := ps[gid]
		if len(got) != 1 || got[0].Track == nil || !got[0].Connected || got[0].Paused {
			t.Fatalf("guild %s after the kill: %+v", s.guild, got)
		}
		if at, ok := before[s.guild]; ok {
			want := at + now.Sub(killAt).Milliseconds()
			res.serverErrMs = append(res.serverErrMs, float64(got[0].Position-want))
			if got[0].Volume != 80 {
				t.Fatalf("guild %s: volume %d after the move", s.guild, got[0].Volume)
			}
			if got[0].Voice.SessionID != s.voice.SessionID || got[0].Voice.ChannelID != s.voice.ChannelID {
				t.Fatalf("guild %s: voice %+v after the move", s.guild, got[0].Voice)
			}
		}
	}
	// metric returns the first series that matches: name the victim's
	// own series (every from/to pair starts at zero).
	migrated := 0.0
	for node := range h.emus {
		if node != victim {
			migrated += h.metric("ensemble_lavalink_player_migrations_total", "from", victim, "to", node)
		}
	}
	if migrated == 0 {
		t.Fatalf("no migration from %s counted", victim)
	}
	return res
}

func (f failover) report() string {
	abs := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = math.Abs(x)
		}
		return out
	}
	return fmt.Sprintf("%d sessions, %d moved; kill→resumed p50 %.0f ms p99 %.0f ms max %.0f ms; "+
		"position error |p50| %.0f ms |p99| %.0f ms |max| %.0f ms (server view |p99| %.0f ms |max| %.0f ms)",
		f.sessions, f.moved, percentile(f.resumeMs, .5), percentile(f.resumeMs, .99), percentile(f.resumeMs, 1),
		percentile(abs(f.posErrMs), .5), percentile(abs(f.posErrMs), .99), percentile(abs(f.posErrMs), 1),
		percentile(abs(f.serverErrMs), .99), percentile(abs(f.serverErrMs), 1))
}

// TestKillNodeMoves200Sessions: killing the node that plays a third of 200
// sessions moves every one of them to the survivors, each at its position
// (within 1 s of where its track would be), none lost or doubled.
func TestKillNodeMoves200Sessions(t *testing.T) {
	res := runFailover(t, 200)
	t.Log(res.report())
	if res.moved < 50 {
		t.Fatalf("only %d sessions on the killed node", res.moved)
	}
	for i, e := range res.serverErrMs {
		if math.Abs(e) > 1000 {
			t.Fatalf("session %d resumed %.0f ms off its position", i, e)
		}
	}
}

// BenchmarkFailover200 reports kill → last player resumed and the
// position error over 200 sessions on three emulated nodes.
//
//	go test -run '^$' -bench Failover200 -benchtime 5x ./actors/lavalink/
func BenchmarkFailover200(b *testing.B) {
	var all failover
	var last []float64 // per kill: kill → the last of its players resumed
	for range b.N {
		r := runFailover(b, 200)
		last = append(last, percentile(r.resumeMs, 1))
		all.sessions, all.moved = r.sessions, all.moved+r.moved
		all.resumeMs = append(all.resumeMs, r.resumeMs...)
		all.posErrMs = append(all.posErrMs, r.posErrMs...)
		all.serverErrMs = append(all.serverErrMs, r.serverErrMs...)
	}
	abs := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = math.Abs(x)
		}
		return out
	}
	b.ReportMetric(percentile(last, .5), "last-resumed-p50-ms")
	b.ReportMetric(percentile(last, .99), "last-resumed-p99-ms")
	b.ReportMetric(percentile(all.resumeMs, .5), "resume-p50-ms")
	b.ReportMetric(percentile(all.resumeMs, .99), "resume-p99-ms")
	b.ReportMetric(percentile(abs(all.serverErrMs), .5), "poserr-p50-ms")
	b.ReportMetric(percentile(abs(all.serverErrMs), .99), "poserr-p99-ms")
	b.Log(all.report())
	b.Logf("kill → last player resumed, per kill: %v ms", last)
}
