package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// Lavalink re-encodes the track with its current position in every event,
// so a TrackEnd "finished" never carries the encoded string the session
// sent (internal/lavalinkemu's TestDisgolinkSeesUserDataAndReencodedTrack
// shows it against disgolink). The session matches events by the play ID
// the Lavalink client sent as userData, which Lavalink echoes unchanged.

const (
	kStart     = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START
	kEnd       = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END
	kException = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION
	kStuck     = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK
	kUpdate    = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE
	kNodeLost  = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST
)

// TestEventsAreMatchedToTheCurrentPlay: for every event kind and end
// reason, an event about the current play acts, and one about a replaced
// play of the same track, an earlier activation's play or another track
// changes nothing.
func TestEventsAreMatchedToTheCurrentPlay(t *testing.T) {
	type which int
	const (
		current which = iota
		replaced
		earlierActivation
		noIDSameTrack
		noIDOtherTrack
	)
	cases := []struct {
		name   string
		kind   clusterpb.PlayerEventKind
		reason string
		about  which
		moves  bool // to the next track
	}{
		{"end finished", kEnd, "finished", current, true},
		{"end loadFailed", kEnd, "loadFailed", current, true},
		{"end replaced", kEnd, "replaced", current, false},
		{"end stopped", kEnd, "stopped", current, false},
		{"end cleanup", kEnd, "cleanup", current, false},
		{"exception", kException, "", current, true},
		{"stuck", kStuck, "", current, true},
		{"start", kStart, "", current, false},
		{"end finished of a replaced play", kEnd, "finished", replaced, false},
		{"end loadFailed of a replaced play", kEnd, "loadFailed", replaced, false},
		{"exception of a replaced play", kException, "", replaced, false},
		{"stuck of a replaced play", kStuck, "", replaced, false},
		{"end finished of an earlier activation", kEnd, "finished", earlierActivation, false},
		{"exception of an earlier activation", kException, "", earlierActivation, false},
		{"end finished without userData, same track", kEnd, "finished", noIDSameTrack, true},
		{"exception without userData, same track", kException, "", noIDSameTrack, true},
		{"end finished without userData, other track", kEnd, "finished", noIDOtherTrack, false},
		{"stuck without userData, other track", kStuck, "", noIDOtherTrack, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.exec("play", opt("query", "a"))
			h.exec("play", opt("query", "b"))
			h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
			// The node is lost: the same track plays again, as a new play.
			h.event(&clusterpb.PlayerEvent{Kind: kNodeLost, Node: "node-a"})
			h.waitFor("re-played", func() bool { _, n := h.audio.lastPlay(); return n == 2 })
			h.audio.mu.Lock()
			old, cur := h.audio.plays[0], h.audio.plays[1]
			h.audio.mu.Unlock()
			if old.PlayID == "" || old.PlayID == cur.PlayID || old.Track.Identifier != cur.Track.Identifier {
				t.Fatalf("plays %q and %q of %s", old.PlayID, cur.PlayID, cur.Track.Identifier)
			}
			ev := trackEvent(c.kind, c.reason, cur)
			switch c.about {
			case replaced:
				ev = trackEvent(c.kind, c.reason, old)
			case earlierActivation:
				ev.PlayId = "0.1"
			case noIDSameTrack:
				ev.PlayId = ""
			case noIDOtherTrack:
				ev.PlayId, ev.TrackIdentifier = "", "b-0"
			}
			h.event(ev)
			want, title := "a-0", commands.Escape("a #0")
			if c.moves {
				want, title = "b-0", commands.Escape("b #0")
			}
			if got := h.playing(); got != title {
				t.Fatalf("after %s: playing %q, want %q", c.name, got, title)
			}
			h.stored("current "+want, func(s *clusterpb.SessionSnapshot) bool { return s.GetCurrent().GetIdentifier() == want })
			if c.moves {
				h.waitFor("the next track's play", func() bool { _, n := h.audio.lastPlay(); return n == 3 })
			} else if _, n := h.audio.lastPlay(); n != 2 {
				t.Fatalf("after %s: %d plays", c.name, n)
			}
		})
	}
}

