package session

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// A new activation of a session (on another member after one died or
// left, or on a restarted node) takes over the player the previous one
// left on Lavalink before it plays: it reads where that player was,
// destroys it, and plays from there. These tests give the grain a stored
// snapshot as a previous activation left it, and the takeover's answer
// through fakeAudio.

// oldHolder is the player the previous activation left: another member's
// Lavalink session on node-a.
var oldHolder = audio.Holder{Node: "node-a", Session: "old-session"}

// restored is what a previous activation stored: current playing at
// 10 s twenty seconds ago (so the estimate is about 30 s), next queued,
// the bot in voice, and holder's player.
type restored struct {
	current, next music.Track
	snap          *clusterpb.SessionSnapshot
	epoch         uint64 // the previous activation's
}

func (h *harness) seedRestored(holder audio.Holder, playing bool) restored {
	h.t.Helper()
	r := restored{
		current: emuTrack(h.t, "kept-0", "kept #0", "Artist", 3*time.Minute),
		next:    emuTrack(h.t, "later-0", "later #0", "Artist", 3*time.Minute),
	}
	r.snap = &clusterpb.SessionSnapshot{
		Queue:      []*clusterpb.SessionSnapshot_Track{commands.TrackToPB(&r.next)},
		PositionMs: 10_000, PositionAtUnixMs: time.Now().Add(-20 * time.Second).UnixMilli(),
		Volume: 100, Loop: "off",
		VoiceChannelId: "111", VoiceSessionId: "voice-session", VoiceToken: "voice-token", VoiceEndpoint: "voice.example:443",
		TextChannelId: "222", LavalinkNode: holder.Node, LavalinkSessionId: holder.Session, MemberId: "old-member",
	}
	if playing {
		r.snap.Current = commands.TrackToPB(&r.current)
	}
	ctx := context.Background()
	epoch, err := h.store.Activate(ctx, testGuild)
	if err != nil {
		h.t.Fatal(err)
	}
	r.epoch = epoch
	r.snap.GuildId, r.snap.Epoch = testGuild, epoch
	data, err := proto.Marshal(r.snap)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.SaveSession(ctx, testGuild, epoch, data); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// wake activates the session as a node's start does.
func (h *harness) wake() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ecluster.Call(ctx, 3, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
		return h.client().Wake(&clusterpb.Ack{}, o...)
	}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) setTakeOver(f func(context.Context, audio.Holder) (audio.PlayerState, bool, error)) {
	h.audio.mu.Lock()
	h.audio.takeOver = f
	h.audio.mu.Unlock()
}

func (h *harness) takeovers() []audio.Holder {
	h.audio.mu.Lock()
	defer h.audio.mu.Unlock()
	return append([]audio.Holder(nil), h.audio.takeovers...)
}

func (h *harness) callLog() string {
	h.audio.mu.Lock()
	defer h.audio.mu.Unlock()
	return strings.Join(h.audio.calls, ",")
}

func (h *harness) logged() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logs.String()
}

// firstPlay waits for the activation's first play.
func (h *harness) firstPlay() audio.PlayRequest {
	h.t.Helper()
	h.waitFor("the first play", func() bool { _, n := h.audio.lastPlay(); return n >= 1 })
	h.audio.mu.Lock()
	defer h.audio.mu.Unlock()
	return h.audio.plays[0]
}

// near fails unless got is within [want, want+slack].
func near(t *testing.T, what string, got, want, slack time.Duration) {
	t.Helper()
	if got < want || got > want+slack {
		t.Fatalf("%s: %v, want %v (+%v)", what, got, want, slack)
	}
}

