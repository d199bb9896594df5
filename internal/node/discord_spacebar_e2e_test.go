//go:build !race

package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// spacebarConfig is the Discord emulator set up like a third-party
// Discord-compatible server (Spacebar): a token of no documented shape, an
// application ID that is not the bot user's ID, and interactions with
// channel_id but no channel object.
func spacebarConfig() discordemu.Config {
	return discordemu.Config{AppID: discordemu.NewSnowflake(), BotUserID: discordemu.NewSnowflake(),
		OpaqueToken: true, OmitInteractionChannel: true}
}

// TestDiscordCompatibleServer runs the whole bot against such a server:
// the IDs come from READY, /play plays, and what the bot does not know is
// refused, never left unanswered.
func TestDiscordCompatibleServer(t *testing.T) {
	cfg := spacebarConfig()
	d, err := discordemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	w := newWorld(t, worldOpts{discord: d})

	// Commands were registered under READY's application.id.
	puts := d.Recorder().RequestsMatching("PUT", "/applications/*/commands")
	if len(puts) == 0 {
		t.Fatal("no command registration")
	}
	for _, rq := range puts {
		if rq.Path != "/applications/"+cfg.AppID.String()+"/commands" || rq.Status != 200 {
			t.Fatalf("registration %s %s = %d; want under application %s", rq.Method, rq.Path, rq.Status, cfg.AppID)
		}
	}
	// Lavalink was told READY's user.id.
	hs := w.lava.RequestsTo("GET", "/v4/websocket")
	if len(hs) == 0 {
		t.Fatal("no Lavalink websocket handshake")
	}
	for _, h := range hs {
		if got := h.Header.Get("User-Id"); got != cfg.BotUserID.String() {
			t.Fatalf("Lavalink User-Id %q; want the bot user %s (not application %s)", got, cfg.BotUserID, cfg.AppID)
		}
	}

	// /play end to end: the channel of every answer comes from channel_id.
	w.join(w.listener, w.voice)
	r := w.run(w.listener, "play", discordemu.StringOption("query", "lofi beats"))
	if r.ephemeral {
		t.Fatalf("/play answered privately: %q", r.text())
	}
	p := w.player(playing(""))
	wantContains(t, r, p.Track.Info.Title)
	np := waitMessage(t, w, func(m discordemu.Message) bool {
		return m.InteractionID == 0 && len(m.Embeds) > 0 && len(m.Components) > 0
	})
	if np.ChannelID != w.text {
		t.Fatalf("now-playing message in channel %s; want %s", np.ChannelID, w.text)
	}
	wantContains(t, w.run(w.listener, "pause"), "paused")

	// What a client with an outdated command list sends gets an answer.
	for _, tc := range []struct {
		name string
		opts []discordemu.Option
		want string
	}{
		{"eval", nil, "isn't available here"},
		{"volume", []discordemu.Option{discordemu.StringOption("level", "loud")}, "couldn't read this command's options"},
		{"pause", []discordemu.Option{discordemu.BoolOption("hard", true)}, "couldn't read this command's options"},
	} {
		ix, err := d.InvokeUnregistered(w.guild, w.listener, w.text, tc.name, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, w.await(ix), tc.want)
	}
	// The refusals changed nothing.
	w.player(func(p lavalinkemu.PlayerInfo) bool { return p.Paused && p.Track != nil })
	if errs := d.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
	w.stop()
	if strings.Contains(w.logs.String(), d.Token()) {
		t.Fatal("the bot token appears in the logs")
	}
}

// unreadyNode is a node whose shards never reach READY (its gateway URL
// refuses connections), against a Discord emulator for REST and a Lavalink
// emulator: the test plays READY by calling discordReady.
type unreadyNode struct {
	n       *Node
	discord *discordemu.Emulator
	lava    *lavalinkemu.Emulator
	logs    *syncWriter
	cfg     discordemu.Config
	stopped sync.Once
}

