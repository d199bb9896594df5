package session

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

func TestPlayJoinsVoiceThenPlaysWithFullVoiceFacts(t *testing.T) {
	h := newHarness(t, nil)
	r := h.exec("play", opt("query", "lofi"))
	if r.GetEphemeral() || !strings.Contains(r.GetContent()+fmt.Sprint(r.GetEmbeds()), "lofi") {
		t.Fatalf("play reply %+v", r)
	}
	h.waitFor("player started", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	p, _ := h.audio.lastPlay()
	if !p.Voice.Complete() || p.Voice.ChannelID != "111" || p.Voice.Token != "voice-token" || p.Position != 0 || p.Volume != 100 {
		t.Fatalf("play request %+v", p)
	}
	if len(h.gateway.updates) != 1 || h.gateway.updates[0] != "111" {
		t.Fatalf("op 4 requests %v", h.gateway.updates)
	}
	h.stored("the current track and the voice facts", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetCurrent().GetIdentifier() == "lofi-0" && s.GetVoiceToken() == "voice-token" && s.GetEpoch() != 0
	})
	// A now-playing message is posted once, then edited.
	h.waitFor("now-playing posted", func() bool { c, _ := h.messages.counts(); return c == 1 })
}

// TestRefusalsChangeNothing: every refused command leaves the stored
// snapshot byte for byte as it was.
func TestRefusalsChangeNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "a"))
	h.exec("play", opt("query", "b"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	// The session's own writes (the player's node, the now-playing
	// message) are stored off its mailbox; the refusals come after them.
	h.waitFor("now-playing and node saved", func() bool {
		s := h.snapshot()
		return s.GetNowPlayingMessageId() != "" && s.GetLavalinkNode() != ""
	})
	before := h.snapshot().String()
	queueBefore := fmt.Sprint(h.exec("queue").GetEmbeds())
	for _, c := range []struct {
		cmd  string
		opts []*clusterpb.Option
	}{
		{"volume", []*clusterpb.Option{opt("level", "201")}},
		{"seek", []*clusterpb.Option{opt("position", "99:00")}},
		{"remove", []*clusterpb.Option{opt("position", "0")}},
		{"move", []*clusterpb.Option{opt("from", "1"), opt("to", "9")}},
		{"skip", []*clusterpb.Option{opt("count", "50")}},
		{"play", []*clusterpb.Option{opt("query", "file:///etc/passwd")}},
		{"play", []*clusterpb.Option{opt("query", strings.Repeat("x", 3000))}},
		{"queue", []*clusterpb.Option{opt("page", "9")}},
		{"resume", nil},
		{"nosuch", nil},
	} {
		r := h.exec(c.cmd, c.opts...)
		if !r.GetEphemeral() {
			t.Errorf("%s refusal not ephemeral: %q", c.cmd, r.GetContent())
		}
	}
	h.exec("loop", opt("mode", "track"))
	if r := h.exec("autoplay", opt("state", "on")); !r.GetEphemeral() {
		t.Fatalf("autoplay while looping allowed: %q", r.GetContent())
	}
	h.exec("loop", opt("mode", "off"))
	after := h.snapshot()
	after.Loop = "off"
	if got := after.String(); got != before {
		t.Fatalf("refusals changed the snapshot:\n%s\n->\n%s", before, got)
	}
	if got := fmt.Sprint(h.exec("queue").GetEmbeds()); got != queueBefore {
		t.Fatalf("refusals changed the queue in memory:\n%s\n->\n%s", queueBefore, got)
	}
}

// TestFailedJoinChangesNothing: when the bot cannot join, /play is refused
// and the queue, in memory as in the store, is as before.
func TestFailedJoinChangesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.gateway.mu.Lock()
	h.gateway.fail = true
	h.gateway.mu.Unlock()
	if r := h.exec("play", opt("query", "nope")); !r.GetEphemeral() || !strings.Contains(r.GetContent(), "couldn't join") {
		t.Fatalf("failed join answered %q", r.GetContent())
	}
	if q := h.exec("queue"); strings.Contains(fmt.Sprint(q.GetEmbeds())+q.GetContent(), "nope") {
		t.Fatalf("refused track is queued: %v", q)
	}
	if h.snapshot() != nil {
		t.Fatalf("refused play stored %v", h.snapshot())
	}
	// The next play starts with its own track, and says so.
	h.gateway.mu.Lock()
	h.gateway.fail = false
	h.gateway.mu.Unlock()
	r := h.exec("play", opt("query", "yes"))
	if !strings.Contains(fmt.Sprint(r.GetEmbeds()), "yes") {
		t.Fatalf("play after failed join: %v", r.GetEmbeds())
	}
}