// TestTakeoverPositionIsUsed: the activation reads the previous player
// before its first play and plays where that player was, not at the
// stored estimate; then it stores itself as the holder.
func TestTakeoverPositionIsUsed(t *testing.T) {
	h := newHarness(t, nil)
	r := h.seedRestored(oldHolder, true)
	h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
		return audio.PlayerState{Identifier: r.current.Identifier, PlayID: fmt.Sprintf("%d.4", r.epoch),
			Position: 95 * time.Second, At: time.Now()}, true, nil
	})
	h.wake()
	p := h.firstPlay()
	if p.Track.Identifier != r.current.Identifier {
		t.Fatalf("played %s, want the restored %s", p.Track.Identifier, r.current.Identifier)
	}
	near(t, "position of the first play", p.Position, 95*time.Second, 3*time.Second) // the estimate says about 30 s
	if got := h.takeovers(); len(got) != 1 || got[0] != oldHolder {
		t.Fatalf("takeovers %v, want one of %v", got, oldHolder)
	}
	if calls := h.callLog(); !strings.HasPrefix(calls, "takeover,takeover done,play") {
		t.Fatalf("audio calls %s: the takeover must finish before the first play", calls)
	}
	snap := h.stored("the new holder", func(s *clusterpb.SessionSnapshot) bool { return s.GetLavalinkSessionId() == "session-1" })
	if snap.GetLavalinkNode() != "node-a" || snap.GetMemberId() != h.member.System.ID || snap.GetEpoch() <= r.epoch {
		t.Fatalf("stored holder %s/%s by %q at epoch %d (previous %d)", snap.GetLavalinkNode(), snap.GetLavalinkSessionId(),
			snap.GetMemberId(), snap.GetEpoch(), r.epoch)
	}
}

// TestTakeoverFallsBackToTheEstimate: whenever the previous player's
// position does not apply (the takeover failed every time it was tried,
// the player is gone, it played another track, nothing was stored) the
// first play starts at the stored position plus the time since; a failure
// is tried again before anything plays and logged at WARN. A player read
// but not destroyed still gives its position.
func TestTakeoverFallsBackToTheEstimate(t *testing.T) {
	const estimate = 30 * time.Second
	refused := fmt.Errorf("lavalink: read the old player on node-a: %w: 500", audio.ErrRefused)
	for _, c := range []struct {
		name   string
		holder audio.Holder
		state  audio.PlayerState
		ok     bool
		err    error
		want   time.Duration
		warn   string
		calls  int
	}{
		{name: "refused", holder: oldHolder, err: refused, want: estimate, warn: "taking over the previous player failed", calls: maxTakeoverWaits + 1},
		{name: "gone", holder: oldHolder, want: estimate, calls: 1},
		{name: "another track", holder: oldHolder, state: audio.PlayerState{Identifier: "other-0", Position: 95 * time.Second}, ok: true,
			want: estimate, calls: 1},
		{name: "read, destroy failed", holder: oldHolder, state: audio.PlayerState{Identifier: "kept-0", Position: 95 * time.Second}, ok: true,
			err: refused, want: 95 * time.Second, warn: "taking over the previous player failed", calls: maxTakeoverWaits + 1},
		{name: "no holder stored", want: estimate, calls: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.seedRestored(c.holder, true)
			var lastTry atomic.Int64
			h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
				lastTry.Store(time.Now().UnixNano())
				st := c.state
				if c.ok {
					st.At = time.Now()
				}
				return st, c.ok, c.err
			})
			woke := time.Now()
			h.wake()
			p := h.firstPlay()
			want := c.want
			if want == estimate && lastTry.Load() != 0 {
				// The stored position moves on while the takeover is
				// tried, and the play comes after the last try.
				want += time.Unix(0, lastTry.Load()).Sub(woke)
			}
			near(t, "position of the first play", p.Position, want, 3*time.Second)
			if n := len(h.takeovers()); n != c.calls {
				t.Fatalf("%d takeovers, want %d", n, c.calls)
			}
			logs := h.logged()
			if c.warn != "" && (!strings.Contains(logs, "level=WARN msg=\""+c.warn+"; playing at the stored position") ||
				strings.Count(logs, "level=WARN msg=\""+c.warn+"; trying again before playing") != maxTakeoverWaits) {
				t.Fatalf("want %d WARNs %q, trying again, then one playing at the stored position; logs:\n%s", maxTakeoverWaits, c.warn, logs)
			}
			if calls := h.callLog(); c.calls > 1 && !strings.HasPrefix(calls, strings.Repeat("takeover,takeover done,", c.calls)+"play") {
				t.Fatalf("audio calls %s: want no play before the takeover was given up", calls)
			}
			if c.warn == "" && strings.Contains(logs, "previous player failed") {
				t.Fatalf("a takeover without failure logged one:\n%s", logs)
			}
			// The play succeeded: the old player is out of reach or gone, and
			// a later play (a move) does not try again.
			h.event(&clusterpb.PlayerEvent{Kind: kNodeLost, Node: "node-a"})
			h.waitFor("the move", func() bool { _, n := h.audio.lastPlay(); return n == 2 })
			if n := len(h.takeovers()); n != c.calls {
				t.Fatalf("%d takeovers after a move, want %d", n, c.calls)
			}
		})
	}
}