// TestFailedTrackIsSkippedOnce: Lavalink follows a TrackException with a
// TrackEnd of the same play. The exception skips the bad track, whatever
// the loop mode (looping a broken track would fail for ever), and the
// TrackEnd that follows it is stale: one track is skipped, not two.
func TestFailedTrackIsSkippedOnce(t *testing.T) {
	h := newHarness(t, nil)
	for _, q := range []string{"bad", "good", "later"} {
		h.exec("play", opt("query", q))
	}
	h.exec("loop", opt("mode", "queue"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	bad, _ := h.audio.lastPlay()
	h.event(trackEvent(kException, "", bad))
	h.event(trackEvent(kEnd, "finished", bad))
	if got := h.playing(); got != commands.Escape("good #0") {
		t.Fatalf("after the failed track: playing %q, want good #0", got)
	}
	snap := h.stored("current good-0", func(s *clusterpb.SessionSnapshot) bool { return s.GetCurrent().GetIdentifier() == "good-0" })
	if q := snap.GetQueue(); len(q) != 1 || q[0].GetIdentifier() != "later-0" {
		t.Fatalf("queue %v, want [later-0]: the failed track leaves the loop", q)
	}
	// The now-playing message follows.
	h.waitFor("now-playing shows the next track", func() bool {
		h.messages.mu.Lock()
		defer h.messages.mu.Unlock()
		if h.messages.last == nil {
			return false
		}
		shown := fmt.Sprint(h.messages.last.GetEmbeds())
		return strings.Contains(shown, "good") && !strings.Contains(shown, "bad")
	})
	// With loop track on, a failing track is not played again either.
	h.exec("loop", opt("mode", "track"))
	h.waitFor("good playing", func() bool { p, _ := h.audio.lastPlay(); return p.Track.Identifier == "good-0" })
	good, _ := h.audio.lastPlay()
	h.event(trackEvent(kStuck, "", good))
	if got := h.playing(); got != commands.Escape("later #0") {
		t.Fatalf("after a stuck track with loop track on: playing %q, want later #0", got)
	}
}

// manualTimers runs the grain's timers through time.AfterFunc, except
// those longer than an hour, which wait for fire: a test decides when a
// long cooldown is over, and then synchronises on a later message through
// the same mailbox.
type manualTimers struct {
	mu   sync.Mutex
	held []func()
}

func (m *manualTimers) AfterFunc(d time.Duration, f func()) *time.Timer {
	if d < time.Hour {
		return time.AfterFunc(d, f)
	}
	m.mu.Lock()
	m.held = append(m.held, f)
	m.mu.Unlock()
	return time.NewTimer(d) // never fired: held instead
}

func (m *manualTimers) fire(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	held := m.held
	m.held = nil
	m.mu.Unlock()
	if len(held) == 0 {
		t.Fatal("no timer is held")
	}
	for _, f := range held {
		f()
	}
}

// fakeClock is the wall clock plus an offset a test moves forward.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func (h *harness) loads() (n int) {
	h.audio.mu.Lock()
	defer h.audio.mu.Unlock()
	for _, c := range h.audio.calls {
		if c == "load" {
			n++
		}
	}
	return n
}

// TestAutoplayWaitsOutItsCooldown: a track that ends within the autoplay
// cooldown of the last pick does not stop the music; the pick is made
// when the cooldown ends. A /stop meanwhile cancels it.
func TestAutoplayWaitsOutItsCooldown(t *testing.T) {
	const cooldown = 2 * time.Hour
	for _, stop := range []bool{false, true} {
		t.Run(fmt.Sprintf("stop=%v", stop), func(t *testing.T) {
			timers, clock := &manualTimers{}, &fakeClock{}
			h := newHarness(t, func(d *Deps) {
				d.AutoplayCooldown, d.TrackEndGrace = cooldown, 3*time.Hour
				d.AfterFunc, d.Now = timers.AfterFunc, clock.Now
			})
			h.exec("play", opt("query", "seed"))
			h.exec("autoplay", opt("state", "on"))
			h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
			h.finished() // the first pick is not held back
			h.waitFor("the first autoplay pick plays", func() bool { _, n := h.audio.lastPlay(); return n == 2 })
			timers.mu.Lock()
			timers.held = nil // the track-end deadlines so far
			timers.mu.Unlock()
			h.finished() // within the cooldown
			if got := h.playing(); got != "" {
				t.Fatalf("a pick within the cooldown plays %s", got)
			}
			loads := h.loads()
			if stop {
				h.exec("stop")
			}
			clock.advance(cooldown)
			timers.fire(t)
			if stop {
				// After the timer's message in the mailbox: no search.
				if got := h.playing(); got != "" || h.loads() != loads {
					t.Fatalf("autoplay picked after /stop: playing %q, %d loads (was %d)", got, h.loads(), loads)
				}
				return
			}
			h.waitFor("a pick when the cooldown ended", func() bool { _, n := h.audio.lastPlay(); return n == 3 })
		})
	}
}

// TestLoadFailuresAreExplained: a load the server answered with an error
// or with nothing says so in the user's terms; "did not answer" is kept
// for when it did not. Nothing is queued.
func TestLoadFailuresAreExplained(t *testing.T) {
	for _, c := range []struct {
		name  string
		query string
		err   error
		want  string
	}{
		{"load error", "dead link", &audio.LoadFailedError{Message: "This video is unavailable"}, "Couldn't load that track: This video is unavailable"},
		{"load error without a message", "dead link", &audio.LoadFailedError{}, "Couldn't load that track: no reason given"},
		{"empty", "nothing at all", nil, "No results for “nothing at all”"},
		{"refused", "x", fmt.Errorf("lavalink: %w: 500", audio.ErrRefused), "couldn't do that right now"},
		{"no node", "x", fmt.Errorf("lavalink: %w", audio.ErrNoNode), "No audio node"},
		{"timeout", "x", errors.New("context deadline exceeded"), "did not answer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if c.err != nil {
				h.audio.setFail("load", fmt.Errorf("lavalink: load on emu: %w", c.err))
			}
			r := h.exec("play", opt("query", c.query))
			if !r.GetEphemeral() || !strings.Contains(r.GetContent(), c.want) {
				t.Fatalf("reply %q (ephemeral %v), want it to contain %q", r.GetContent(), r.GetEphemeral(), c.want)
			}
			if c.name != "timeout" && strings.Contains(r.GetContent(), "did not answer") {
				t.Fatalf("the server answered, but the reply says it did not: %q", r.GetContent())
			}
			if snap := h.snapshot(); snap.GetCurrent() != nil || len(snap.GetQueue()) != 0 {
				t.Fatalf("something was queued: %v", snap)
			}
		})
	}
}

