//go:build !race

package lavalink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

func (h *harness) transitions(node string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.changes {
		if c.Node == node {
			out = append(out, c.From.String()+"->"+c.To.String())
		}
	}
	return out
}

func (h *harness) lostEvents() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST {
			n++
		}
	}
	return n
}

// settle returns once everything the pool did so far has been handled by
// the sessions ss: a pool round trip; a marker through the client's
// forwarder, which delivers NODE_LOST in first-queued order; then one job
// behind each session's earlier events in its ordered queue.
func (h *harness) settle(ss []*fakeSession) {
	h.t.Helper()
	if _, err := h.c.Nodes(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	h.c.fwd.push(&clusterpb.PlayerEvent{GuildId: marker})
	h.waitFor("the forwarder's marker", 10*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events {
			if e.GetGuildId() == marker {
				return true
			}
		}
		return false
	})
	for _, s := range ss {
		done := make(chan struct{})
		if !h.ord.Submit(s.guild, func() { close(done) }) {
			h.t.Fatalf("session %s: queue full", s.guild)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			h.t.Fatalf("session %s: earlier events not handled", s.guild)
		}
	}
}

// advanced reports that guild's player had two playerUpdates with voice
// connected and different positions.
func (h *harness) advanced(guild string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := int64(-1)
	for _, e := range h.events {
		if e.GetGuildId() != guild || e.GetKind() != clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE || !e.GetConnected() {
			continue
		}
		if first < 0 {
			first = e.GetPositionMs()
		} else if e.GetPositionMs() != first {
			return true
		}
	}
	return false
}

// updatedPast reports that every session in ss had a playerUpdate past
// position ms.
func (h *harness) updatedPast(ss []*fakeSession, ms int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range h.events {
		if e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE && e.GetPositionMs() > ms {
			seen[e.GetGuildId()] = true
		}
	}
	for _, s := range ss {
		if !seen[s.guild] {
			return false
		}
	}
	return true
}

