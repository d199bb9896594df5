//go:build !race

package node

import (
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// TestCommandMatrix walks every command as the right and the wrong member:
// each refusal is an ephemeral, clear reply and leaves the player and the
// queue as they were.
func TestCommandMatrix(t *testing.T) {
	w := newWorld(t, worldOpts{})
	d := discordemu.StringOption

	// /play with the member in no voice channel.
	wantRefusal(t, w.run(w.listener, "play", d("query", "lofi beats")), "voice channel")

	w.join(w.listener, w.voice)
	w.join(w.dj, w.voice)
	w.join(w.mod, w.voice)
	w.join(w.outsider, w.voice2)

	// Queries Lavalink must never see.
	for _, q := range []string{"file:///etc/passwd", "local:/etc/passwd", strings.Repeat("a", 3000)} {
		wantRefusal(t, w.run(w.listener, "play", d("query", q)), "")
	}
	if n := len(w.lava.RequestsTo("GET", "/v4/loadtracks")); n != 0 {
		t.Fatalf("refused queries reached Lavalink (%d loadtracks)", n)
	}

	// /play search → plays in the member's channel.
	r := w.run(w.listener, "play", d("query", "lofi beats"))
	if r.ephemeral {
		t.Fatalf("/play answer is ephemeral: %q", r.text())
	}
	first := w.player(playing(""))
	if bot, ok := w.discord.BotVoiceState(w.guild); !ok || bot.ChannelID != w.voice {
		t.Fatalf("bot voice state %+v, want channel %d", bot, w.voice)
	}
	wantContains(t, r, first.Track.Info.Title)

	// Playing from another channel is refused.
	wantRefusal(t, w.run(w.outsider, "play", d("query", "other")), "voice channel")

	// URL, playlist and next.
	wantContains(t, w.run(w.listener, "play", d("query", "https://www.youtube.com/watch?v=dQw4w9WgXcQ")), "position 1")
	wantContains(t, w.run(w.listener, "play", d("query", "https://www.youtube.com/playlist?list=PL42")), "playlist")
	r = w.run(w.listener, "play", d("query", "scsearch:jazz"), discordemu.BoolOption("next", true))
	wantContains(t, r, "position 1")
	queue := w.run(w.listener, "queue")
	if !queue.ephemeral {
		t.Fatal("/queue is not ephemeral")
	}
	wantContains(t, queue, "jazz")

	// The now-playing message with its buttons is in the text channel.
	np := waitMessage(t, w, func(m discordemu.Message) bool {
		return m.InteractionID == 0 && len(m.Embeds) > 0 && len(m.Components) > 0
	})

	// Pause/resume: anyone in the bot's channel; not from another channel.
	wantRefusal(t, w.run(w.outsider, "pause"), "")
	wantContains(t, w.run(w.listener, "pause"), "paused")
	w.player(func(p lavalinkemu.PlayerInfo) bool { return p.Paused })
	wantRefusal(t, w.run(w.listener, "pause"), "already paused")
	wantContains(t, w.run(w.listener, "resume"), "resumed")
	w.player(func(p lavalinkemu.PlayerInfo) bool { return !p.Paused })

	// DJ actions refused for a listener, allowed for the DJ and a moderator.
	before := w.player(playing(""))
	for _, c := range []struct {
		name string
		opts []discordemu.Option
	}{
		{"skip", nil}, {"stop", nil}, {"clear", nil}, {"seek", []discordemu.Option{d("position", "0:30")}},
		{"volume", []discordemu.Option{discordemu.IntOption("level", 50)}}, {"loop", []discordemu.Option{d("mode", "track")}},
		{"shuffle", nil}, {"remove", []discordemu.Option{discordemu.IntOption("position", 1)}},
		{"move", []discordemu.Option{discordemu.IntOption("from", 1), discordemu.IntOption("to", 2)}},
		{"autoplay", []discordemu.Option{d("state", "on")}}, {"leave", nil}, {"settings", nil},
	} {
		wantRefusal(t, w.run(w.listener, c.name, c.opts...), "dj")
	}
	after := w.player(playing(""))
	if after.Track.Info.Identifier != before.Track.Info.Identifier || after.Volume != before.Volume {
		t.Fatalf("refused DJ commands changed the player: %+v -> %+v", before, after)
	}
	if q2 := w.run(w.listener, "queue"); q2.text() != queue.text() {
		t.Fatalf("refused DJ commands changed the queue:\n%s\n->\n%s", queue.text(), q2.text())
	}

	// Volume bounds; the refused value never reaches the player.
	wantRefusal(t, w.run(w.dj, "volume", discordemu.IntOption("level", 201)), "200")
	wantContains(t, w.run(w.dj, "volume", discordemu.IntOption("level", 150)), "150")
	w.player(func(p lavalinkemu.PlayerInfo) bool { return p.Volume == 150 })

	// Seek beyond the track, garbage, then a real seek.
	cur := w.player(playing(""))
	wantRefusal(t, w.run(w.dj, "seek", d("position", "99:59:59")), "")
	wantRefusal(t, w.run(w.dj, "seek", d("position", "soon")), "")
	wantContains(t, w.run(w.dj, "seek", d("position", "0:30")), "0:30")
	w.player(func(p lavalinkemu.PlayerInfo) bool {
		return p.Track != nil && p.Track.Info.Identifier == cur.Track.Info.Identifier && p.Position >= 30_000 && p.Position < 40_000
	})

	// Loop and autoplay exclude each other, both ways.
	wantContains(t, w.run(w.dj, "loop", d("mode", "queue")), "queue")
	wantRefusal(t, w.run(w.dj, "autoplay", d("state", "on")), "loop")
	wantContains(t, w.run(w.dj, "loop", d("mode", "off")), "off")
	wantContains(t, w.run(w.dj, "autoplay", d("state", "on")), "autoplay on")
	wantRefusal(t, w.run(w.dj, "loop", d("mode", "track")), "autoplay")
	wantContains(t, w.run(w.dj, "autoplay", d("state", "off")), "autoplay off")

	// Queue edits.
	wantRefusal(t, w.run(w.dj, "remove", discordemu.IntOption("position", 0)), "")
	wantRefusal(t, w.run(w.dj, "remove", discordemu.IntOption("position", 999)), "")
	wantContains(t, w.run(w.dj, "move", discordemu.IntOption("from", 1), discordemu.IntOption("to", 2)), "position 2")
	wantContains(t, w.run(w.dj, "remove", discordemu.IntOption("position", 1)), "removed")
	wantContains(t, w.run(w.dj, "shuffle"), "shuffled")

	// Skip moves to another track.
	wantContains(t, w.run(w.mod, "skip"), "skipped")
	w.player(func(p lavalinkemu.PlayerInfo) bool {
		return p.Track != nil && p.Track.Info.Identifier != cur.Track.Info.Identifier
	})

	// Buttons follow the same rules.
	pause := commands.CustomID(commands.ButtonPauseResume, w.guild.String())
	ix, err := w.discord.PressButton(w.guild, w.outsider, np.ID, pause)
	if err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, w.await(ix), "")
	ix, err = w.discord.PressButton(w.guild, w.listener, np.ID, pause)
	if err != nil {
		t.Fatal(err)
	}
	w.await(ix)
	w.player(func(p lavalinkemu.PlayerInfo) bool { return p.Paused })
	ix, err = w.discord.PressButton(w.guild, w.listener, np.ID, commands.CustomID(commands.ButtonSkip, w.guild.String()))
	if err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, w.await(ix), "dj")

	// Settings: a moderator sets the DJ role and the default volume.
	wantRefusal(t, w.run(w.listener, "settings", discordemu.IntOption("default_volume", 80)), "dj")
	wantRefusal(t, w.run(w.mod, "settings", discordemu.IntOption("default_volume", 201)), "200")
	wantContains(t, w.run(w.mod, "settings", discordemu.IntOption("default_volume", 80)), "80")

	// Clear, stop, leave.
	wantContains(t, w.run(w.dj, "clear"), "cleared")
	wantContains(t, w.run(w.dj, "stop"), "stopped")
	w.player(func(p lavalinkemu.PlayerInfo) bool { return p.Track == nil })
	wantRefusal(t, w.run(w.dj, "skip"), "nothing")
	wantContains(t, w.run(w.dj, "leave"), "left")
	waitFor(t, "bot leaves voice", func() bool {
		s, ok := w.discord.BotVoiceState(w.guild)
		return !ok || s.ChannelID == 0
	})
	if errs := w.discord.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors recorded by the Discord emulator: %+v", errs)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitMessage(t *testing.T, w *world, cond func(discordemu.Message) bool) discordemu.Message {
	t.Helper()
	var found discordemu.Message
	waitFor(t, "now-playing message", func() bool {
		for _, m := range w.discord.Messages(w.text) {
			if cond(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}