func TestDefaultVolumeAppliesToNewSessions(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		return h.client().Execute(&clusterpb.SessionRequest{
			GuildId: testGuild, Command: "play", Options: []*clusterpb.Option{opt("query", "quiet")}, DefaultVolume: 40,
			Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"},
		}, o...)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	if p, _ := h.audio.lastPlay(); p.Volume != 40 {
		t.Fatalf("new session plays at %d, want the guild default 40", p.Volume)
	}
}

// TestDuplicateRequestRunsOnce: a retried call (same request ID) is
// answered from the cache instead of queueing the track again.
func TestDuplicateRequestRunsOnce(t *testing.T) {
	h := newHarness(t, nil)
	req := &clusterpb.SessionRequest{
		GuildId: testGuild, Command: "play", RequestId: "1234567", Options: []*clusterpb.Option{opt("query", "once")},
		Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"},
	}
	h.exec("play", opt("query", "first"))
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.SessionReply, error) {
			return h.client().Execute(req, o...)
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.snapshot().GetQueue()); n != 1 {
		t.Fatalf("queue has %d tracks after one request delivered three times", n)
	}
}

// TestLeaveForgetsTheSession: /leave deletes the snapshot, and the bot's
// own "left voice" event that follows does not bring it back.
func TestLeaveForgetsTheSession(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "bye"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	if r := h.exec("leave"); r.GetEphemeral() {
		t.Fatalf("leave refused: %q", r.GetContent())
	}
	// fakeGateway delivers the bot's voice state with no channel; the
	// session has taken it once the call returned.
	h.waitFor("the leave's voice event taken", func() bool {
		h.gateway.mu.Lock()
		defer h.gateway.mu.Unlock()
		return h.gateway.answered == 2
	})
	h.exec("queue") // after anything that event started
	h.waitFor("snapshot deleted", func() bool { return h.snapshot() == nil })
	list, err := h.store.Sessions(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("stored sessions after leave: %v, %v", list, err)
	}
}

func TestVoiceThatNeverConnectsGivesUp(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.VoiceTimeout = 300 * time.Millisecond })
	h.gateway.mu.Lock()
	h.gateway.silent = true
	h.gateway.mu.Unlock()
	h.exec("play", opt("query", "stuck"))
	h.waitFor("voice given up", func() bool {
		s := h.snapshot()
		return s != nil && s.GetVoiceChannelId() == "" && s.GetCurrent() == nil && len(s.GetQueue()) == 1
	})
	h.waitFor("the channel is told", func() bool {
		h.messages.mu.Lock()
		defer h.messages.mu.Unlock()
		return h.messages.last != nil && strings.Contains(h.messages.last.GetContent(), "couldn't connect")
	})
}

func TestStalePlayerUpdateIsIgnored(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "seeked"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	sentBefore := time.Now().Add(-time.Second).UnixMilli()
	h.exec("seek", opt("position", "2:00"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
		return h.client().Player(&clusterpb.PlayerEvent{GuildId: testGuild, Kind: clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE, PositionMs: 5000, TimeUnixMs: sentBefore}, o...)
	})
	h.exec("volume", opt("level", "90")) // stores the position
	if pos := h.snapshot().GetPositionMs(); pos < 120_000 {
		t.Fatalf("a player update from before the seek moved the position back to %d ms", pos)
	}
}

// TestConcurrentCommandsAndEvents hammers one session from many
// goroutines: commands, voice and player events. Every successful add is
// in the queue exactly once and the stored snapshot matches.
func TestConcurrentCommandsAndEvents(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.QueueMax = 500 })
	h.exec("play", opt("query", "seed"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	var wg sync.WaitGroup
	const workers, each = 8, 6
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				h.exec("play", opt("query", fmt.Sprintf("w%d-%d", w, i)))
				h.exec("queue")
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _ = ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
					return h.client().Player(&clusterpb.PlayerEvent{GuildId: testGuild, Kind: clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE, PositionMs: int64(i * 1000), TimeUnixMs: time.Now().UnixMilli()}, o...)
				})
				cancel()
			}
		}()
	}
	wg.Wait()
	snap := h.snapshot()
	seen := map[string]int{}
	for _, tr := range snap.GetQueue() {
		seen[tr.GetIdentifier()]++
	}
	if len(snap.GetQueue()) != workers*each {
		t.Fatalf("queue has %d tracks, want %d", len(snap.GetQueue()), workers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s queued %d times", id, n)
		}
	}
}