// tracksCounted reports that the watchdog counted, on each node's link,
// the playing players of ss placed there.
func (h *harness) tracksCounted(ss []*fakeSession) bool {
	want := map[string]int32{}
	for _, s := range ss {
		want[h.nodeOf(s)]++
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for node, l := range h.c.links {
		if l.tracks.Load() != want[node] {
			return false
		}
	}
	return true
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestBreakerOn5xx: a node answering 5xx to every request opens its
// breaker by the configured rule, its players move, it takes no new
// sessions while open, a probe after the reset timeout finds it still
// failing (open again), and once it heals the next probe closes it. Every
// transition is asserted through the published state and the metrics.
func TestBreakerOn5xx(t *testing.T) {
	br := config.Breaker{Window: 5 * time.Second, FailureRatio: 0.5, MinRequests: 4, ResetTimeout: 400 * time.Millisecond}
	h := newHarness(t, harnessOpts{nodes: 2, breaker: br, timing: Timing{HealthInterval: 100 * time.Millisecond}})
	h.waitUsable(2)
	ss := h.start(10)
	var onN0 []*fakeSession
	for _, s := range ss {
		if h.nodeOf(s) == "n0" {
			onN0 = append(onN0, s)
		}
	}
	if len(onN0) == 0 {
		t.Fatal("no session on n0")
	}
	h.emus["n0"].FailREST(1<<30, 500)
	h.waitFor("n0 open", 10*time.Second, func() bool { return contains(h.transitions("n0"), "closed->open") })
	h.mu.Lock()
	var opened supervisor.Change
	for _, c := range h.changes {
		if c.Node == "n0" && c.To == supervisor.Open {
			opened = c
			break
		}
	}
	h.mu.Unlock()
	// It opened on the failure that first met the rule, not before or after.
	met := func(f, r int) bool { return r >= br.MinRequests && float64(f) >= br.FailureRatio*float64(r) }
	if !met(opened.Failures, opened.Requests) || met(opened.Failures-1, opened.Requests-1) {
		t.Fatalf("opened at %d failures of %d requests; rule: ≥%d requests, ratio %.2f", opened.Failures, opened.Requests, br.MinRequests, br.FailureRatio)
	}
	t.Logf("opened after %d failures in %d requests", opened.Failures, opened.Requests)
	if v := h.metric("ensemble_lavalink_breaker_state", "node", "n0"); v != float64(supervisor.Open) && v != float64(supervisor.HalfOpen) {
		t.Fatalf("breaker gauge %v", v)
	}

	// Its players moved; new sessions avoid it while it is not closed.
	h.waitFor("n0's sessions moved", 10*time.Second, func() bool {
		for _, s := range onN0 {
			if h.nodeOf(s) != "n1" {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	for i := range 5 {
		g := strconv.Itoa(700000000000000000 + i)
		s := &fakeSession{guild: g, track: ss[0].track, voice: audio.Voice{ChannelID: "1", SessionID: "s" + g, Token: "t", Endpoint: "e"}}
		node, err := playNode(h.c.Play(ctx, g, audio.PlayRequest{Track: s.track, Voice: s.voice, Volume: 100}))
		if err != nil || node != "n1" {
			t.Fatalf("new session placed on %q (%v) while n0 is open", node, err)
		}
	}

	// Probed after the reset timeout while still failing: open again.
	h.waitFor("a failed probe", 10*time.Second, func() bool { return contains(h.transitions("n0"), "half-open->open") })
	h.emus["n0"].FailREST(0, 0)
	h.waitFor("n0 closed", 10*time.Second, func() bool { return contains(h.transitions("n0"), "half-open->closed") })
	for _, tr := range [][2]string{{"closed", "open"}, {"open", "half-open"}, {"half-open", "open"}, {"half-open", "closed"}} {
		if v := h.metric("ensemble_lavalink_breaker_transitions_total", "node", "n0", "from", tr[0], "to", tr[1]); v < 1 {
			t.Fatalf("transition %v not counted", tr)
		}
	}
	if v := h.metric("ensemble_lavalink_breaker_state", "node", "n0"); v != float64(supervisor.Closed) {
		t.Fatalf("breaker gauge %v after healing", v)
	}
	if v := h.metric("ensemble_lavalink_node_failures_total", "node", "n0", "kind", "rest_5xx"); v < 1 {
		t.Fatalf("5xx failures counted: %v", v)
	}
	// The old players stayed on n0 (its destroy got a 500 too); once it
	// closed again they were swept.
	h.waitFor("stray players swept from n0", 20*time.Second, func() bool {
		for _, p := range h.emus["n0"].Players("") {
			for _, s := range onN0 {
				if strconv.FormatUint(p.GuildID, 10) == s.guild {
					return false
				}
			}
		}
		return true
	})
	// Sessions that moved stay where they are (no flapping).
	h.settle(onN0)
	for _, s := range onN0 {
		if h.nodeOf(s) != "n1" {
			t.Fatalf("session %s went back to %s", s.guild, h.nodeOf(s))
		}
	}
	t.Logf("n0 transitions: %v", h.transitions("n0"))
}

// waitMovedAndPlaying waits until s plays on another node than from and
// its position advances there.
func (h *harness) waitMovedAndPlaying(s *fakeSession, from string) {
	h.t.Helper()
	gid, _ := strconv.ParseUint(s.guild, 10, 64)
	var first int64 = -1
	h.waitFor("the stalled player to play on another node", 15*time.Second, func() bool {
		if h.nodeOf(s) == from {
			return false
		}
		for _, p := range h.players()[gid] {
			if p.Frozen || p.Track == nil || !p.Connected {
				continue
			}
			if first < 0 {
				first = p.Position
			}
			return p.Position > first+100
		}
		return false
	})
}

// TestWatchdogFrozenPlayer: a player whose position stops (emulator stall,
// no TrackStuck) is nudged, then moved to the other node, where it plays.
func TestWatchdogFrozenPlayer(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2, timing: Timing{StallThreshold: 400 * time.Millisecond},
		emu: lavalinkemu.Config{StuckThreshold: time.Hour}})
	h.waitUsable(2)
	ss := h.start(4)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 4 })
	s := ss[0]
	// The watchdog follows it: voice connected, its position advancing
	// (a first playerUpdate is its baseline).
	h.waitFor("the player advancing", 10*time.Second, func() bool { return h.advanced(s.guild) })
	from := h.nodeOf(s)
	gid, _ := strconv.ParseUint(s.guild, 10, 64)
	if err := h.emus[from].FreezePlayer(gid); err != nil {
		t.Fatal(err)
	}
	h.waitMovedAndPlaying(s, from)
	if v := h.metric("ensemble_lavalink_watchdog_actions_total", "action", "nudge"); v < 1 {
		t.Fatalf("nudges %v", v)
	}
	if v := h.metric("ensemble_lavalink_watchdog_actions_total", "action", "move"); v < 1 {
		t.Fatalf("moves %v", v)
	}
	// The old node still answers, so the stalled player was destroyed there.
	h.waitFor("old player destroyed", 20*time.Second, func() bool {
		for _, p := range h.emus[from].Players("") {
			if p.GuildID == gid {
				return false
			}
		}
		return true
	})
	// Other sessions were left alone.
	for _, o := range ss[1:] {
		if o.plays > 0 {
			t.Fatalf("session %s was replayed", o.guild)
		}
	}
}

// TestWatchdogTrackStuck: Lavalink's TrackStuckEvent drives the same
// escalation at once; the session does not see it while the watchdog acts.
func TestWatchdogTrackStuck(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2, timing: Timing{StallThreshold: time.Hour},
		emu: lavalinkemu.Config{StuckThreshold: 300 * time.Millisecond}})
	h.waitUsable(2)
	ss := h.start(2)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 2 })
	s := ss[0]
	from := h.nodeOf(s)
	gid, _ := strconv.ParseUint(s.guild, 10, 64)
	if err := h.emus[from].FreezePlayer(gid); err != nil {
		t.Fatal(err)
	}
	h.waitMovedAndPlaying(s, from)
	if h.metric("ensemble_lavalink_watchdog_actions_total", "action", "nudge") < 1 ||
		h.metric("ensemble_lavalink_watchdog_actions_total", "action", "move") < 1 {
		t.Fatal("nudge and move not both counted")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK {
			t.Fatalf("TrackStuck reached the session: %v", e)
		}
	}
}

