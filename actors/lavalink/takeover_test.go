package lavalink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
)

// oldPlayer is a player a previous activation left in another session:
// the emulator catalogue's track (real encoding), the play ID the
// previous activation sent as userData, at pos.
func oldPlayer(t *testing.T, g snowflake.ID, playID string, pos time.Duration) lavalink.Player {
	t.Helper()
	tr := realTrack(t)
	lt := lavalink.Track{Encoded: tr.Encoded, Info: lavalink.TrackInfo{Identifier: tr.Identifier, Title: tr.Title, Author: tr.Author,
		Length: lavalink.Duration(tr.Length.Milliseconds()), SourceName: tr.SourceName, Position: lavalink.Duration(pos.Milliseconds())}}
	lt, err := lt.WithUserData(playUserData{PlayID: playID})
	if err != nil {
		t.Fatal(err)
	}
	return lavalink.Player{GuildID: g, Track: &lt, Volume: 80,
		State: lavalink.PlayerState{Position: lavalink.Duration(pos.Milliseconds()), Time: lavalink.Timestamp{Time: time.Now()}, Connected: true}}
}

// TestFakeLinkTakeOver (under -race): TakeOver reads and destroys a player
// of another Lavalink session through this member's link to the node; a
// player already gone, or held by this member's own session, is nothing to
// take over; a failure leaves the player and says so; an unreachable or
// unknown node is audio.ErrNoNode.
func TestFakeLinkTakeOver(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, _ := newFakeLinkClient(t, br, Timing{})
	ctx := context.Background()
	g := "900000000000000031"
	gid := snowflake.MustParse(g)
	a := servers["a"]
	a.addForeign("dead-s1", oldPlayer(t, gid, "3.7", 42*time.Second))

	before := time.Now()
	st, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "dead-s1"})
	if err != nil || !ok {
		t.Fatalf("TakeOver = %v, %v", ok, err)
	}
	if st.Identifier != realTrack(t).Identifier || st.PlayID != "3.7" || st.Position != 42*time.Second || st.Paused || st.At.Before(before) {
		t.Fatalf("taken-over state %+v", st)
	}
	if a.hasForeign("dead-s1", gid) {
		t.Fatal("the old player was not destroyed")
	}
	if log := a.foreignLog(); !slices.Equal(log, []string{"GET dead-s1", "DELETE dead-s1"}) {
		t.Fatalf("calls %v", log)
	}
	if v := counterValue(t, c.m.takeovers.WithLabelValues("a", "taken")); v != 1 {
		t.Fatalf("takeovers counted: %v", v)
	}

	// Gone already (its player, or its whole session): nothing to do, no
	// error, no destroy.
	for _, sid := range []string{"dead-s1", "never-s9"} {
		if st, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: sid}); ok || err != nil || st != (audio.PlayerState{}) {
			t.Fatalf("TakeOver of a gone player in %s = %+v, %v, %v", sid, st, ok, err)
		}
	}
	// (An unknown session may be one waiting for a resume: after each of
	// claimTries claims that did not resume it, a read; then it is gone.)
	if log := a.foreignLog(); !slices.Equal(log[2:], []string{"GET dead-s1", "GET never-s9", "GET never-s9", "GET never-s9", "GET never-s9"}) {
		t.Fatalf("calls for gone players %v", log[2:])
	}

	// This member's own session: its player is this client's (Play
	// replaces it), nothing is read or destroyed.
	h, err := c.Play(ctx, g, playReq(t))
	if err != nil {
		t.Fatal(err)
	}
	own := servers[h.Node]
	if h.Session != h.Node+"-s1" {
		t.Fatalf("Play's holder %+v, want the node's session", h)
	}
	calls := len(own.foreignLog())
	if _, ok, err := c.TakeOver(ctx, g, h); ok || err != nil {
		t.Fatalf("TakeOver of our own session = %v, %v", ok, err)
	}
	if _, d, has, _ := own.counts(gid); d != 0 || !has || len(own.foreignLog()) != calls {
		t.Fatalf("our own player was touched: %d destroys, present %v, calls %v", d, has, own.foreignLog())
	}

	// A failing server: the error says the server refused, and the old
	// player is left (the session falls back to its estimate).
	a.addForeign("dead-s2", oldPlayer(t, gid, "5.1", time.Second))
	a.mu.Lock()
	a.failForeign = 500
	a.mu.Unlock()
	if _, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "dead-s2"}); ok || !errors.Is(err, audio.ErrRefused) || errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("TakeOver on a failing server = %v, %v", ok, err)
	}
	a.mu.Lock()
	a.failForeign = 0
	a.mu.Unlock()
	if !a.hasForeign("dead-s2", gid) {
		t.Fatal("a failed read destroyed the player")
	}

	// Unreachable or unknown nodes.
	if _, _, err := c.TakeOver(ctx, g, audio.Holder{Node: "zz", Session: "x"}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("TakeOver on an unknown node: %v", err)
	}
	servers["b"].setDown(true)
	c.sendNode("b", wsClosed{})
	waitUntil(t, "b down", func() bool { _, up := c.liveLink("b"); return !up })
	if _, _, err := c.TakeOver(ctx, g, audio.Holder{Node: "b", Session: "x"}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("TakeOver on a node that is down: %v", err)
	}
	if _, ok, err := c.TakeOver(ctx, g, audio.Holder{}); ok || err != nil {
		t.Fatalf("TakeOver of no holder = %v, %v", ok, err)
	}
}

