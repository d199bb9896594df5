package lavalink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
)

// placeOn places guilds until n of them are on node, returning those.
func placeOn(t *testing.T, c *Client, node string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n && i < 100; i++ {
		g := fmt.Sprint(5000 + i)
		res, err := c.place(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		if res.node == node {
			out = append(out, g)
		}
	}
	if len(out) < n {
		t.Fatalf("could not place %d guilds on %s", n, node)
	}
	return out
}

// TestNoNodeLostWithoutAlternative (finding 1): a node whose breaker opens
// while no other node can take players keeps its guilds (no NODE_LOST,
// and their Play stays there while its link is up); once another node is
// selectable, they are told to move.
func TestNoNodeLostWithoutAlternative(t *testing.T) {
	healthy := map[string]*atomic.Bool{"a": {}, "b": {}}
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: time.Hour}
	c, rec, _ := newFakeClient(t, healthy, br)
	onA := placeOn(t, c, "a", 2)
	pids := *c.pids.Load()
	c.sys.Root.Send(pids["b"], fakeDown{})
	waitUntil(t, "b down", func() bool { return !c.isUsable("b") })
	c.sys.Root.Send(pids["a"], fakeFail{})
	waitUntil(t, "a open", func() bool { return c.strategyState(t, "a") == supervisor.Open })
	drainEvents(t, c, rec)
	if lost := rec.lostFor("a"); len(lost) != 0 {
		t.Fatalf("NODE_LOST with nowhere to go: %v", lost)
	}
	// The session plays on where it is (its link is up) instead of
	// failing with audio.ErrNoNode.
	res, err := c.place(context.Background(), onA[0])
	if err != nil || res.node != "a" {
		t.Fatalf("place on a degraded-but-connected node: %+v %v", res, err)
	}
	// A guild with no player still gets no node.
	if _, err := c.place(context.Background(), "777"); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("new guild: %v", err)
	}
	// b comes back: now a's guilds move.
	c.sys.Root.Send(pids["b"], fakeUp{})
	waitUntil(t, "NODE_LOST once b is usable", func() bool { return len(rec.lostFor("a")) == len(onA) })
	for _, g := range onA {
		if res, err := c.place(context.Background(), g); err != nil || res.node != "b" {
			t.Fatalf("%s: %+v %v", g, res, err)
		}
	}
}

// TestBreakerRecoversWithoutMoving (finding 1): the only node's breaker
// opens and closes again; its guilds are never told to move.
func TestBreakerRecoversWithoutMoving(t *testing.T) {
	healthy := map[string]*atomic.Bool{"a": {}, "b": {}}
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: 100 * time.Millisecond}
	c, rec, _ := newFakeClient(t, healthy, br)
	onA := placeOn(t, c, "a", 1)
	pids := *c.pids.Load()
	c.sys.Root.Send(pids["b"], fakeDown{})
	waitUntil(t, "b down", func() bool { return !c.isUsable("b") })
	c.sys.Root.Send(pids["a"], fakeFail{})
	waitUntil(t, "a open", func() bool { return c.strategyState(t, "a") == supervisor.Open })
	healthy["a"].Store(true)
	waitUntil(t, "a closed", func() bool { return c.isUsable("a") })
	c.sys.Root.Send(pids["b"], fakeUp{})
	waitUntil(t, "b up", func() bool { return c.isUsable("b") })
	drainEvents(t, c, rec)
	if lost := rec.lostFor("a"); len(lost) != 0 {
		t.Fatalf("NODE_LOST after a recovered with its players: %v", lost)
	}
	if res, _ := c.place(context.Background(), onA[0]); res.node != "a" {
		t.Fatalf("moved to %s", res.node)
	}
}

