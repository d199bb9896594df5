//go:build !race

// End-to-end tests: a whole node against the Discord and Lavalink
// emulators, driven by the real disgo gateway and disgolink clients, with
// the real bbolt and Redis stores. They run without -race because those
// libraries race internally (see the Makefile for the locations); the
// grains' own concurrency is covered by race tests in their packages.

package node

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
	"github.com/ensemble-bot/ensemble/internal/store"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

const lavalinkPassword = "emu-lavalink-password"

// world is one guild with a DJ, a listener, a moderator and an outsider,
// a text channel and two voice channels, served by one node.
type world struct {
	t       testing.TB
	ctx     context.Context
	discord *discordemu.Emulator
	lava    *lavalinkemu.Emulator
	node    *Node
	cfg     config.Config
	logs    *strings.Builder
	// jsonLogs, with worldOpts.jsonLogs, has the same lines as JSON.
	jsonLogs *strings.Builder
	guild    discordemu.Snowflake
	text     discordemu.Snowflake
	voice    discordemu.Snowflake
	voice2   discordemu.Snowflake
	djRole   discordemu.Snowflake
	dj       discordemu.Snowflake
	listener discordemu.Snowflake
	mod      discordemu.Snowflake
	outsider discordemu.Snowflake
	// wrapStore wraps the node's store (worldOpts.wrapStore).
	wrapStore   func(store.Store) store.Store
	gatewayOpts []gateway.ConfigOpt
	unready     bool
	tracer      trace.TracerProvider
}

