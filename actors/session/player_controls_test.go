package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// count counts the calls named call that reached the Audio port.
func (a *fakeAudio) count(call string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if c == call {
			n++
		}
	}
	return n
}

// plainError wraps no audio sentinel (a timeout, say).
type plainError string

func (e plainError) Error() string { return string(e) }

// channelMessages is a channel where users delete messages and posts can
// fail: each post gets a new ID; an edit of a deleted message fails as
// Discord's does (10008, commands.ErrUnknownMessage).
type channelMessages struct {
	mu       sync.Mutex
	posted   []string
	deleted  map[string]bool
	failPost int // posts to fail before one succeeds
	attempts int // posts tried
}

func (m *channelMessages) CreateMessage(_ context.Context, _ string, _ *clusterpb.Reply) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts++
	if m.failPost > 0 {
		m.failPost--
		return "", errors.New("discord: 503 Service Unavailable")
	}
	id := fmt.Sprint(900000000000000100 + len(m.posted))
	m.posted = append(m.posted, id)
	return id, nil
}

func (m *channelMessages) EditMessage(_ context.Context, _, id string, _ *clusterpb.Reply) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deleted[id] {
		return fmt.Errorf("edit message %s: %w", id, commands.ErrUnknownMessage)
	}
	return nil
}

func (m *channelMessages) delete(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deleted == nil {
		m.deleted = map[string]bool{}
	}
	m.deleted[id] = true
}

func (m *channelMessages) posts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.posted...)
}