// TestVoiceDuringTakeoverWaitsForIt: a voice update that arrives while the
// takeover runs starts no play of its own; the one play, after the
// takeover, has both the new voice facts and the old player's position.
func TestVoiceDuringTakeoverWaitsForIt(t *testing.T) {
	h := newHarness(t, nil)
	r := h.seedRestored(oldHolder, true)
	started, release := make(chan struct{}), make(chan struct{})
	h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
		close(started)
		<-release
		return audio.PlayerState{Identifier: r.current.Identifier, Position: 95 * time.Second, At: time.Now()}, true, nil
	})
	h.wake()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no takeover")
	}
	// Discord rotates the voice server meanwhile; the grain has handled it
	// once the call returns.
	if _, err := h.client().Voice(&clusterpb.VoiceEvent{GuildId: testGuild, Event: &clusterpb.VoiceEvent_Server{
		Server: &clusterpb.VoiceServer{Token: "rotated-token", Endpoint: "voice.example:443"}}}, pcluster.WithTimeout(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	close(release)
	p := h.firstPlay()
	// /volume's answer waits for its Audio call, on the audio lane behind
	// any play started before it: none but the first.
	h.exec("volume", opt("level", "50"))
	if _, n := h.audio.lastPlay(); n != 1 {
		h.audio.mu.Lock()
		plays := fmt.Sprintf("%+v", h.audio.plays)
		h.audio.mu.Unlock()
		t.Fatalf("%d plays, want 1: %s", n, plays)
	}
	if p.Voice.Token != "rotated-token" {
		t.Fatalf("played with voice token %q, want the one that came during the takeover", p.Voice.Token)
	}
	near(t, "position of the play", p.Position, 95*time.Second, 3*time.Second)
}

// TestTakeoverRetriedWhileNoNode: a member whose Lavalink client cannot
// reach the holder's node yet (still connecting) does not play beside the
// old player: it waits for a play retry, takes the old player over then,
// and plays at its position.
func TestTakeoverRetriedWhileNoNode(t *testing.T) {
	h := newHarness(t, nil)
	r := h.seedRestored(oldHolder, true)
	noNode := fmt.Errorf("lavalink: %w", audio.ErrNoNode)
	h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
		h.audio.mu.Lock()
		n := len(h.audio.takeovers)
		h.audio.mu.Unlock()
		if n == 1 {
			return audio.PlayerState{}, false, noNode
		}
		return audio.PlayerState{Identifier: r.current.Identifier, Position: 95 * time.Second, At: time.Now()}, true, nil
	})
	h.wake()
	p := h.firstPlay()
	if n := len(h.takeovers()); n != 2 {
		t.Fatalf("%d takeovers, want 2 (the first failed for want of the node)", n)
	}
	if calls := h.callLog(); !strings.HasPrefix(calls, "takeover,takeover done,takeover,takeover done,play") {
		t.Fatalf("audio calls %s: want no play before the takeover succeeded", calls)
	}
	near(t, "position of the play", p.Position, 95*time.Second, 3*time.Second)
}

// TestTakeoverGivesUpOnAMissingNode: a node that stays unreachable keeps
// the music off for a few play retries only; then the session plays at
// the stored position.
func TestTakeoverGivesUpOnAMissingNode(t *testing.T) {
	h := newHarness(t, nil)
	h.seedRestored(oldHolder, true)
	noNode := fmt.Errorf("lavalink: %w", audio.ErrNoNode)
	h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
		return audio.PlayerState{}, false, noNode
	})
	h.wake()
	h.firstPlay()
	if n := len(h.takeovers()); n != maxTakeoverWaits+1 {
		t.Fatalf("%d takeovers before playing, want %d", n, maxTakeoverWaits+1)
	}
	logs := h.logged()
	if strings.Count(logs, `msg="cannot reach the previous player's node yet`) != maxTakeoverWaits ||
		!strings.Contains(logs, `level=WARN msg="cannot take over the previous player; playing at the stored position`) {
		t.Fatalf("logs:\n%s", logs)
	}
}