// TestFakeLinkTakeOverDeadSession (under -race): a session waiting for a
// resume (its member died) answers REST with 404 "Session not found";
// TakeOver resumes it (a claim), reads and destroys the player, and lets
// it wait again a linger later. A session the claim cannot resume is
// gone; a claim that fails leaves the player and says so.
func TestFakeLinkTakeOverDeadSession(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, _ := newFakeLinkClient(t, br, Timing{ClaimLinger: 20 * time.Millisecond})
	ctx := context.Background()
	a := servers["a"]
	g := "900000000000000032"
	gid := snowflake.MustParse(g)
	a.addForeign("dead-s1", oldPlayer(t, gid, "2.9", 7*time.Second))
	a.mu.Lock()
	a.waiting["dead-s1"] = true
	a.mu.Unlock()

	st, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "dead-s1"})
	if err != nil || !ok || st.PlayID != "2.9" || st.Position != 7*time.Second {
		t.Fatalf("TakeOver of a dead session's player = %+v, %v, %v", st, ok, err)
	}
	if a.hasForeign("dead-s1", gid) {
		t.Fatal("the dead session's player was not destroyed")
	}
	if log := a.foreignLog(); !slices.Equal(log, []string{"GET dead-s1", "GET dead-s1", "DELETE dead-s1"}) {
		t.Fatalf("calls %v: a 404, then the read and the destroy while resumed", log)
	}
	waitUntil(t, "the claim released after its linger", func() bool { w, _ := a.isWaiting("dead-s1"); return w })
	if _, n := a.isWaiting("dead-s1"); n != 1 {
		t.Fatalf("%d resumes, want 1", n)
	}

	// The session drops between the read and the destroy (its member
	// drains): the destroy's "Session not found" is not "gone", the
	// session is claimed and the player destroyed.
	a.addForeign("drain-s5", oldPlayer(t, gid, "4.2", 3*time.Second))
	a.mu.Lock()
	a.dropAfterRead = map[string]bool{"drain-s5": true}
	a.mu.Unlock()
	if st, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "drain-s5"}); err != nil || !ok || st.PlayID != "4.2" {
		t.Fatalf("TakeOver of a session that drops after the read = %+v, %v, %v", st, ok, err)
	}
	if a.hasForeign("drain-s5", gid) {
		t.Fatal("the player of a session that dropped between the read and the destroy plays on")
	}
	if log := a.foreignLog(); !slices.Equal(log[len(log)-3:], []string{"GET drain-s5", "DELETE drain-s5", "DELETE drain-s5"}) {
		t.Fatalf("calls %v: the read, a 404 for the session, then the destroy while claimed", log)
	}

	// Another member's claim holds the session when ours is made (ours
	// gets a new session) and ends before our read: the session waits
	// again, which is no proof it is gone. The claim is made anew and the
	// player destroyed, not left playing beside the new one.
	a.addForeign("raced-s6", oldPlayer(t, gid, "5.1", 2*time.Second))
	a.mu.Lock()
	a.waiting["raced-s6"] = true
	a.heldElsewhere = map[string]int{"raced-s6": 1}
	a.mu.Unlock()
	if st, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "raced-s6"}); err != nil || !ok || st.PlayID != "5.1" {
		t.Fatalf("TakeOver of a session another member's claim held = %+v, %v, %v", st, ok, err)
	}
	if a.hasForeign("raced-s6", gid) {
		t.Fatal("the player of a session another member's claim held plays on")
	}

	// A session no claim can resume is gone, after a bounded number of
	// claims.
	a.mu.Lock()
	claims := a.claims
	a.mu.Unlock()
	if _, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "expired-s4"}); ok || err != nil {
		t.Fatalf("TakeOver in a gone session = %v, %v", ok, err)
	}
	a.mu.Lock()
	claims = a.claims - claims
	a.mu.Unlock()
	if claims != claimTries {
		t.Fatalf("%d claims of a gone session, want %d", claims, claimTries)
	}

	// A claim that fails: an error, and the player stays.
	a.addForeign("dead-s1", oldPlayer(t, gid, "2.10", time.Second))
	c.resume = func(context.Context, config.LavalinkNode, string) (func(), bool, error) {
		return nil, false, errors.New("websocket: bad handshake")
	}
	if _, ok, err := c.TakeOver(ctx, g, audio.Holder{Node: "a", Session: "dead-s1"}); ok || err == nil || errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("TakeOver with a failing claim = %v, %v", ok, err)
	}
	if !a.hasForeign("dead-s1", gid) {
		t.Fatal("a failed claim destroyed the player")
	}
}

