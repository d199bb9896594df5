//go:build !race

package lavalink

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// eventsOf lists the forwarded events of guild, in order.
func (h *harness) eventsOf(guild string) []*clusterpb.PlayerEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*clusterpb.PlayerEvent
	for _, e := range h.events {
		if e.GetGuildId() == guild {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) waitEvent(guild, what string, cond func(*clusterpb.PlayerEvent) bool) *clusterpb.PlayerEvent {
	h.t.Helper()
	var found *clusterpb.PlayerEvent
	h.waitFor(what, 20*time.Second, func() bool {
		for _, e := range h.eventsOf(guild) {
			if cond(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// TestEmuPlayIDSurvivesReencoding: against the emulator (whose events
// carry the track re-encoded with its position, as Lavalink's do), every
// event of a play comes back with the play ID the session sent, from
// TrackStart to a TrackEnd "finished" at the end of the track, and
// through a TrackException and its TrackEnd.
func TestEmuPlayIDSurvivesReencoding(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 1, emu: lavalinkemu.Config{Speed: 200}})
	h.waitUsable(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	loaded, err := h.c.Load(ctx, "ytsearch:identity parade")
	if err != nil || len(loaded.Tracks) < 2 {
		t.Fatalf("load: %v (%d tracks)", err, len(loaded.Tracks))
	}
	const g = "900000000000000031"
	voice := audio.Voice{ChannelID: "800000000000000031", SessionID: "vs", Token: "tok", Endpoint: "voice.example:443"}
	first, second := loaded.Tracks[0], loaded.Tracks[1]
	if _, err := h.c.Play(ctx, g, audio.PlayRequest{Track: first, Volume: 100, Voice: voice, PlayID: "4.1"}); err != nil {
		t.Fatal(err)
	}
	end := h.waitEvent(g, "the first track's end", func(e *clusterpb.PlayerEvent) bool {
		return e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END
	})
	if end.GetEndReason() != "finished" || end.GetPlayId() != "4.1" || end.GetTrackIdentifier() != first.Identifier {
		t.Fatalf("TrackEnd %v", end)
	}
	start := h.waitEvent(g, "the first track's start", func(e *clusterpb.PlayerEvent) bool {
		return e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START
	})
	if start.GetPlayId() != "4.1" {
		t.Fatalf("TrackStart %v", start)
	}

	// A track that fails while playing: exception, then its TrackEnd.
	e := h.emus["n0"]
	e.FailWhenPlayed(second.Identifier, 20_000, "Something broke when playing the track.")
	if _, err := h.c.Play(ctx, g, audio.PlayRequest{Track: second, Volume: 100, Voice: voice, PlayID: "4.2"}); err != nil {
		t.Fatal(err)
	}
	exc := h.waitEvent(g, "the exception", func(e *clusterpb.PlayerEvent) bool {
		return e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION
	})
	after := h.waitEvent(g, "the failed track's end", func(e *clusterpb.PlayerEvent) bool {
		return e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END && e.GetPlayId() == "4.2"
	})
	if exc.GetPlayId() != "4.2" || exc.GetTrackIdentifier() != second.Identifier || exc.GetMessage() == "" || after.GetEndReason() != "finished" {
		t.Fatalf("exception %v, then end %v", exc, after)
	}
}

// TestEmuNodeWithoutResumingIsUsed: Lavalink-compatible servers without
// session resuming (PATCH /v4/sessions → 404) take players; when the
// websocket of one drops, its players move at once.
func TestEmuNodeWithoutResumingIsUsed(t *testing.T) {
	h := newHarness(t, harnessOpts{nodes: 2, emu: lavalinkemu.Config{NoResume: true}})
	h.waitUsable(2)
	if v := h.metric("ensemble_lavalink_node_resuming", "node", "n0"); v != 0 {
		t.Fatalf("ensemble_lavalink_node_resuming{node=n0} = %v, want 0", v)
	}
	sessions := h.start(4)
	var victim string
	for _, s := range sessions {
		victim = h.nodeOf(s)
	}
	on := 0
	for _, s := range sessions {
		if h.nodeOf(s) == victim {
			on++
		}
	}
	h.emus[victim].DropWebsockets()
	// The node's players ended with its session: each is told at once,
	// and plays again (on the other node, or on this one if it is back
	// first, in a new session).
	h.waitFor("every player of the dropped node playing again", 15*time.Second, func() bool {
		moved := 0
		for _, s := range sessions {
			h.mu.Lock()
			if s.lost > 0 && s.plays > 0 {
				moved++
			}
			h.mu.Unlock()
		}
		return moved == on
	})
	players := h.players()
	for _, s := range sessions {
		g, _ := strconv.ParseUint(s.guild, 10, 64)
		if ps := players[g]; len(ps) != 1 || ps[0].Track == nil {
			t.Fatalf("guild %s has players %+v", s.guild, ps)
		}
	}
}