// TestHalfOpenIsNotUsable (finding 6): a half-open node takes no traffic,
// and a probe that is never answered sends it back to open instead of
// leaving it half-open for ever.
func TestHalfOpenIsNotUsable(t *testing.T) {
	healthy := map[string]*atomic.Bool{"b": {}} // a drops its probes
	healthy["b"].Store(true)
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: 50 * time.Millisecond}
	c, rec, _ := newFakeClientRec(t, healthy, br, &recorder{}, Timing{RequestTimeout: 50 * time.Millisecond})
	pids := *c.pids.Load()
	c.sys.Root.Send(pids["a"], fakeFail{})
	waitUntil(t, "a half-open", func() bool { return c.strategyState(t, "a") == supervisor.HalfOpen })
	if c.isUsable("a") {
		t.Fatal("a half-open node is usable")
	}
	for i := range 20 {
		if res, _ := c.place(context.Background(), fmt.Sprint(9000+i)); res.node == "a" {
			t.Fatal("placed on a half-open node")
		}
	}
	// ProbeTimeout is RequestTimeout + 1 s.
	defer func() {
		if t.Failed() {
			t.Logf("transitions: %v", rec.transitions())
		}
	}()
	waitUntil(t, "a dropped probe to send the breaker from half-open back to open", func() bool {
		return strings.Contains(fmt.Sprint(rec.transitions()), "a:half-open->open")
	})
}

// TestPoolNeverBlocksOnEvent (finding 10): a receiver that does not
// return does not stall the pool actor.
func TestPoolNeverBlocksOnEvent(t *testing.T) {
	healthy := map[string]*atomic.Bool{"a": {}, "b": {}}
	healthy["b"].Store(true)
	rec := &recorder{block: make(chan struct{})}
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: time.Hour}
	c, _, _ := newFakeClientRec(t, healthy, br, rec, Timing{})
	defer close(rec.block) // before Close (cleanup), which waits for the forwarder
	placeOn(t, c, "a", 3)
	pids := *c.pids.Load()
	c.sys.Root.Send(pids["a"], fakeFail{})
	waitUntil(t, "a not usable", func() bool { return !c.isUsable("a") })
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := c.Nodes(ctx)
		cancel()
		if err != nil {
			t.Fatalf("the pool stopped answering while NODE_LOST waited for its receiver: %v", err)
		}
	}
}

// TestForwarderCoalesces: one pending event per guild, the latest, in
// first-queued order.
func TestForwarderCoalesces(t *testing.T) {
	f := newForwarder()
	f.push(&clusterpb.PlayerEvent{GuildId: "1", Node: "a"})
	f.push(&clusterpb.PlayerEvent{GuildId: "2", Node: "a"})
	f.push(&clusterpb.PlayerEvent{GuildId: "1", Node: "b"})
	stop := make(chan struct{})
	got := make(chan string, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(stop, func(ev *clusterpb.PlayerEvent) { got <- ev.GetGuildId() + ev.GetNode() })
	}()
	for _, want := range []string{"1b", "2a"} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %s, want %s", g, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("nothing delivered")
		}
	}
	close(stop)
	<-done
	if len(got) != 0 {
		t.Fatalf("extra events: %d", len(got))
	}
}

// TestCloseWhileCalling (finding 9): Close while sessions call in: no
// race, no panic, and every call after Close fails with audio.ErrNoNode.
func TestCloseWhileCalling(t *testing.T) {
	healthy := map[string]*atomic.Bool{"a": {}, "b": {}}
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: time.Hour}
	c, _, _ := newFakeClient(t, healthy, br)
	// Both nodes open: Play fails at placement, before any REST call
	// (the fake nodes have no Lavalink behind them).
	pids := *c.pids.Load()
	c.sys.Root.Send(pids["a"], fakeFail{})
	c.sys.Root.Send(pids["b"], fakeFail{})
	waitUntil(t, "both open", func() bool { return !c.isUsable("a") && !c.isUsable("b") })
	var wg, calling sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		calling.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			g := fmt.Sprint(100 + i)
			called := sync.OnceFunc(calling.Done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.Play(ctx, g, audio.PlayRequest{})
				_ = c.Pause(ctx, g, true)
				_ = c.Destroy(ctx, g)
				_, _ = c.Nodes(ctx)
				called()
			}
		}()
	}
	calling.Wait() // every caller is in its loop: Close comes while they call
	c.Close()
	close(stop)
	wg.Wait()
	ctx := context.Background()
	if _, err := c.Play(ctx, "1", audio.PlayRequest{}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Play after Close: %v", err)
	}
	if _, err := c.Load(ctx, "x"); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Load after Close: %v", err)
	}
	for name, err := range map[string]error{
		"Pause": c.Pause(ctx, "1", true), "Seek": c.Seek(ctx, "1", 0), "Volume": c.Volume(ctx, "1", 1),
		"Stop": c.Stop(ctx, "1"), "Destroy": c.Destroy(ctx, "1"),
	} {
		if !errors.Is(err, audio.ErrNoNode) {
			t.Fatalf("%s after Close: %v", name, err)
		}
	}
	if c.goAsync(func() {}) {
		t.Fatal("background work started after Close")
	}
	c.Close() // idempotent
}