func TestTrackEndAdvancesWithLoopModes(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "one"))
	h.exec("play", opt("query", "two"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	// end finishes the current play and waits for the next one to be
	// sent, when one follows.
	end := func(next bool) {
		t.Helper()
		_, n := h.audio.lastPlay()
		h.finished()
		if next {
			h.waitFor("the next play", func() bool { _, m := h.audio.lastPlay(); return m == n+1 })
		}
	}
	current := h.playing
	one, two := commands.Escape("one #0"), commands.Escape("two #0")

	h.exec("loop", opt("mode", "track"))
	end(true)
	if current() != one {
		t.Fatalf("loop track: now %q", current())
	}
	h.exec("loop", opt("mode", "queue"))
	end(true)
	snap := h.stored("two current, one queued", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetCurrent().GetIdentifier() == "two-0" && len(s.GetQueue()) == 1 && s.GetQueue()[0].GetIdentifier() == "one-0"
	})
	if current() != two {
		t.Fatalf("loop queue: now %q, queue %v", current(), snap.GetQueue())
	}
	h.exec("loop", opt("mode", "off"))
	// A stale end (the play of "one" that the loop replaced) is ignored.
	h.audio.mu.Lock()
	first := h.audio.plays[0]
	h.audio.mu.Unlock()
	h.event(trackEvent(clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END, "finished", first))
	if current() != two {
		t.Fatalf("stale end moved on to %q", current())
	}
	end(true)
	if current() != one {
		t.Fatalf("loop off: now %q", current())
	}
	// Autoplay when the queue runs dry picks a related track not played
	// recently.
	h.exec("autoplay", opt("state", "on"))
	end(true)
	if title := current(); title == "" || title == one || title == two {
		t.Fatalf("autoplay picked %q", title)
	}
	h.exec("autoplay", opt("state", "off"))
	end(false)
	if title := current(); title != "" {
		t.Fatalf("queue end without autoplay still plays %q", title)
	}
	h.stored("nothing current", func(s *clusterpb.SessionSnapshot) bool { return s.GetCurrent() == nil })
}

// TestNowPlayingEditsAreCoalesced: changes within the coalescing delay
// make one edit. The delay's timer is held and fired by the test, so
// "no further edit" is checked after the only flush there is.
func TestNowPlayingEditsAreCoalesced(t *testing.T) {
	timers := &manualTimers{}
	h := newHarness(t, func(d *Deps) { d.NowPlayingDelay, d.AfterFunc = 2*time.Hour, timers.AfterFunc })
	h.exec("play", opt("query", "np"))
	timers.fire(t)
	h.waitFor("posted", func() bool { c, _ := h.messages.counts(); return c == 1 })
	for i := 0; i < 10; i++ {
		h.exec("volume", opt("level", fmt.Sprint(50+i)))
	}
	timers.mu.Lock()
	scheduled := len(timers.held)
	timers.mu.Unlock()
	if scheduled != 1 {
		t.Fatalf("10 quick changes scheduled %d flushes, want 1", scheduled)
	}
	timers.fire(t)
	h.waitFor("edited", func() bool { _, e := h.messages.counts(); return e == 1 })
	h.exec("queue") // after the flush and its effect's report in the mailbox
	timers.mu.Lock()
	scheduled = len(timers.held)
	timers.mu.Unlock()
	if c, e := h.messages.counts(); c != 1 || e != 1 || scheduled != 0 {
		t.Fatalf("after one flush: %d posts, %d edits, %d flushes scheduled; want 1, 1, 0", c, e, scheduled)
	}
	h.messages.mu.Lock()
	last := fmt.Sprint(h.messages.last.GetEmbeds())
	h.messages.mu.Unlock()
	if !strings.Contains(last, "59") {
		t.Fatalf("final edit does not show the last volume: %s", last)
	}
}