// TestWebsocketDropResumes: a dropped websocket of our own is resumed with
// the session ID; the players never stop and nothing moves.
func TestWebsocketDropResumes(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2})
	h.waitUsable(2)
	ss := h.start(6)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 6 })
	sessions := h.emus["n0"].Sessions()
	if len(sessions) != 1 || !sessions[0].Resuming {
		t.Fatalf("n0 sessions %+v: resuming not enabled", sessions)
	}
	dropAt := time.Now()
	h.emus["n0"].DropWebsockets()
	h.waitFor("resumed", 20*time.Second, func() bool {
		return h.metric("ensemble_lavalink_reconnects_total", "node", "n0", "result", "resumed") >= 1
	})
	after := h.emus["n0"].Sessions()
	if len(after) != 1 || after[0].ID != sessions[0].ID || !after[0].Connected {
		t.Fatalf("after the drop: %+v (before %+v)", after, sessions)
	}
	// Events flow again on the resumed socket.
	h.waitFor("playerUpdates after the resume", 20*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range ss {
			if s.node == "n0" && s.posAt.After(dropAt.Add(200*time.Millisecond)) {
				return true
			}
		}
		return false
	})
	if n := h.lostEvents(); n != 0 {
		t.Fatalf("%d NODE_LOST events for a resumed drop", n)
	}
	for _, s := range ss {
		if s.plays != 0 {
			t.Fatalf("session %s replayed", s.guild)
		}
	}
	// Leaving on purpose ends the sessions: no player plays on for the
	// resume timeout beside the ones a successor creates.
	h.c.Close()
	var left string // what a failure leaves, for its log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sessions left: %s", left)
		}
	})
	h.waitFor("sessions ended on close", 20*time.Second, func() bool {
		n0, n1 := h.emus["n0"].Sessions(), h.emus["n1"].Sessions()
		left = fmt.Sprintf("n0 %+v, n1 %+v", n0, n1)
		return len(n0) == 0 && len(n1) == 0
	})
}

// TestDeadReaderReconnects: a malformed message ends disgolink's reader
// while the status stays CONNECTED; the silence gives it away and the
// node reconnects, resuming its session.
func TestDeadReaderReconnects(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 1, timing: Timing{UpdateSilence: 600 * time.Millisecond}})
	h.waitUsable(1)
	ss := h.start(2)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 2 })
	h.waitFor("the watchdog counting the tracks on the node", 10*time.Second, func() bool { return h.tracksCounted(ss) })
	sid := h.emus["n0"].Sessions()[0].ID
	breakAt := time.Now()
	if err := h.emus["n0"].SendRaw(sid, []byte(`{"op":"playerUpdate","guildId":`)); err != nil {
		t.Fatal(err)
	}
	h.waitFor("silence detected and resumed", 10*time.Second, func() bool {
		return h.metric("ensemble_lavalink_node_failures_total", "node", "n0", "kind", "silent") >= 1 &&
			h.metric("ensemble_lavalink_reconnects_total", "node", "n0", "result", "resumed") >= 1
	})
	h.waitFor("playerUpdates again", 20*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return ss[0].posAt.After(time.Now().Add(-300 * time.Millisecond))
	})
	t.Logf("reader revived %v after the malformed message", time.Since(breakAt).Round(time.Millisecond))
	if n := h.lostEvents(); n != 0 {
		t.Fatalf("%d NODE_LOST events", n)
	}
}