type worldOpts struct {
	store config.StoreKind
	redis *testserver.Redis
	// boltPath reuses a bbolt file across node restarts.
	boltPath string
	speed    float64
	// lava reuses a Lavalink emulator across node restarts.
	lava     *lavalinkemu.Emulator
	discord  *discordemu.Emulator
	queueMax int
	// lavaPassword replaces lavalinkPassword (a test's own secret).
	lavaPassword string
	// tracer replaces the node's (an in-memory exporter).
	tracer trace.TracerProvider
	// jsonLogs also logs as JSON, to world.jsonLogs.
	jsonLogs bool
	// wrapStore wraps the node's store (a slow one).
	wrapStore func(store.Store) store.Store
	// shardMaxLag replaces the tests' 2.5 s limits.shard_max_lag.
	shardMaxLag time.Duration
	// interactionsInFlight replaces limits.interactions_in_flight.
	interactionsInFlight int
	// gatewayOpts are added to the node's gateway options.
	gatewayOpts []gateway.ConfigOpt
	// userCommands and guildCommands, when set, are the rate limits per
	// minute (off otherwise).
	userCommands, guildCommands int
	// unready starts the node without waiting for it to be ready.
	unready bool
	// adminToken is ADMIN_TOKEN (the /status bearer token).
	adminToken string
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, lava: o.lava, discord: o.discord, wrapStore: o.wrapStore, gatewayOpts: o.gatewayOpts, tracer: o.tracer}
	if o.jsonLogs {
		w.jsonLogs = &strings.Builder{}
	}
	if w.discord == nil {
		d, err := discordemu.Start(ctx, discordemu.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		w.discord = d
	}
	lavaPassword := lavalinkPassword
	if o.lavaPassword != "" {
		lavaPassword = o.lavaPassword
	}
	if w.lava == nil {
		speed := o.speed
		if speed == 0 {
			speed = 1
		}
		l, err := lavalinkemu.Start(ctx, lavalinkemu.Config{Password: lavaPassword, Speed: speed, PlayerUpdateInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		w.lava = l
	}
	w.guild = discordemu.SnowflakeForShard(0, 1)
	w.text, w.voice, w.voice2 = discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake()
	w.djRole = discordemu.NewSnowflake()
	w.dj, w.listener, w.mod, w.outsider = discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake()
	modRole := discordemu.NewSnowflake()
	err := w.discord.AddGuild(discordemu.Guild{
		ID:   w.guild,
		Name: "Test Guild",
		Channels: []discordemu.Channel{
			{ID: w.text, Name: "music", Type: discordemu.ChannelText},
			{ID: w.voice, Name: "Lounge", Type: discordemu.ChannelVoice},
			{ID: w.voice2, Name: "Other", Type: discordemu.ChannelVoice},
		},
		Roles: []discordemu.Role{
			{ID: w.djRole, Name: "DJ"},
			{ID: modRole, Name: "Mods", Permissions: discordemu.PermManageGuild},
		},
		Members: []discordemu.Member{
			{User: discordemu.User{ID: w.dj, Username: "dj"}, Roles: []discordemu.Snowflake{w.djRole}},
			{User: discordemu.User{ID: w.listener, Username: "listener"}},
			{User: discordemu.User{ID: w.mod, Username: "mod"}, Roles: []discordemu.Snowflake{modRole}},
			{User: discordemu.User{ID: w.outsider, Username: "outsider"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Node.AdminAddr = "127.0.0.1:0"
	cfg.Discord.RESTURL = w.discord.RESTURL()
	cfg.Discord.GatewayURL = w.discord.GatewayURL()
	cfg.Discord.Token = secret.New(w.discord.Token())
	cfg.Node.AdminToken = secret.New(o.adminToken)
	cfg.Lavalink.Nodes = []config.LavalinkNode{{Name: "emu", Address: w.lava.Addr(), Password: secret.New(lavaPassword)}}
	cfg.Lavalink.RequestTimeout = 5 * time.Second
	cfg.Limits.CommandCooldown = 0
	// A test user runs more commands a minute than a person (the rate
	// limits have their own test).
	cfg.Limits.UserCommands, cfg.Limits.GuildCommands = o.userCommands, o.guildCommands
	// The tests expect each command's own answer: a stall of a busy test
	// machine must not turn one into "busy" (shedding has its own tests).
	cfg.Limits.ShardMaxLag = 2500 * time.Millisecond
	if o.shardMaxLag > 0 {
		cfg.Limits.ShardMaxLag = o.shardMaxLag
	}
	if o.interactionsInFlight > 0 {
		cfg.Limits.InteractionsInFlight = o.interactionsInFlight
	}
	if o.queueMax > 0 {
		cfg.Limits.QueueMax = o.queueMax
	}
	switch o.store {
	case config.StoreRedis:
		cfg.Store.Kind = config.StoreRedis
		cfg.Store.Redis.Addr = o.redis.Addr
		cfg.Store.Redis.Password = secret.New(o.redis.Password)
	default:
		cfg.Store.Kind = config.StoreBbolt
		cfg.Store.Bbolt.Path = o.boltPath
		if cfg.Store.Bbolt.Path == "" {
			cfg.Store.Bbolt.Path = filepath.Join(t.TempDir(), "ensemble.db")
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w.cfg = cfg
	w.unready = o.unready
	w.start()
	w.unready = false
	return w
}

// start runs a node for the world and waits until it is ready.
func (w *world) start() {
	w.t.Helper()
	w.logs = &strings.Builder{}
	var out io.Writer = &syncWriter{b: w.logs}
	if os.Getenv("E2E_LOGS") != "" {
		out = io.MultiWriter(out, os.Stderr)
	}
	var h slog.Handler = slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})
	if w.jsonLogs != nil {
		w.jsonLogs.Reset()
		h = slog.NewMultiHandler(h, slog.NewJSONHandler(&syncWriter{b: w.jsonLogs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	log := slog.New(h)
	n, err := Start(w.ctx, w.cfg, Options{Log: log, WrapStore: w.wrapStore, TracerProvider: w.tracer, GatewayOpts: append([]gateway.ConfigOpt{
		gateway.WithIdentifyRateLimiter(gateway.NewNoopIdentifyRateLimiter()),
	}, w.gatewayOpts...)})
	if err != nil {
		w.t.Fatal(err)
	}
	w.node = n
	w.t.Cleanup(func() { w.stop() })
	if w.unready {
		return
	}
	w.waitReady()
}

// waitReady waits until the node is ready and its commands registered.
func (w *world) waitReady() {
	w.t.Helper()
	n := w.node
	deadline := time.Now().Add(30 * time.Second)
	for !n.Readiness().Snapshot().Ready {
		if time.Now().After(deadline) {
			w.t.Fatalf("node not ready: %+v", n.Readiness().Snapshot())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Commands are registered once the node is up; invoking needs them.
	for len(w.discord.Commands(0)) == 0 {
		if time.Now().After(deadline) {
			w.t.Fatal("commands never registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) stop() {
	if w.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := w.node.Stop(ctx); err != nil {
		w.t.Logf("node stop: %v", err)
	}
	w.node = nil
}

// reply is what a user finally sees for a command: the initial response,
// or the edit of a deferred one.
type reply struct {
	content   string
	ephemeral bool
	deferred  bool
	embeds    []discordemu.Embed
	latency   time.Duration
}

func (r reply) text() string {
	s := r.content
	for _, e := range r.embeds {
		s += "\n" + e.Title + "\n" + e.Description
		for _, f := range e.Fields {
			s += "\n" + f.Name + ": " + f.Value
		}
	}
	return s
}

func (w *world) await(ix *discordemu.Interaction) reply {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	defer cancel()
	res, err := ix.Wait(ctx)
	if err != nil {
		w.t.Fatalf("no answer to %s: %v\nlogs:\n%s", ix.Name+ix.CustomID, err, w.logs.String())
	}
	r := reply{content: res.Content, ephemeral: res.Ephemeral(), embeds: res.Embeds, latency: res.Latency}
	if res.Type == discordemu.ResponseDeferredMessage {
		r.deferred = true
		msg, err := ix.WaitAnswer(ctx)
		if err != nil {
			w.t.Fatalf("deferred %s never answered: %v", ix.Name, err)
		}
		r.content, r.embeds, r.ephemeral = msg.Content, msg.Embeds, msg.Ephemeral()
	}
	return r
}

// run invokes a slash command as user and returns the answer.
func (w *world) run(user discordemu.Snowflake, name string, opts ...discordemu.Option) reply {
	w.t.Helper()
	ix, err := w.discord.InvokeCommand(w.guild, user, w.text, name, opts...)
	if err != nil {
		w.t.Fatalf("invoke /%s: %v", name, err)
	}
	return w.await(ix)
}

func (w *world) join(user, channel discordemu.Snowflake) {
	w.t.Helper()
	// The emulator dispatches the voice state at once, and the shard
	// handles its dispatches in order: an interaction invoked after this
	// reaches the shard after the voice state. Nothing to wait for.
	if err := w.discord.JoinVoice(w.guild, user, channel); err != nil {
		w.t.Fatal(err)
	}
}

// player is the guild's Lavalink player, waiting for cond.
func (w *world) player(cond func(lavalinkemu.PlayerInfo) bool) lavalinkemu.PlayerInfo {
	w.t.Helper()
	return w.playerWithin(15*time.Second, cond)
}

// playerWithin is player with its own bound on the wait.
func (w *world) playerWithin(d time.Duration, cond func(lavalinkemu.PlayerInfo) bool) lavalinkemu.PlayerInfo {
	w.t.Helper()
	deadline := time.Now().Add(d)
	var last lavalinkemu.PlayerInfo
	for time.Now().Before(deadline) {
		for _, s := range w.lava.Sessions() {
			for _, p := range w.lava.Players(s.ID) {
				if p.GuildID == uint64(w.guild) {
					last = p
					if cond(p) {
						return p
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("player never reached the expected state; last %+v\nlogs:\n%s", last, w.logs.String())
	return last
}

func playing(title string) func(lavalinkemu.PlayerInfo) bool {
	return func(p lavalinkemu.PlayerInfo) bool {
		return p.Track != nil && p.Connected && !p.Paused && (title == "" || strings.Contains(p.Track.Info.Title, title))
	}
}

func wantContains(t testing.TB, r reply, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(strings.ToLower(r.text()), strings.ToLower(p)) {
			t.Fatalf("reply %q does not contain %q", r.text(), p)
		}
	}
}

func wantRefusal(t testing.TB, r reply, part string) {
	t.Helper()
	if !r.ephemeral {
		t.Fatalf("refusal %q is not ephemeral", r.text())
	}
	wantContains(t, r, part)
}