func TestFencedActivationStops(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "old"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	// Its writes run off the mailbox: once the player's node and the
	// now-playing message are stored, the next write is the user's.
	h.stored("the node and the now-playing message", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetLavalinkNode() != "" && s.GetNowPlayingMessageId() != ""
	})
	if _, err := h.store.Activate(context.Background(), testGuild); err != nil {
		t.Fatal(err)
	}
	r := h.exec("volume", opt("level", "10"))
	if !r.GetEphemeral() || !strings.Contains(r.GetContent(), "try again") {
		t.Fatalf("fenced write answered %q", r.GetContent())
	}
	if h.snapshot().GetVolume() == 10 {
		t.Fatal("fenced write reached the store")
	}
	// The next call gets a new activation with a newer epoch.
	r = h.exec("volume", opt("level", "20"))
	if r.GetEphemeral() || h.snapshot().GetVolume() != 20 {
		t.Fatalf("new activation: %q, stored volume %d", r.GetContent(), h.snapshot().GetVolume())
	}
}

// TestPanicStopsActivationAndRecovers: a panic (here in an Audio call the
// answer waits for) stops the activation; the caller is told something
// went wrong, and the next call activates the session afresh from the
// store.
func TestPanicStopsActivationAndRecovers(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "x"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	h.stored("the track", func(s *clusterpb.SessionSnapshot) bool { return s.GetCurrent() != nil })
	h.audio.mu.Lock()
	h.audio.panics = true
	h.audio.mu.Unlock()
	if r := h.exec("pause"); !r.GetEphemeral() || !strings.Contains(r.GetContent(), "Something went wrong") {
		t.Fatalf("panicking call answered %+v", r)
	}
	h.audio.mu.Lock()
	h.audio.panics = false
	h.audio.mu.Unlock()
	// A fresh activation serves the stored state.
	if r := h.exec("queue"); !strings.Contains(fmt.Sprint(r.GetEmbeds())+r.GetContent(), "x ") {
		t.Fatalf("after panic: %+v", r)
	}
}

func TestAudioDownRetriesUntilNodeAppears(t *testing.T) {
	h := newHarness(t, nil)
	h.audio.setFail("play", fmt.Errorf("lavalink: %w", audio.ErrNoNode))
	h.exec("play", opt("query", "later"))
	h.waitFor("first play attempt", func() bool {
		h.audio.mu.Lock()
		defer h.audio.mu.Unlock()
		return strings.Count(strings.Join(h.audio.calls, ","), "play") >= 1
	})
	h.audio.setFail("play", nil)
	h.waitFor("play retried after the node came back", func() bool { _, n := h.audio.lastPlay(); return n >= 1 })
	r := h.exec("play", opt("query", "more"))
	if r.GetEphemeral() {
		t.Fatalf("play after recovery refused: %q", r.GetContent())
	}
	h.audio.setFail("load", fmt.Errorf("lavalink: %w", audio.ErrNoNode))
	if r := h.exec("play", opt("query", "none")); !strings.Contains(r.GetContent(), "No audio node") {
		t.Fatalf("load without a node answered %q", r.GetContent())
	}
}

// TestLostTrackEndDoesNotStopTheMusic: if Lavalink's TrackEnd never
// arrives, the session moves on by itself after the track's length plus a
// grace period.
func TestLostTrackEndDoesNotStopTheMusic(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.TrackEndGrace = 100 * time.Millisecond })
	h.audio.mu.Lock()
	h.audio.length = 300 * time.Millisecond
	h.audio.mu.Unlock()
	h.exec("play", opt("query", "short"))
	h.exec("play", opt("query", "next"))
	h.waitFor("first track playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	h.waitFor("moved on without a TrackEnd", func() bool {
		p, n := h.audio.lastPlay()
		return n == 2 && p.Track.Identifier == "next-0"
	})
	h.stored("the next track current", func(s *clusterpb.SessionSnapshot) bool { return s.GetCurrent().GetIdentifier() == "next-0" })
}

func TestAnnounceChannelMovesTheNowPlayingMessage(t *testing.T) {
	h := newHarness(t, nil)
	h.exec("play", opt("query", "here"))
	h.waitFor("posted", func() bool { return h.snapshot().GetNowPlayingMessageId() != "" })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		return h.client().Execute(&clusterpb.SessionRequest{GuildId: testGuild, Command: "queue", TextChannelId: "222", AnnounceChannelId: "777",
			Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"}}, o...)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new message in the announce channel", func() bool {
		c, _ := h.messages.counts()
		return c == 2 && h.snapshot().GetTextChannelId() == "777"
	})
}