// drainEvents returns once the pool has handled every message sent to it
// before, and the forwarder has delivered every NODE_LOST the pool queued
// meanwhile: a pool round trip, then a marker through the forwarder, which
// delivers in first-queued order.
func drainEvents(t *testing.T, c *Client, rec *recorder) {
	t.Helper()
	if _, err := c.Nodes(context.Background()); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	c.fwd.push(&clusterpb.PlayerEvent{GuildId: marker})
	waitUntil(t, "the forwarder's marker", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, e := range rec.events {
			if e.GetGuildId() == marker {
				return true
			}
		}
		return false
	})
}

func newBareClient(t *testing.T, onEvent func(*clusterpb.PlayerEvent)) *Client {
	t.Helper()
	c, err := New(Options{BotUserID: "123456789012345678", OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTrackStuckForwardedWhenWatchdogIdle (finding 5): a TrackStuck the
// watchdog will not act on (paused, no voice, no track) reaches the
// session; one it acts on does not.
func TestTrackStuckForwardedWhenWatchdogIdle(t *testing.T) {
	now := time.Now()
	tr := realTrack(t)
	stuck := lavalink.TrackStuckEvent{Track: lavalink.Track{Encoded: tr.Encoded, Info: lavalink.TrackInfo{Identifier: tr.Identifier}}}
	for _, tc := range []struct {
		name          string
		track, paused bool
		connected     bool
		forward       bool
	}{
		{"playing and connected: the watchdog acts", true, false, true, false},
		{"paused", true, true, true, true},
		{"voice not connected", true, false, false, true},
		{"no track", false, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*clusterpb.PlayerEvent
			c := newBareClient(t, func(ev *clusterpb.PlayerEvent) { got = append(got, ev) })
			gp := c.guild("42", true)
			gp.node, gp.link, gp.track, gp.paused = "a", &link{name: "a"}, tc.track, tc.paused
			gp.w.played(now, 0)
			gp.w.observe(now, 0, tc.connected)
			c.playerMessage("a", "42", stuck, now)
			if fwd := len(got) == 1 && got[0].GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK; fwd != tc.forward {
				t.Fatalf("forwarded %v (%d events), want %v", fwd, len(got), tc.forward)
			}
		})
	}
}

// TestNudgeStale (finding 4): a nudge decided before the session acted on
// the player (or before the track ended) does nothing. The player's link
// has no Lavalink behind it: a nudge that went ahead would panic.
func TestNudgeStale(t *testing.T) {
	c := newBareClient(t, nil)
	gp := c.guild("42", true)
	reset := func() {
		gp.node, gp.link, gp.track, gp.paused, gp.gen = "a", &link{name: "a"}, true, false, 7
		gp.req = audio.PlayRequest{Voice: audio.Voice{ChannelID: "800000000000000001"}}
	}
	reset()
	c.setNode("a", gp.link, true, true)
	// reachedREST runs a nudge decided at gen 7 on a; the fake link has
	// no disgolink node, so a nudge that goes ahead panics at its REST
	// call.
	reachedREST := func() (reached bool) {
		defer func() {
			if recover() != nil {
				reached = true
			}
		}()
		c.nudge("42", gp, "a", 7)
		return false
	}
	if !reachedREST() {
		t.Fatal("control: a current nudge did not reach its REST call")
	}
	for _, tc := range []struct {
		name  string
		apply func()
	}{
		{"session acted (gen moved)", func() { gp.gen++ }},
		{"track stopped or ended", func() { gp.track = false }},
		{"paused", func() { gp.paused = true }},
		{"moved to another node", func() { gp.node = "b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reset()
			tc.apply()
			if reachedREST() {
				t.Fatal("a stale nudge re-sent the track")
			}
		})
	}
}

// TestDestroyStraySkipsReplaced (finding 3): a guild now placed (or being
// placed) on the node is not destroyed there; an unreachable node keeps
// the stray.
func TestDestroyStraySkipsReplaced(t *testing.T) {
	c := newBareClient(t, nil)
	gp := c.guild("42", true)
	gp.node = "a"
	if !c.destroyStray("a", "42") {
		t.Fatal("the current player was not treated as the node's player")
	}
	gp.node, gp.pending = "b", "a"
	if !c.destroyStray("a", "42") {
		t.Fatal("a player being created there was not treated as the node's player")
	}
	gp.pending = ""
	if c.destroyStray("a", "42") {
		t.Fatal("a stray on an unreachable node was reported gone")
	}
}

// TestTableLeft (finding 11): strays are forgotten on a confirmed destroy,
// on release after a destroy, when the guild is placed there again, and
// with the node's old session.
func TestTableLeft(t *testing.T) {
	tb := upTable("a", "b")
	tb.place("g1") // a
	tb.place("g2") // b
	tb.release("g2", true)
	if tb.left["b"] != nil {
		t.Fatalf("a destroyed player's guild kept: %v", tb.left)
	}
	tb.nodes["a"].breaker = supervisor.Open
	tb.place("g1") // moves to b
	if !tb.left["a"]["g1"] {
		t.Fatal("the moved player's old node does not list it")
	}
	tb.nodes["a"].breaker = supervisor.Closed
	tb.nodes["b"].breaker = supervisor.Open
	tb.place("g1") // back to a: its player there is the new one
	if tb.left["a"] != nil {
		t.Fatalf("a guild placed again kept as a stray: %v", tb.left)
	}
	tb.nodes["b"].breaker = supervisor.Closed
	tb.leave("b", "g9")
	tb.clearLeft("b")
	if len(tb.left) != 0 {
		t.Fatalf("left %v", tb.left)
	}
}

// TestDialBox (finding 8): a link from an attempt the actor never took is
// closed at shutdown, one finishing after shutdown is refused, and a
// result for another incarnation is not adopted.
func TestDialBox(t *testing.T) {
	b := &dialBox{pending: map[*link]bool{}}
	kept, taken, orphan := &link{name: "k"}, &link{name: "t"}, &link{name: "o"}
	if !b.put(taken) || !b.take(taken) || b.take(taken) {
		t.Fatal("put/take")
	}
	b.put(orphan)
	b.put(kept)
	b.shut(kept)
	if !orphan.closed.Load() || kept.closed.Load() || taken.closed.Load() {
		t.Fatalf("closed: orphan %v kept %v taken %v", orphan.closed.Load(), kept.closed.Load(), taken.closed.Load())
	}
	if b.put(&link{}) {
		t.Fatal("a link was accepted after shutdown")
	}
	a := &nodeActor{box: &dialBox{pending: map[*link]bool{}}}
	late := &link{name: "late"}
	a.connected(nil, connectDone{box: b, link: late}) // an earlier incarnation's result
	if a.link != nil {
		t.Fatal("adopted a link from another incarnation's attempt")
	}
}

// TestLibLoggerFloor (finding 12): disgolink's DEBUG lines (REST bodies
// with voice tokens) never reach the log, whatever its level.
func TestLibLoggerFloor(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "lavalink")
	l := libLogger(base, "n0")
	l.Debug("request body", "body", `{"voice":{"token":"secret-token"}}`)
	l.Info("connected")
	out := buf.String()
	if strings.Contains(out, "secret-token") {
		t.Fatalf("DEBUG line logged: %s", out)
	}
	if !strings.Contains(out, "connected") || !strings.Contains(out, "lib=disgolink") || !strings.Contains(out, "component=lavalink") {
		t.Fatalf("INFO line missing or unlabelled: %s", out)
	}
}