// TestNoNodeUntilOneAppears: with every node down, Play and Load fail with
// audio.ErrNoNode at once; when a node comes up it is connected without a
// restart and playing works.
func TestNoNodeUntilOneAppears(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 1, down: []int{0}, timing: Timing{Reconnect: supervisor.Backoff{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond}}})
	ctx := context.Background()
	voice := audio.Voice{ChannelID: "1", SessionID: "s", Token: "t", Endpoint: "e"}
	start := time.Now()
	if _, err := h.c.Play(ctx, "42", audio.PlayRequest{Voice: voice}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Play with no node: %v", err)
	}
	if _, err := h.c.Load(ctx, "ytsearch:x"); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Load with no node: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("refusals took %v", d)
	}
	h.waitFor("several failed attempts", 10*time.Second, func() bool {
		return h.metric("ensemble_lavalink_reconnects_total", "node", "n0", "result", "failed") >= 2
	})
	if err := h.emus["n0"].Restart(); err != nil {
		t.Fatal(err)
	}
	h.waitUsable(1)
	loaded, err := h.c.Load(ctx, "ytsearch:late node")
	if err != nil {
		t.Fatal(err)
	}
	node, err := playNode(h.c.Play(ctx, "42", audio.PlayRequest{Track: loaded.Tracks[0], Voice: voice, Volume: 100}))
	if err != nil || node != "n0" {
		t.Fatalf("Play after the node appeared: %q %v", node, err)
	}
	if v := h.metric("ensemble_lavalink_reconnects_total", "node", "n0", "result", "failed"); v < 2 {
		t.Fatalf("failed attempts counted: %v", v)
	}
	_ = fmt.Sprint()
}

// TestHungNodeMoves: a node that stops answering without closing anything
// (no TCP reset to notice) is found by the websocket's silence; the quick
// resume try times out and its players move.
func TestHungNodeMoves(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2, timing: Timing{UpdateSilence: 800 * time.Millisecond, ResumeGrace: 500 * time.Millisecond}})
	moved, took := h.hangN0UntilMoved(15 * time.Second)
	t.Logf("%d sessions moved %v after the hang (silence limit 800ms + resume try 500ms)", moved, took)
}

// TestHungNodeFoundByTheLivenessCall: with the websocket's silence limit
// far away (a minute), a node that stops answering while it has players
// is found by the liveness call (one stats call a second, 2 s to answer)
// and its players move.
func TestHungNodeFoundByTheLivenessCall(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2, timing: Timing{UpdateSilence: time.Minute, StatsSilence: time.Minute, ResumeGrace: 500 * time.Millisecond}})
	moved, took := h.hangN0UntilMoved(30 * time.Second)
	if moved == 0 {
		t.Fatal("no session on n0")
	}
	t.Logf("%d sessions moved %v after the hang (liveness 1 s + 2 s, resume try 500ms)", moved, took)
	if v := h.metric("ensemble_lavalink_node_failures_total", "node", "n0", "kind", "hung"); v < 1 {
		t.Fatalf("hung failures counted on n0: %v", v)
	}
}

// hangN0UntilMoved starts six sessions on the harness's two nodes, hangs
// n0 and waits (at most limit) until every session it held plays on n1;
// n0 answers again afterwards. It returns how many moved, and how long
// after the hang.
func (h *harness) hangN0UntilMoved(limit time.Duration) (int, time.Duration) {
	h.waitUsable(2)
	ss := h.start(6)
	h.waitFor("playing", 10*time.Second, func() bool { return len(h.players()) == 6 })
	h.waitFor("the watchdog counting the tracks per node", 10*time.Second, func() bool { return h.tracksCounted(ss) })
	var onN0 []*fakeSession
	for _, s := range ss {
		if h.nodeOf(s) == "n0" {
			onN0 = append(onN0, s)
		}
	}
	hungAt := time.Now()
	h.emus["n0"].Hang(true)
	defer h.emus["n0"].Hang(false)
	h.waitFor("n0's sessions moved", limit, func() bool {
		for _, s := range onN0 {
			if h.nodeOf(s) != "n1" {
				return false
			}
		}
		return true
	})
	return len(onN0), time.Since(hungAt).Round(time.Millisecond)
}
