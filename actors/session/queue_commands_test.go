package session

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// queued is the stored queue as track identifiers.
func queued(s *clusterpb.SessionSnapshot) []string {
	var ids []string
	for _, t := range s.GetQueue() {
		ids = append(ids, t.GetIdentifier())
	}
	return ids
}

// title is a fakeAudio track's title as a reply shows it.
func title(query string, i int) string {
	return commands.Escape(query + " #" + strconv.Itoa(i))
}

// TestQueueCommands runs the queue commands one after the other on one
// session (one cluster member: each costs a second to start).
//
// The queue edits and mode toggles: each reply says what happened, the
// change is in the store when the reply comes, and a refusal leaves the
// stored snapshot as it was. Then /skip with a count drops the tracks
// before the one it plays; /stop ends the music but keeps the bot in
// voice; the commands that act on a track say nothing plays; /leave
// forgets the session, and says so when the bot is not in voice.
func TestQueueCommands(t *testing.T) {
	h := newHarness(t, nil)
	if r := h.exec("leave"); !strings.Contains(r.GetContent(), "not in a voice channel") {
		t.Fatalf("leave before anything: %q", r.GetContent())
	}
	// A four-track playlist: track 0 plays, 1, 2 and 3 wait.
	h.exec("play", opt("query", "mix playlist"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	// The session's own writes (the player's node, the now-playing
	// message) are stored off its mailbox: the steps come after them.
	h.stored("the node and the now-playing message", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetLavalinkNode() != "" && s.GetNowPlayingMessageId() != ""
	})
	if got := queued(h.snapshot()); !slices.Equal(got, []string{"mix playlist-1", "mix playlist-2", "mix playlist-3"}) {
		t.Fatalf("queue after the playlist: %v", got)
	}
	steps := []struct {
		name    string
		cmd     string
		opts    []*clusterpb.Option
		reply   string // the reply contains it
		refused bool   // an ephemeral error that changes nothing
		// queue is the stored queue after the step (nil: check as a set
		// in want, for the shuffle).
		queue []string
		set   []string
		check func(t *testing.T, s *clusterpb.SessionSnapshot)
	}{
		{name: "remove", cmd: "remove", opts: []*clusterpb.Option{opt("position", "2")},
			reply: "Removed **" + title("mix playlist", 2) + "**.", queue: []string{"mix playlist-1", "mix playlist-3"}},
		{name: "remove past the end", cmd: "remove", opts: []*clusterpb.Option{opt("position", "5")},
			refused: true, queue: []string{"mix playlist-1", "mix playlist-3"}},
		{name: "remove without a position", cmd: "remove",
			refused: true, queue: []string{"mix playlist-1", "mix playlist-3"}},
		{name: "move", cmd: "move", opts: []*clusterpb.Option{opt("from", "2"), opt("to", "1")},
			reply: "Moved **" + title("mix playlist", 3) + "** to position 1.", queue: []string{"mix playlist-3", "mix playlist-1"}},
		{name: "move past the end", cmd: "move", opts: []*clusterpb.Option{opt("from", "1"), opt("to", "7")},
			refused: true, queue: []string{"mix playlist-3", "mix playlist-1"}},
		{name: "move without a destination", cmd: "move", opts: []*clusterpb.Option{opt("from", "1")},
			refused: true, queue: []string{"mix playlist-3", "mix playlist-1"}},
		{name: "shuffle", cmd: "shuffle", reply: "Shuffled 2 tracks.", set: []string{"mix playlist-1", "mix playlist-3"}},
		{name: "clear", cmd: "clear", reply: "Cleared 2 tracks from the queue.", queue: []string{}},
		{name: "clear an empty queue", cmd: "clear", reply: "Cleared 0 tracks from the queue.", queue: []string{}},
		{name: "shuffle an empty queue", cmd: "shuffle", reply: "at least two tracks", refused: true, queue: []string{}},
		{name: "loop cycles to track", cmd: "loop_cycle", reply: "Loop: track.", queue: []string{},
			check: func(t *testing.T, s *clusterpb.SessionSnapshot) {
				if s.GetLoop() != "track" {
					t.Errorf("stored loop %q, want track", s.GetLoop())
				}
			}},
		{name: "loop cycles to queue", cmd: "loop_cycle", reply: "Loop: queue.", queue: []string{},
			check: func(t *testing.T, s *clusterpb.SessionSnapshot) {
				if s.GetLoop() != "queue" {
					t.Errorf("stored loop %q, want queue", s.GetLoop())
				}
			}},
		{name: "autoplay refused while looping", cmd: "autoplay_toggle", refused: true, queue: []string{}},
		{name: "loop cycles back to off", cmd: "loop_cycle", reply: "Loop: off.", queue: []string{},
			check: func(t *testing.T, s *clusterpb.SessionSnapshot) {
				if s.GetLoop() != "off" {
					t.Errorf("stored loop %q, want off", s.GetLoop())
				}
			}},
		{name: "loop with an unknown mode", cmd: "loop", opts: []*clusterpb.Option{opt("mode", "forever")}, refused: true, queue: []string{}},
		{name: "autoplay toggles on", cmd: "autoplay_toggle", reply: "Autoplay on.", queue: []string{},
			check: func(t *testing.T, s *clusterpb.SessionSnapshot) {
				if !s.GetAutoplay() {
					t.Error("autoplay not stored on")
				}
			}},
		{name: "autoplay toggles off", cmd: "autoplay_toggle", reply: "Autoplay off.", queue: []string{},
			check: func(t *testing.T, s *clusterpb.SessionSnapshot) {
				if s.GetAutoplay() {
					t.Error("autoplay still stored on")
				}
			}},
		{name: "autoplay with an unknown state", cmd: "autoplay", opts: []*clusterpb.Option{opt("state", "sometimes")}, refused: true, queue: []string{}},
	}
	for _, s := range steps {
		before := h.snapshot().String()
		r := h.exec(s.cmd, s.opts...)
		if r.GetEphemeral() != s.refused || commands.IsError(r) != s.refused {
			t.Fatalf("%s: reply %q (ephemeral %v), want refused=%v", s.name, r.GetContent(), r.GetEphemeral(), s.refused)
		}
		if !strings.Contains(r.GetContent(), s.reply) {
			t.Fatalf("%s: reply %q, want it to say %q", s.name, r.GetContent(), s.reply)
		}
		snap := h.snapshot()
		if s.refused && snap.String() != before {
			t.Fatalf("%s: a refusal changed the snapshot:\n%s\n->\n%s", s.name, before, snap)
		}
		got := queued(snap)
		switch {
		case s.set != nil:
			sorted := slices.Sorted(slices.Values(got))
			if !slices.Equal(sorted, s.set) {
				t.Fatalf("%s: stored queue %v, want the tracks %v", s.name, got, s.set)
			}
		case !slices.Equal(got, s.queue) && !(len(got) == 0 && len(s.queue) == 0):
			t.Fatalf("%s: stored queue %v, want %v", s.name, got, s.queue)
		}
		if s.check != nil {
			s.check(t, snap)
		}
		if snap.GetCurrent().GetIdentifier() != "mix playlist-0" {
			t.Fatalf("%s: the current track changed to %v", s.name, snap.GetCurrent())
		}
	}

	// Skips: the queue again holds tracks 1, 2 and 3 behind track 0.
	h.exec("play", opt("query", "mix playlist"))
	if got := queued(h.snapshot()); len(got) != 4 || got[0] != "mix playlist-0" {
		t.Fatalf("queue after the second playlist: %v", got)
	}
	h.exec("remove", opt("position", "1"))
	if r := h.exec("skip", opt("count", "4")); !commands.IsError(r) || !strings.Contains(r.GetContent(), "1 to 3") {
		t.Fatalf("skip past the queue: %q", r.GetContent())
	}
	if r := h.exec("skip", opt("count", "2")); r.GetContent() != "Skipped 2 tracks." {
		t.Fatalf("skip 2: %q", r.GetContent())
	}
	snap := h.snapshot()
	if snap.GetCurrent().GetIdentifier() != "mix playlist-2" || !slices.Equal(queued(snap), []string{"mix playlist-3"}) {
		t.Fatalf("after skipping 2: current %v, queue %v", snap.GetCurrent().GetIdentifier(), queued(snap))
	}
	h.waitFor("the skipped-to track sent to the player", func() bool {
		p, _ := h.audio.lastPlay()
		return p.Track.Identifier == "mix playlist-2"
	})
	if r := h.exec("skip"); r.GetContent() != "Skipped **"+title("mix playlist", 2)+"**." {
		t.Fatalf("skip 1: %q", r.GetContent())
	}

	if r := h.exec("stop"); r.GetContent() != "Stopped and cleared the queue." {
		t.Fatalf("stop: %q", r.GetContent())
	}
	snap = h.snapshot()
	if snap.GetCurrent() != nil || len(snap.GetQueue()) != 0 || snap.GetVoiceChannelId() != "111" {
		t.Fatalf("after stop: current %v, queue %v, voice %q; want nothing queued, still in voice",
			snap.GetCurrent(), queued(snap), snap.GetVoiceChannelId())
	}
	for _, c := range []struct {
		cmd  string
		opts []*clusterpb.Option
	}{{"stop", nil}, {"skip", nil}, {"pause", nil}, {"seek", []*clusterpb.Option{opt("position", "0:10")}}} {
		if r := h.exec(c.cmd, c.opts...); r.GetContent() != commands.NothingPlaying().GetContent() {
			t.Fatalf("%s with nothing playing: %q", c.cmd, r.GetContent())
		}
	}
	// Still in voice: /leave acts.
	if r := h.exec("leave"); r.GetContent() != "Left the voice channel and cleared the queue." {
		t.Fatalf("leave after stop: %q", r.GetContent())
	}
	h.stored("the session forgotten", func(s *clusterpb.SessionSnapshot) bool { return s == nil })
}