func startUnready(t *testing.T) *unreadyNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	u := &unreadyNode{cfg: spacebarConfig(), logs: &syncWriter{b: &strings.Builder{}}}
	var err error
	if u.discord, err = discordemu.Start(ctx, u.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.discord.Close)
	if u.lava, err = lavalinkemu.Start(ctx, lavalinkemu.Config{Password: lavalinkPassword}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.lava.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	cfg := config.Default()
	cfg.Node.AdminAddr = "127.0.0.1:0"
	cfg.Discord.RESTURL = u.discord.RESTURL()
	cfg.Discord.GatewayURL = "ws://" + closed + "/gateway"
	cfg.Discord.Token = secret.New(u.discord.Token())
	cfg.Lavalink.Nodes = []config.LavalinkNode{{Name: "emu", Address: u.lava.Addr(), Password: secret.New(lavalinkPassword)}}
	cfg.Store.Bbolt.Path = filepath.Join(t.TempDir(), "ensemble.db")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(u.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if u.n, err = Start(ctx, cfg, Options{Log: log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.stop(t) })
	return u
}

func (u *unreadyNode) stop(t *testing.T) {
	t.Helper()
	u.stopped.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := u.n.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// logLine is the first log line that contains s, "" if none.
func (u *unreadyNode) logLine(s string) string {
	u.logs.mu.Lock()
	defer u.logs.mu.Unlock()
	for _, line := range strings.Split(u.logs.b.String(), "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func (u *unreadyNode) lavalinkDetail() string {
	return u.n.Readiness().Snapshot().Components[compLavalink].Detail
}

// handshakes are the User-Id headers of Lavalink websocket handshakes.
func (u *unreadyNode) handshakes() []string {
	var ids []string
	for _, h := range u.lava.RequestsTo("GET", "/v4/websocket") {
		ids = append(ids, h.Header.Get("User-Id"))
	}
	return ids
}

// TestDiscordReadyStartsLavalinkAndCommandsOnce: nothing that needs the
// bot's IDs starts before READY; the first READY starts Lavalink with its
// user.id and registers the commands under its application.id; later
// READYs change nothing, and one naming another bot is logged and ignored.
func TestDiscordReadyStartsLavalinkAndCommandsOnce(t *testing.T) {
	u := startUnready(t)
	app, bot := u.cfg.AppID.String(), u.cfg.BotUserID.String()

	if d := u.lavalinkDetail(); !strings.Contains(d, "waiting for Discord READY") {
		t.Fatalf("/readyz lavalink before READY: %q", d)
	}
	if _, err := u.n.audio.Play(context.Background(), "1", audio.PlayRequest{}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("play before READY: %v", err)
	}
	if _, err := u.n.audio.Load(context.Background(), "ytsearch:x"); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("autocomplete search before READY: %v", err)
	}
	if n := len(u.handshakes()); n != 0 {
		t.Fatalf("%d Lavalink handshakes before READY", n)
	}

	u.n.discordReady(app, bot)
	waitFor(t, "Lavalink ready", func() bool { return u.n.Readiness().Snapshot().Components[compLavalink].Ready })
	waitFor(t, "commands registered", func() bool { return len(u.discord.Commands(0)) > 0 })
	client, _ := u.n.audio.get()

	// The same IDs again (another shard, a new session): nothing new. Other
	// IDs: an error in the log, nothing else.
	u.n.discordReady(app, bot)
	other := discordemu.NewSnowflake().String()
	u.n.discordReady(other, other)
	u.n.discordReady("", bot)
	if c, _ := u.n.audio.get(); c != client {
		t.Fatal("a later READY replaced the Lavalink client")
	}
	u.stop(t)
	for _, id := range u.handshakes() {
		if id != bot {
			t.Fatalf("Lavalink handshake with User-Id %q; want only %s", id, bot)
		}
	}
	puts := u.discord.Recorder().RequestsMatching("PUT", "/applications/*/commands")
	if len(puts) != 1 || puts[0].Path != "/applications/"+app+"/commands" {
		t.Fatalf("registrations %+v; want one, under %s", puts, app)
	}
	for _, want := range []string{"READY names another bot", "READY lacks the application or bot user ID"} {
		if line := u.logLine(want); !strings.Contains(line, "level=ERROR") {
			t.Fatalf("log line %q; want an ERROR %q", line, want)
		}
	}
	if u.logLine(u.discord.Token()) != "" {
		t.Fatal("the bot token appears in the logs")
	}
	// Stop closed the client: calls now fail, and a READY after Stop
	// starts nothing.
	if _, err := u.n.audio.Nodes(context.Background()); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("the Lavalink client still answers after Stop: %v", err)
	}
	u.n.discordReady(app, bot)
	if c, _ := u.n.audio.get(); c != client {
		t.Fatal("a READY after Stop replaced the client")
	}
}

// TestStopRacingReadyLeavesNoClient: a READY that arrives while the node
// stops either starts nothing or starts a client that Stop closes.
func TestStopRacingReadyLeavesNoClient(t *testing.T) {
	for _, order := range []string{"ready then stop", "together", "stop then ready"} {
		t.Run(order, func(t *testing.T) {
			u := startUnready(t)
			app, bot := u.cfg.AppID.String(), u.cfg.BotUserID.String()
			var wg sync.WaitGroup
			switch order {
			case "ready then stop":
				u.n.discordReady(app, bot)
				u.stop(t)
			case "together":
				wg.Add(1)
				go func() { defer wg.Done(); u.n.discordReady(app, bot) }()
				u.stop(t)
				wg.Wait()
			case "stop then ready":
				u.stop(t)
				u.n.discordReady(app, bot)
			}
			if c, err := u.n.audio.get(); err == nil {
				if _, err := c.Nodes(context.Background()); !errors.Is(err, audio.ErrNoNode) {
					t.Fatalf("a client started by READY outlived Stop: Nodes = %v", err)
				}
			}
			waitFor(t, "no Lavalink connection left", func() bool {
				for _, s := range u.lava.Sessions() {
					if s.Connected {
						return false
					}
				}
				return true
			})
		})
	}
}
