// Package sandbox runs Ensemble without a Discord account or a Lavalink
// server: one node against the built-in Discord and Lavalink emulators on
// loopback, and a scripted listener who joins a voice channel, queues
// music, presses buttons, skips, listens as a track ends by itself and the
// next one starts, loops and stops, while the terminal shows what a
// Discord user would see. It ends by itself.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/node"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// Options tune a sandbox run.
type Options struct {
	// Speed of the emulated playback clock (tracks finish faster).
	Speed float64
	// Pause between script steps, so a person can follow.
	Pause time.Duration
	// Log receives the node's own logs.
	Log *slog.Logger
}

// Run plays the script, writing what users would see to out.
func Run(ctx context.Context, out io.Writer, o Options) error {
	if o.Speed <= 0 {
		o.Speed = 30
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := os.MkdirTemp("", "ensemble-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	dc, err := discordemu.Start(ctx, discordemu.Config{BotName: "Ensemble"})
	if err != nil {
		return fmt.Errorf("discord emulator: %w", err)
	}
	defer dc.Close()
	const password = "sandbox"
	lava, err := lavalinkemu.Start(ctx, lavalinkemu.Config{Password: password, Speed: o.Speed, PlayerUpdateInterval: 500 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("lavalink emulator: %w", err)
	}
	defer lava.Close()

	s := &script{ctx: ctx, out: out, dc: dc, lava: lava, pause: o.Pause}
	s.guild = discordemu.SnowflakeForShard(0, 1)
	s.text, s.voice, s.user = discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake()
	// Alex manages the server, so the DJ commands work too.
	admins := discordemu.NewSnowflake()
	if err := dc.AddGuild(discordemu.Guild{
		ID: s.guild, Name: "Sandbox",
		Channels: []discordemu.Channel{{ID: s.text, Name: "music", Type: discordemu.ChannelText}, {ID: s.voice, Name: "Lounge", Type: discordemu.ChannelVoice}},
		Roles:    []discordemu.Role{{ID: admins, Name: "Admins", Permissions: discordemu.PermManageGuild}},
		Members:  []discordemu.Member{{User: discordemu.User{ID: s.user, Username: "alex", GlobalName: "Alex"}, Roles: []discordemu.Snowflake{admins}}},
	}); err != nil {
		return err
	}

	cfg := config.Default()
	cfg.Node.AdminAddr = "127.0.0.1:0"
	cfg.Store.Bbolt.Path = filepath.Join(dir, "ensemble.db")
	cfg.Discord.RESTURL, cfg.Discord.GatewayURL = dc.RESTURL(), dc.GatewayURL()
	cfg.Discord.Token = secret.New(dc.Token())
	cfg.Lavalink.Nodes = []config.LavalinkNode{{Name: "sandbox", Address: lava.Addr(), Password: secret.New(password)}}
	cfg.Limits.CommandCooldown = 0
	// The scripted listener expects each command's own answer: a stall of
	// a busy machine must not turn one into "busy".
	cfg.Limits.ShardMaxLag = 2500 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		return err
	}
	n, err := node.Start(ctx, cfg, node.Options{Log: o.Log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(sctx)
	}()
	fmt.Fprintf(out, "Sandbox: Discord emulator at %s, Lavalink emulator at %s, node admin at http://%s\n", dc.RESTURL(), lava.URL(), n.AdminAddr())
	if err := s.waitReady(n); err != nil {
		return err
	}
	return s.play()
}

type script struct {
	ctx                      context.Context
	out                      io.Writer
	dc                       *discordemu.Emulator
	lava                     *lavalinkemu.Emulator
	pause                    time.Duration
	guild, text, voice, user discordemu.Snowflake
	lastNowPlaying           string
}

func (s *script) waitReady(n *node.Node) error {
	deadline := time.Now().Add(30 * time.Second)
	for !n.Readiness().Snapshot().Ready || len(s.dc.Commands(0)) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("node not ready: %+v", n.Readiness().Snapshot())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(s.out, "Bot online; slash commands registered.")
	return nil
}

func (s *script) play() error {
	steps := []func() error{
		func() error { return s.command("play", discordemu.StringOption("query", "lofi hip hop")) },
		func() error {
			fmt.Fprintln(s.out, "\n» Alex joins the voice channel 🔊 Lounge")
			return s.dc.JoinVoice(s.guild, s.user, s.voice)
		},
		func() error { return s.command("play", discordemu.StringOption("query", "lofi hip hop")) },
		func() error {
			return s.command("play", discordemu.StringOption("query", "https://www.youtube.com/playlist?list=PLsandbox"))
		},
		func() error {
			return s.command("play", discordemu.StringOption("query", "synthwave drive"), discordemu.BoolOption("next", true))
		},
		func() error { return s.command("queue") },
		func() error { return s.button(commands.ButtonPauseResume, "⏸ pause") },
		func() error { return s.button(commands.ButtonPauseResume, "▶ resume") },
		func() error { return s.command("volume", discordemu.IntOption("level", 80)) },
		func() error { return s.command("seek", discordemu.StringOption("position", "1:00")) },
		func() error { return s.command("nowplaying") },
		func() error { return s.button(commands.ButtonSkip, "⏭ skip") },
		s.listenToTheEnd,
		func() error { return s.command("loop", discordemu.StringOption("mode", "track")) },
		func() error { return s.command("autoplay", discordemu.StringOption("state", "on")) },
		func() error { return s.command("loop", discordemu.StringOption("mode", "off")) },
		func() error { return s.command("volume", discordemu.IntOption("level", 201)) },
		func() error { return s.command("skip", discordemu.IntOption("count", 2)) },
		func() error { return s.command("stop") },
		func() error { return s.command("leave") },
	}
	for _, step := range steps {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
		s.showNowPlaying()
		time.Sleep(s.pause)
	}
	time.Sleep(700 * time.Millisecond)
	s.showNowPlaying()
	fmt.Fprintln(s.out, "\nSandbox finished.")
	return nil
}

// listenToTheEnd seeks close to the end of the current track and lets it
// end by itself: the next track in the queue starts with no command.
func (s *script) listenToTheEnd() error {
	var playing *lavalinkemu.PlayerInfo
	for _, p := range s.lava.Players("") {
		if p.GuildID == uint64(s.guild) && p.Track != nil {
			playing = &p
		}
	}
	if playing == nil {
		return errors.New("nothing plays to listen to the end of")
	}
	length := time.Duration(playing.Track.Info.Length) * time.Millisecond
	at := max(length-5*time.Second, 0).Truncate(time.Second)
	mark := s.lava.PlayerEvents(uint64(s.guild))
	if err := s.command("seek", discordemu.StringOption("position", music.FormatDuration(at))); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "\n» Alex listens to the end of %q…\n", playing.Track.Info.Title)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	after := int64(0)
	if len(mark) > 0 {
		after = mark[len(mark)-1].Seq
	}
	end, err := s.lava.WaitPlayerEvent(ctx, uint64(s.guild), func(ev lavalinkemu.PlayerEventRecord) bool {
		return ev.Seq > after && ev.Type == "TrackEndEvent" && ev.Reason == lavalinkemu.EndFinished
	})
	if err != nil {
		return fmt.Errorf("the track never ended: %w", err)
	}
	next, err := s.lava.WaitPlayerEvent(ctx, uint64(s.guild), func(ev lavalinkemu.PlayerEventRecord) bool {
		return ev.Seq > end.Seq && ev.Type == "TrackStartEvent"
	})
	if err != nil {
		return fmt.Errorf("nothing started after the track ended: %w", err)
	}
	fmt.Fprintf(s.out, "  ♪ %q ended by itself; %q starts at once (%v later).\n",
		end.Title, next.Title, next.Time.Sub(end.Time).Round(10*time.Microsecond))
	return nil
}

func (s *script) command(name string, opts ...discordemu.Option) error {
	fmt.Fprintf(s.out, "\n» Alex: /%s%s\n", name, optionText(opts))
	ix, err := s.dc.InvokeCommand(s.guild, s.user, s.text, name, opts...)
	if err != nil {
		return err
	}
	return s.answer(ix)
}

func (s *script) button(action, label string) error {
	msg, ok := s.nowPlaying()
	if !ok {
		return fmt.Errorf("no now-playing message to press %s on", label)
	}
	fmt.Fprintf(s.out, "\n» Alex presses [%s]\n", label)
	ix, err := s.dc.PressButton(s.guild, s.user, msg.ID, commands.CustomID(action, s.guild.String()))
	if err != nil {
		return err
	}
	return s.answer(ix)
}

func (s *script) answer(ix *discordemu.Interaction) error {
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	res, err := ix.Wait(ctx)
	if err != nil {
		return err
	}
	content, embeds, ephemeral := res.Content, res.Embeds, res.Ephemeral()
	note := ""
	if res.Type == discordemu.ResponseDeferredMessage {
		msg, err := ix.WaitAnswer(ctx)
		if err != nil {
			return err
		}
		content, embeds, ephemeral, note = msg.Content, msg.Embeds, msg.Ephemeral(), " (after \"Ensemble is thinking…\")"
	}
	who := "Ensemble"
	if ephemeral {
		who = "Ensemble (only you can see this)"
	}
	fmt.Fprintf(s.out, "  %s%s, %d ms:\n%s", who, note, res.Latency.Milliseconds(), indent(render(content, embeds, nil)))
	return nil
}

// nowPlaying is the bot's newest channel message with buttons.
func (s *script) nowPlaying() (discordemu.Message, bool) {
	msgs := s.dc.Messages(s.text)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].InteractionID == 0 && !msgs[i].Deleted {
			return msgs[i], true
		}
	}
	return discordemu.Message{}, false
}