// TestFakeLinkTakeOverConcurrently (under -race): takeovers of many guilds
// run beside plays, stops and destroys of others, and every old player is
// gone. The guilds of a dead session on a share one claim, released at
// Close.
func TestFakeLinkTakeOverConcurrently(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, _ := newFakeLinkClient(t, br, Timing{StallThreshold: 50 * time.Millisecond, ClaimLinger: time.Hour})
	ctx := context.Background()
	servers["a"].mu.Lock()
	servers["a"].waiting["dead-s1"] = true // b's dead-s1 is a live member's
	servers["a"].mu.Unlock()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		old := snowflake.ID(910000000000000000 + uint64(i))
		servers[[]string{"a", "b"}[i%2]].addForeign("dead-s1", oldPlayer(t, old, fmt.Sprintf("1.%d", i), time.Duration(i)*time.Second))
		wg.Add(2)
		go func() {
			defer wg.Done()
			st, ok, err := c.TakeOver(ctx, old.String(), audio.Holder{Node: []string{"a", "b"}[i%2], Session: "dead-s1"})
			if err != nil || !ok || st.Position != time.Duration(i)*time.Second {
				errs <- fmt.Errorf("takeover %d: %+v %v %v", i, st, ok, err)
			}
			if _, err := c.Play(ctx, old.String(), playReq(t)); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			other := fmt.Sprint(920000000000000000 + i)
			if _, err := c.Play(ctx, other, playReq(t)); err != nil {
				errs <- err
			}
			if err := c.Stop(ctx, other); err != nil {
				errs <- err
			}
			if err := c.Destroy(ctx, other); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, name := range []string{"a", "b"} {
		s := servers[name]
		s.mu.Lock()
		left := len(s.foreign["dead-s1"])
		s.mu.Unlock()
		if left != 0 {
			t.Fatalf("%d old players left on %s", left, name)
		}
	}
	if w, resumes := servers["a"].isWaiting("dead-s1"); w || resumes != 1 {
		t.Fatalf("a's dead session: waiting %v after %d resumes; want held by one claim", w, resumes)
	}
	if _, resumes := servers["b"].isWaiting("dead-s1"); resumes != 0 {
		t.Fatalf("b's live session was resumed %d times", resumes)
	}
	c.Close()
	if w, _ := servers["a"].isWaiting("dead-s1"); !w {
		t.Fatal("Close left the claim open")
	}
}