// TestRepliesSayWhetherTheSessionIsActive: the guild grain answers /queue
// and /nowplaying itself while the session has nothing, so every reply
// says whether it still has something.
func TestRepliesSayWhetherTheSessionIsActive(t *testing.T) {
	h := newHarness(t, nil)
	active := func(command string, opts ...*clusterpb.Option) bool {
		t.Helper()
		r, err := h.client().Execute(&clusterpb.SessionRequest{GuildId: testGuild, Command: command, Options: opts,
			TextChannelId: "222", RequestId: fmt.Sprint("active-", command, h.seq.Add(1)),
			Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"}}, pcluster.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return r.GetActive()
	}
	if active("queue") {
		t.Fatal("a fresh session says it is active")
	}
	if !active("play", opt("query", "x")) {
		t.Fatal("a playing session says it is not active")
	}
	if active("leave") {
		t.Fatal("a session that left says it is active")
	}
}

// TestStopLocalStoresWhatIsPending: a member's stop has its sessions
// store every change first: a voice update (stored off the mailbox after
// it is acknowledged) is in the store once StopLocal returns, and the
// session is stopped.
func TestStopLocalStoresWhatIsPending(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "x"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	h.event(&clusterpb.PlayerEvent{Kind: kUpdate}) // nothing to store
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.client().Voice(&clusterpb.VoiceEvent{GuildId: testGuild, Event: &clusterpb.VoiceEvent_Server{
		Server: &clusterpb.VoiceServer{Token: "rotated-token", Endpoint: "voice.example:443"}}}, pcluster.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n, err := StopLocal(ctx, h.member.System)
	if err != nil || n != 1 {
		t.Fatalf("StopLocal: %d sessions, %v", n, err)
	}
	if tok := h.snapshot().GetVoiceToken(); tok != "rotated-token" {
		t.Fatalf("stored voice token %q after the stop, want the last one", tok)
	}
	if n, _ := StopLocal(ctx, h.member.System); n != 0 {
		t.Fatalf("%d sessions still active after StopLocal", n)
	}
}