func (s *script) showNowPlaying() {
	time.Sleep(600 * time.Millisecond) // the bot coalesces edits for 500 ms
	msg, ok := s.nowPlaying()
	if !ok {
		return
	}
	text := render(msg.Content, msg.Embeds, msg.CustomIDs())
	if text == s.lastNowPlaying {
		return
	}
	s.lastNowPlaying = text
	when := "posted " + msg.Timestamp.Format("15:04:05")
	if !msg.EditedTimestamp.IsZero() {
		when = "edited " + msg.EditedTimestamp.Format("15:04:05")
	}
	fmt.Fprintf(s.out, "  ┌ #music now-playing message (%s)\n%s", when, indent(text))
}

func optionText(opts []discordemu.Option) string {
	var b strings.Builder
	for _, o := range opts {
		raw, _ := json.Marshal(o)
		var v struct {
			Name  string `json:"name"`
			Value any    `json:"value"`
		}
		_ = json.Unmarshal(raw, &v)
		fmt.Fprintf(&b, " %s:%v", v.Name, v.Value)
	}
	return b.String()
}

func render(content string, embeds []discordemu.Embed, buttons []string) string {
	var b strings.Builder
	if content != "" {
		b.WriteString(content + "\n")
	}
	for _, e := range embeds {
		if e.Title != "" {
			b.WriteString("▌" + e.Title + "\n")
		}
		if e.Description != "" {
			b.WriteString(e.Description + "\n")
		}
		for _, f := range e.Fields {
			b.WriteString(f.Name + ": " + f.Value + "\n")
		}
	}
	if len(buttons) > 0 {
		names := make([]string, len(buttons))
		for i, id := range buttons {
			parts := strings.Split(id, ":")
			names[i] = "[" + parts[len(parts)/2] + "]"
		}
		b.WriteString(strings.Join(names, " ") + "\n")
	}
	return b.String()
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "  │ " + strings.Join(lines, "\n  │ ") + "\n"
}