// TestPlayerControls runs the player's controls on one session (one
// cluster member: each costs a second to start), and the now-playing
// message that shows them.
//
//   - With nothing playing, /volume only changes the session's setting,
//     which the first play then uses (the session, having nothing to
//     play, is not stored).
//   - A now-playing post Discord failed is made at the next change.
//   - Pause, resume and the pause/resume button each reach Lavalink and
//     store the paused state; asking for the state the player is in is
//     refused without a call; when Lavalink refuses, the user hears why
//     and the session stays as it was, in memory as in the store.
//   - /volume and /seek reach Lavalink; a refusal leaves the volume and
//     the position where they were.
//   - A now-playing message someone deleted is posted anew, and the new
//     one stored.
func TestPlayerControls(t *testing.T) {
	msgs := &channelMessages{failPost: 1}
	h := newHarness(t, func(d *Deps) { d.Messages = msgs })

	if r := h.exec("volume", opt("level", "30")); r.GetContent() != "Volume set to 30%." {
		t.Fatalf("volume with nothing playing: %q", r.GetContent())
	}
	if n := h.audio.count("volume"); n != 0 {
		t.Fatalf("volume with nothing playing made %d Lavalink calls", n)
	}
	if s := h.snapshot(); s != nil {
		t.Fatalf("a session with nothing to play was stored: %v", s)
	}
	h.exec("play", opt("query", "calm"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	if p, _ := h.audio.lastPlay(); p.Volume != 30 {
		t.Fatalf("the player starts at volume %d, want the session's 30", p.Volume)
	}

	// The first post fails; the next change posts it.
	h.waitFor("the first post tried", func() bool {
		msgs.mu.Lock()
		defer msgs.mu.Unlock()
		return msgs.attempts == 1
	})
	if r := h.exec("volume", opt("level", "50")); r.GetContent() != "Volume set to 50%." || h.audio.count("volume") != 1 {
		t.Fatalf("volume while playing: %q, %d Lavalink calls", r.GetContent(), h.audio.count("volume"))
	}
	first := h.stored("the now-playing message", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetNowPlayingMessageId() != ""
	}).GetNowPlayingMessageId()
	if p := msgs.posts(); len(p) != 1 || p[0] != first {
		t.Fatalf("posted %v, stored %s", p, first)
	}

	refused := fmt.Errorf("lavalink: %w", audio.ErrRefused)
	for _, s := range []struct {
		name   string
		cmd    string
		fail   error // the Audio port's answer to the pause call
		reply  string
		call   bool // the command reaches Lavalink
		paused bool // stored and in memory afterwards
	}{
		{name: "resume while playing", cmd: "resume", reply: "Already playing.", paused: false},
		{name: "pause", cmd: "pause", reply: "Paused.", call: true, paused: true},
		{name: "pause while paused", cmd: "pause", reply: "Already paused.", paused: true},
		{name: "refused resume", cmd: "resume", fail: refused, reply: "couldn't do that right now", call: true, paused: true},
		{name: "button resumes", cmd: "pause_resume", reply: "Resumed.", call: true, paused: false},
		{name: "refused button pause", cmd: "pause_resume", fail: fmt.Errorf("lavalink: %w", audio.ErrNoNode),
			reply: "No audio node is available", call: true, paused: false},
		{name: "button pauses", cmd: "pause_resume", reply: "Paused.", call: true, paused: true},
		{name: "resume", cmd: "resume", reply: "Resumed.", call: true, paused: false},
	} {
		h.audio.setFail("pause", s.fail)
		calls := h.audio.count("pause")
		r := h.exec(s.cmd)
		if !strings.Contains(r.GetContent(), s.reply) {
			t.Fatalf("%s: reply %q, want %q", s.name, r.GetContent(), s.reply)
		}
		if wantErr := s.fail != nil || strings.HasPrefix(s.reply, "Already"); commands.IsError(r) != wantErr {
			t.Fatalf("%s: reply %q is an error: %v, want %v", s.name, r.GetContent(), commands.IsError(r), wantErr)
		}
		if got := h.audio.count("pause") - calls; (got == 1) != s.call || got > 1 {
			t.Fatalf("%s: %d pause calls reached Lavalink", s.name, got)
		}
		if got := h.snapshot().GetPaused(); got != s.paused {
			t.Fatalf("%s: stored paused %v, want %v", s.name, got, s.paused)
		}
	}
	h.audio.setFail("pause", nil)

	h.audio.setFail("volume", fmt.Errorf("lavalink: %w", audio.ErrNoNode))
	if r := h.exec("volume", opt("level", "70")); !commands.IsError(r) || !strings.Contains(r.GetContent(), "No audio node") {
		t.Fatalf("refused volume: %q", r.GetContent())
	}
	h.audio.setFail("volume", nil)
	if r := h.exec("seek", opt("position", "9:00")); !commands.IsError(r) || h.audio.count("seek") != 0 {
		t.Fatalf("seek past the end of a 3-minute track: %q, %d Lavalink calls", r.GetContent(), h.audio.count("seek"))
	}
	h.audio.setFail("seek", plainError("the server did not answer"))
	if r := h.exec("seek", opt("position", "2:00")); !commands.IsError(r) || !strings.Contains(r.GetContent(), "did not answer") {
		t.Fatalf("refused seek: %q", r.GetContent())
	}
	h.audio.setFail("seek", nil)
	// A stored change shows what the session holds now: the volume, the
	// paused state and the position from before the refusals.
	h.exec("loop", opt("mode", "track"))
	s := h.snapshot()
	if s.GetVolume() != 50 || s.GetPaused() {
		t.Fatalf("stored volume %d, paused %v after refused changes, want 50, playing", s.GetVolume(), s.GetPaused())
	}
	if pos := time.Duration(s.GetPositionMs()) * time.Millisecond; pos >= time.Minute {
		t.Fatalf("stored position %v after a refused seek to 2:00", pos)
	}
	if r := h.exec("seek", opt("position", "2:00")); r.GetContent() != "Seeked to 2:00." {
		t.Fatalf("seek: %q", r.GetContent())
	}
	if pos := h.snapshot().GetPositionMs(); pos < 120_000 {
		t.Fatalf("stored position %d ms after a seek to 2:00", pos)
	}

	msgs.delete(first)
	h.exec("volume", opt("level", "80"))
	second := h.stored("a new now-playing message", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetNowPlayingMessageId() != first && s.GetNowPlayingMessageId() != ""
	}).GetNowPlayingMessageId()
	if p := msgs.posts(); len(p) != 2 || p[1] != second {
		t.Fatalf("posted %v, stored %s", p, second)
	}
}