// TestIdlePreviousPlayerIsTakenOver: a session restored with nothing
// playing still destroys the previous player (it holds the voice
// connection) on activation, and plays nothing until asked.
func TestIdlePreviousPlayerIsTakenOver(t *testing.T) {
	h := newHarness(t, nil)
	h.seedRestored(oldHolder, false)
	h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
		return audio.PlayerState{}, false, nil
	})
	h.wake()
	h.waitFor("the takeover", func() bool { return len(h.takeovers()) == 1 })
	if got := h.playing(); got != "" {
		t.Fatalf("an idle session plays %q", got)
	}
	h.exec("play", opt("query", "fresh"))
	p := h.firstPlay()
	if p.Track.Identifier != "later-0" || len(h.takeovers()) != 1 {
		t.Fatalf("played %s after %d takeovers; want the queued later-0 after one", p.Track.Identifier, len(h.takeovers()))
	}
}

// TestHolderIsStoredAfterEachPlay: the node, Lavalink session and member
// of every successful play are stored, so that the next activation knows
// which player to take over.
func TestHolderIsStoredAfterEachPlay(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "x"))
	h.firstPlay()
	h.stored("the first holder", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetLavalinkNode() == "node-a" && s.GetLavalinkSessionId() == "session-1" && s.GetMemberId() == h.member.System.ID
	})
	h.audio.mu.Lock()
	h.audio.holder = audio.Holder{Node: "node-b", Session: "session-7"}
	h.audio.mu.Unlock()
	h.event(&clusterpb.PlayerEvent{Kind: kNodeLost, Node: "node-a"})
	h.stored("the holder after the move", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetLavalinkNode() == "node-b" && s.GetLavalinkSessionId() == "session-7"
	})
	// A session with nothing stored of a holder (a fresh one) takes
	// nothing over.
	if n := len(h.takeovers()); n != 0 {
		t.Fatalf("%d takeovers in a fresh session", n)
	}
}

// TestPreviousActivationEventsAreIgnored: events of the superseded player
// (its TrackEnd "stopped" from the destroy, or a late "finished" or
// exception) carry the previous activation's play ID and move nothing;
// the new play's own events do.
func TestPreviousActivationEventsAreIgnored(t *testing.T) {
	h := newHarness(t, nil)
	r := h.seedRestored(oldHolder, true)
	oldPlay := fmt.Sprintf("%d.4", r.epoch)
	h.setTakeOver(func(context.Context, audio.Holder) (audio.PlayerState, bool, error) {
		return audio.PlayerState{Identifier: r.current.Identifier, PlayID: oldPlay, Position: 95 * time.Second, At: time.Now()}, true, nil
	})
	h.wake()
	p := h.firstPlay()
	if p.PlayID == oldPlay || !strings.HasPrefix(p.PlayID, fmt.Sprintf("%d.", r.epoch+1)) {
		t.Fatalf("new play ID %q (previous activation's epoch %d, its play %q)", p.PlayID, r.epoch, oldPlay)
	}
	old := audio.PlayRequest{Track: r.current, PlayID: oldPlay}
	for _, ev := range []*clusterpb.PlayerEvent{
		trackEvent(kEnd, "stopped", old),
		trackEvent(kEnd, "finished", old),
		trackEvent(kException, "", old),
		trackEvent(kStuck, "", old),
	} {
		h.event(ev)
	}
	if got, want := h.playing(), commands.Escape(r.current.Title); got != want {
		t.Fatalf("after the previous player's events: playing %q, want %q", got, want)
	}
	if q := h.snapshot().GetQueue(); len(q) != 1 || q[0].GetIdentifier() != r.next.Identifier {
		t.Fatalf("queue %v after the previous player's events", q)
	}
	if _, n := h.audio.lastPlay(); n != 1 {
		t.Fatalf("%d plays after the previous player's events", n)
	}
	h.event(trackEvent(kEnd, "finished", p))
	if got, want := h.playing(), commands.Escape(r.next.Title); got != want {
		t.Fatalf("after the new play finished: playing %q, want %q", got, want)
	}
}
