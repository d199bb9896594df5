//go:build !race

// The tests in this file run shard grains with disgo's real gateway against
// internal/discordemu, in a real single-member cluster: interactions reach
// a test guild grain and voice events a test session grain through
// cluster.Call, as cmd/node wires them. Under -race they fail only because
// of data races inside disgo v0.19.6. Observed here (go test -race with
// this file enabled, four runs, 2 cores):
//
//   - gateway/gateway.go:317 and :319 (CloseWithCode reads heartbeatCancel
//     and calls it; reached from Close at :313 in the grain's Terminate,
//     from listen at :695 on op 7 RECONNECT and from listen at :609 after a
//     close frame) vs gateway/gateway.go:450-451 (the heartbeat goroutine
//     started at :627 writes heartbeatCancel).
//
// The same close path is where internal/discordemu's disgo tests also saw
// gateway.go:641/:650/:651 vs :335-337 (resume fields), and
// gateway_transports.go:146 vs :140 with klauspost/compress zstd
// decoder.go:619 (closing a zstd connection while the reader decodes);
// they may show here too on another run.
//
// The shard's own concurrency (cache, delivery order, keeper, Gateway
// adapter, refused identities) is tested under -race in the other files.

package shard

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"

	"github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// testGuild and testSession are the far ends of the shard's deliveries.
type testGuild struct{ f *fixture }

func (testGuild) Init(pcluster.GrainContext)           {}
func (testGuild) Terminate(pcluster.GrainContext)      {}
func (testGuild) ReceiveDefault(pcluster.GrainContext) {}
func (g testGuild) Handle(in *clusterpb.Interaction, _ pcluster.GrainContext) (*clusterpb.HandleReply, error) {
	g.f.interactions <- in
	return &clusterpb.HandleReply{}, nil
}
func (testGuild) View(*clusterpb.SessionView, pcluster.GrainContext) (*clusterpb.Ack, error) {
	return &clusterpb.Ack{}, nil
}

type testSession struct{ f *fixture }

func (testSession) Init(pcluster.GrainContext)           {}
func (testSession) Terminate(pcluster.GrainContext)      {}
func (testSession) ReceiveDefault(pcluster.GrainContext) {}
func (testSession) Execute(*clusterpb.SessionRequest, pcluster.GrainContext) (*clusterpb.SessionReply, error) {
	return &clusterpb.SessionReply{}, nil
}
func (s testSession) Voice(ev *clusterpb.VoiceEvent, _ pcluster.GrainContext) (*clusterpb.Ack, error) {
	s.f.voice <- ev
	return &clusterpb.Ack{}, nil
}
func (testSession) Player(*clusterpb.PlayerEvent, pcluster.GrainContext) (*clusterpb.Ack, error) {
	return &clusterpb.Ack{}, nil
}
func (testSession) Wake(*clusterpb.Ack, pcluster.GrainContext) (*clusterpb.Ack, error) {
	return &clusterpb.Ack{}, nil
}

type statusEvent struct {
	shard int
	ready bool
}

type fixture struct {
	logs         *syncBuffer
	emu          *discordemu.Emulator
	m            *cluster.Member
	shards       int
	interactions chan *clusterpb.Interaction
	voice        chan *clusterpb.VoiceEvent
	status       chan statusEvent
	readies      chan [2]string
}

// syncBuffer collects the shard's logs, at DEBUG, to check what they show.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogOut() io.Writer {
	if os.Getenv("SHARD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// testWorld is one guild: a text channel, two voice channels, two members.
type testWorld struct {
	guild, text, music, lounge, alice, bob discordemu.Snowflake
}

func addWorld(t *testing.T, emu *discordemu.Emulator, guild discordemu.Snowflake) testWorld {
	t.Helper()
	w := testWorld{guild: guild, text: discordemu.NewSnowflake(), music: discordemu.NewSnowflake(), lounge: discordemu.NewSnowflake(),
		alice: discordemu.NewSnowflake(), bob: discordemu.NewSnowflake()}
	g := discordemu.Guild{ID: guild,
		Channels: []discordemu.Channel{{ID: w.text, Name: "general", Type: discordemu.ChannelText},
			{ID: w.music, Name: "Music", Type: discordemu.ChannelVoice}, {ID: w.lounge, Name: "Lounge", Type: discordemu.ChannelVoice}},
		Members: []discordemu.Member{{User: discordemu.User{ID: w.alice, Username: "alice"}}, {User: discordemu.User{ID: w.bob, Username: "bob"}}},
	}
	if err := emu.AddGuild(g); err != nil {
		t.Fatal(err)
	}
	return w
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

// startFixture starts the emulator (with the world added by setup, so it
// arrives in GUILD_CREATE) and a member running shard, guild and session
// kinds; no shard is active until something calls it.
func startFixture(t *testing.T, cfg discordemu.Config, shards int, setup func(*discordemu.Emulator), extra ...gateway.ConfigOpt) *fixture {
	t.Helper()
	return startFixtureWith(t, cfg, shards, setup, nil, extra...)
}

// startFixtureWith is startFixture with the shards' Deps changed by mod.
func startFixtureWith(t *testing.T, cfg discordemu.Config, shards int, setup func(*discordemu.Emulator), mod func(*Deps), extra ...gateway.ConfigOpt) *fixture {
	t.Helper()
	ctx := ctxTimeout(t)
	emu, err := discordemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	if setup != nil {
		setup(emu)
	}
	r := commands.NewDiscord(rest.New(rest.NewClient(emu.Token(), rest.WithURL(emu.RESTURL()))))
	if err := r.RegisterCommands(ctx, emu.AppID().String(), ""); err != nil {
		t.Fatal(err)
	}

	f := &fixture{logs: &syncBuffer{}, emu: emu, shards: shards, interactions: make(chan *clusterpb.Interaction, 64),
		voice: make(chan *clusterpb.VoiceEvent, 64), status: make(chan statusEvent, 64), readies: make(chan [2]string, 64)}
	var c atomic.Pointer[pcluster.Cluster]
	ordered := cluster.NewOrdered(64, 1000)
	t.Cleanup(ordered.Close)
	deps := Deps{
		// The tests expect each interaction delivered: a stall of a busy
		// test machine must not shed one.
		MaxLag:      2500 * time.Millisecond,
		Token:       secret.New(emu.Token()),
		GatewayURL:  emu.GatewayURL(),
		ShardCount:  shards,
		GatewayOpts: extra,
		Log:         slog.New(slog.NewTextHandler(io.MultiWriter(f.logs, testLogOut()), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Ordered:     ordered,
		Guilds: func(ctx context.Context, in *clusterpb.Interaction) error {
			_, err := cluster.Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.HandleReply, error) {
				return clusterpb.GetGuildGrainClient(c.Load(), in.GetGuildId()).Handle(in, opts...)
			})
			return err
		},
		Voice: func(ctx context.Context, ev *clusterpb.VoiceEvent) error {
			_, err := cluster.Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
				return clusterpb.GetSessionGrainClient(c.Load(), ev.GetGuildId()).Voice(ev, opts...)
			})
			return err
		},
		Refuse: r.Refuse,
		OnStatus: func(shard int, ready bool) {
			select {
			case f.status <- statusEvent{shard, ready}:
			default:
			}
		},
		OnReady: func(app, bot string) {
			select {
			case f.readies <- [2]string{app, bot}:
			default:
			}
		},
	}
	if mod != nil {
		mod(&deps)
	}
	ccfg := config.Default().Cluster
	ccfg.RequestTimeout = 5 * time.Second
	m, err := cluster.Start(ctx, ccfg, cluster.Options{Log: quietLog(), Kinds: []*pcluster.Kind{
		NewKind(deps),
		clusterpb.NewGuildKind(func() clusterpb.Guild { return testGuild{f} }, 0),
		clusterpb.NewSessionKind(func() clusterpb.Session { return testSession{f} }, 0),
	}})
	if err != nil {
		t.Fatal(err)
	}
	c.Store(m.Cluster)
	f.m = m
	// Runs before emu.Close and ordered.Close: the grains close their
	// gateways while the emulator still listens (protoactor's Shutdown
	// alone never stops them).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if _, err := StopLocal(ctx, m.System); err != nil {
			t.Error(err)
		}
		m.Stop()
	})
	return f
}

func (f *fixture) ensure(t *testing.T, shard int) *clusterpb.ShardStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	st, err := cluster.Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.ShardStatus, error) {
		return clusterpb.GetShardGrainClient(f.m.Cluster, Identity(shard)).Ensure(&clusterpb.Ack{}, opts...)
	})
	if err != nil {
		t.Fatalf("ensure shard %d: %v", shard, err)
	}
	return st
}

// waitStatus polls Ensure until cond holds.
func (f *fixture) waitStatus(t *testing.T, shard int, what string, cond func(*clusterpb.ShardStatus) bool) *clusterpb.ShardStatus {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		st := f.ensure(t, shard)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard %d: timed out waiting for %s; last status %v", shard, what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextInteraction returns the next interaction delivered to a guild grain.
func (f *fixture) nextInteraction(t *testing.T) *clusterpb.Interaction {
	t.Helper()
	return recv(t, f.interactions)
}

// nextVoice returns the next voice event delivered to a session grain.
func (f *fixture) nextVoice(t *testing.T) *clusterpb.VoiceEvent {
	t.Helper()
	return recv(t, f.voice)
}

func (f *fixture) waitReadyStatus(t *testing.T, shard int) {
	t.Helper()
	for {
		if st := recv(t, f.status); st.shard == shard && st.ready {
			return
		}
	}
}

func (f *fixture) invoke(t *testing.T, w testWorld, user discordemu.Snowflake, query string) *discordemu.Interaction {
	t.Helper()
	ix, err := f.emu.InvokeCommand(w.guild, user, w.text, "play", discordemu.StringOption("query", query))
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// expectPlay checks the delivered interaction is ix, with the voice
// channels the shard's cache should have filled in.
func expectPlay(t *testing.T, in *clusterpb.Interaction, ix *discordemu.Interaction, query string, invokerVoice, botVoice discordemu.Snowflake) {
	t.Helper()
	str := func(s discordemu.Snowflake) string {
		if s == 0 {
			return ""
		}
		return s.String()
	}
	if in.GetId() != ix.ID.String() || in.GetGuildId() != ix.GuildID.String() || in.GetName() != "play" ||
		len(in.GetOptions()) != 1 || in.GetOptions()[0].GetValue() != query || in.GetInvoker().GetUserId() != ix.UserID.String() {
		t.Fatalf("delivered %v; want /play %q id %s", in, query, ix.ID)
	}
	if in.GetInvoker().GetVoiceChannelId() != str(invokerVoice) || in.GetBotVoiceChannelId() != str(botVoice) {
		t.Fatalf("/play %q: invoker voice %q bot voice %q; want %q and %q", query,
			in.GetInvoker().GetVoiceChannelId(), in.GetBotVoiceChannelId(), str(invokerVoice), str(botVoice))
	}
	if in.GetReceivedUnixNano() == 0 || int(in.GetShardId()) != ix.Shard() {
		t.Fatalf("receive time %d shard %d (dispatched on %d)", in.GetReceivedUnixNano(), in.GetShardId(), ix.Shard())
	}
}

func TestShardCachesVoiceAndDeliversInteractions(t *testing.T) {
	var w testWorld
	f := startFixture(t, discordemu.Config{}, 1, func(emu *discordemu.Emulator) {
		w = addWorld(t, emu, discordemu.SnowflakeForShard(0, 1))
		// alice is in voice before the shard connects: GUILD_CREATE
		// carries her state.
		if err := emu.JoinVoice(w.guild, w.alice, w.music); err != nil {
			t.Fatal(err)
		}
	})
	if st := f.ensure(t, 0); st.GetMember() != f.m.System.Address() {
		t.Fatalf("status %v: want member %s", st, f.m.System.Address())
	}
	f.waitReadyStatus(t, 0)
	f.waitStatus(t, 0, "ready with one guild", func(st *clusterpb.ShardStatus) bool { return st.GetReady() && st.GetGuilds() == 1 })

	// From GUILD_CREATE.
	ix := f.invoke(t, w, w.alice, "from guild create")
	expectPlay(t, f.nextInteraction(t), ix, "from guild create", w.music, 0)
	// From VOICE_STATE_UPDATEs: bob joins, alice leaves.
	if err := f.emu.JoinVoice(w.guild, w.bob, w.lounge); err != nil {
		t.Fatal(err)
	}
	if err := f.emu.LeaveVoice(w.guild, w.alice); err != nil {
		t.Fatal(err)
	}
	ix = f.invoke(t, w, w.bob, "bob joined")
	expectPlay(t, f.nextInteraction(t), ix, "bob joined", w.lounge, 0)
	ix = f.invoke(t, w, w.alice, "alice left")
	expectPlay(t, f.nextInteraction(t), ix, "alice left", 0, 0)

	// A burst for one guild arrives in order.
	var burst []*discordemu.Interaction
	for i := range 8 {
		burst = append(burst, f.invoke(t, w, w.bob, "burst "+string(rune('a'+i))))
	}
	for i, ix := range burst {
		expectPlay(t, f.nextInteraction(t), ix, "burst "+string(rune('a'+i)), w.lounge, 0)
	}
	if errs := f.emu.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors: %v", errs)
	}

	// Draining the member closes the connection: nothing of the shard
	// stays connected to Discord.
	n, err := StopLocal(ctxTimeout(t), f.m.System)
	if err != nil || n != 1 {
		t.Fatalf("StopLocal = %d, %v", n, err)
	}
	for deadline := time.Now().Add(waitLong); ; time.Sleep(20 * time.Millisecond) {
		connected := 0
		for _, s := range f.emu.Sessions() {
			if s.Connected {
				connected++
			}
		}
		if connected == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions still connected after StopLocal: %+v", f.emu.Sessions())
		}
	}
	if n, err := StopLocal(ctxTimeout(t), f.m.System); err != nil || n != 0 {
		t.Fatalf("second StopLocal = %d, %v", n, err)
	}
}

func TestUpdateVoiceDeliversStateThenServer(t *testing.T) {
	var w testWorld
	f := startFixture(t, discordemu.Config{VoiceEndpoint: "127.0.0.1:7"}, 1, func(emu *discordemu.Emulator) {
		w = addWorld(t, emu, discordemu.SnowflakeForShard(0, 1))
	})
	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)
	sess, err := f.emu.WaitReady(ctxTimeout(t), 0)
	if err != nil {
		t.Fatal(err)
	}

	gw := NewGateway(f.m.Cluster, 1)
	if err := gw.UpdateVoice(ctxTimeout(t), w.guild.String(), w.music.String()); err != nil {
		t.Fatal(err)
	}
	st := f.nextVoice(t)
	if st.GetGuildId() != w.guild.String() || st.GetState().GetChannelId() != w.music.String() || st.GetState().GetSessionId() != sess.ID {
		t.Fatalf("first voice event %v; want the bot's state in %s with session %s", st, w.music, sess.ID)
	}
	srv := f.nextVoice(t)
	if srv.GetGuildId() != w.guild.String() || srv.GetServer().GetToken() == "" || srv.GetServer().GetEndpoint() != "127.0.0.1:7" {
		t.Fatalf("second voice event %v; want the voice server", srv)
	}
	if vs, ok := f.emu.BotVoiceState(w.guild); !ok || vs.ChannelID != w.music || !vs.SelfDeaf {
		t.Fatalf("bot voice state in the emulator %+v %v", vs, ok)
	}
	ops := f.emu.Recorder().PayloadsWithOp(4)
	var op4 struct {
		GuildID   string  `json:"guild_id"`
		ChannelID *string `json:"channel_id"`
		SelfDeaf  bool    `json:"self_deaf"`
	}
	if len(ops) != 1 || json.Unmarshal(ops[0].Data, &op4) != nil || op4.GuildID != w.guild.String() ||
		op4.ChannelID == nil || *op4.ChannelID != w.music.String() || !op4.SelfDeaf {
		t.Fatalf("op 4 payloads %v", ops)
	}

	// The bot's own channel is cached for the DJ rule.
	ix := f.invoke(t, w, w.alice, "with bot")
	expectPlay(t, f.nextInteraction(t), ix, "with bot", 0, w.music)

	// Leaving: a state with no channel.
	if err := gw.UpdateVoice(ctxTimeout(t), w.guild.String(), ""); err != nil {
		t.Fatal(err)
	}
	left := f.nextVoice(t)
	if left.GetState() == nil || left.GetState().GetChannelId() != "" || left.GetGuildId() != w.guild.String() {
		t.Fatalf("leave event %v", left)
	}
	if _, ok := f.emu.BotVoiceState(w.guild); ok {
		t.Fatal("the bot is still in voice in the emulator")
	}
	ix = f.invoke(t, w, w.alice, "bot gone")
	expectPlay(t, f.nextInteraction(t), ix, "bot gone", 0, 0)
	if errs := f.emu.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
}

func TestTwoShardsKeeperAndOwnership(t *testing.T) {
	var w0, w1 testWorld
	limiter := gateway.NewIdentifyRateLimiter(gateway.WithIdentifyMaxConcurrency(2),
		gateway.WithIdentifyRateLimiterLogger(quietLog()))
	f := startFixture(t, discordemu.Config{Shards: 2, MaxConcurrency: 2}, 2, func(emu *discordemu.Emulator) {
		w0 = addWorld(t, emu, discordemu.SnowflakeForShard(0, 2))
		w1 = addWorld(t, emu, discordemu.SnowflakeForShard(1, 2))
	}, gateway.WithIdentifyRateLimiter(limiter))

	// The keeper alone brings both shards up.
	ctx, cancel := context.WithCancel(context.Background())
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		Keep(ctx, f.m.Cluster, 2, 200*time.Millisecond, quietLog())
	}()
	t.Cleanup(func() { cancel(); <-kept })
	for shard := range 2 {
		if _, err := f.emu.WaitReady(ctxTimeout(t), shard); err != nil {
			t.Fatalf("shard %d never connected: %v", shard, err)
		}
		f.waitStatus(t, shard, "ready with its guild", func(st *clusterpb.ShardStatus) bool { return st.GetReady() && st.GetGuilds() == 1 })
	}

	// Shard 0 refuses an op 4 for shard 1's guild, naming both, and sends
	// nothing to Discord.
	_, err := cluster.Call(ctxTimeout(t), 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
		return clusterpb.GetShardGrainClient(f.m.Cluster, "0").UpdateVoice(
			&clusterpb.VoiceRequest{GuildId: w1.guild.String(), ChannelId: w1.music.String()}, opts...)
	})
	if err == nil || !strings.Contains(err.Error(), "shard 0") || !strings.Contains(err.Error(), "belongs to shard 1 of 2") {
		t.Fatalf("shard 0 accepted guild of shard 1: %v", err)
	}
	if n := len(f.emu.Recorder().PayloadsWithOp(4)); n != 0 || len(f.emu.WrongShard()) != 0 {
		t.Fatalf("op 4 sent anyway: %d payloads, wrong shard %v", n, f.emu.WrongShard())
	}

	// Through the Gateway adapter it reaches shard 1.
	if err := NewGateway(f.m.Cluster, 2).UpdateVoice(ctxTimeout(t), w1.guild.String(), w1.music.String()); err != nil {
		t.Fatal(err)
	}
	if ev := f.nextVoice(t); ev.GetGuildId() != w1.guild.String() || ev.GetState().GetChannelId() != w1.music.String() {
		t.Fatalf("voice event %v", ev)
	}
	if ev := f.nextVoice(t); ev.GetServer() == nil {
		t.Fatalf("voice event %v; want the server", ev)
	}
	if vs, ok := f.emu.BotVoiceState(w1.guild); !ok || vs.ChannelID != w1.music {
		t.Fatalf("bot voice in shard 1's guild: %+v %v", vs, ok)
	}

	// Each shard delivers its own guild's interactions.
	ix0 := f.invoke(t, w0, w0.alice, "on zero")
	expectPlay(t, f.nextInteraction(t), ix0, "on zero", 0, 0)
	ix1 := f.invoke(t, w1, w1.alice, "on one")
	expectPlay(t, f.nextInteraction(t), ix1, "on one", 0, w1.music)
	if ix0.Shard() != 0 || ix1.Shard() != 1 {
		t.Fatalf("dispatched on shards %d and %d", ix0.Shard(), ix1.Shard())
	}
	if errs := f.emu.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors (wrong shard, identify pacing, ...): %v", errs)
	}
}

func TestReconnectResumesWithoutLosingDispatches(t *testing.T) {
	var w testWorld
	f := startFixture(t, discordemu.Config{}, 1, func(emu *discordemu.Emulator) {
		w = addWorld(t, emu, discordemu.SnowflakeForShard(0, 1))
	})
	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)
	first, err := f.emu.WaitReady(ctxTimeout(t), 0)
	if err != nil {
		t.Fatal(err)
	}

	if err := f.emu.Reconnect(0); err != nil {
		t.Fatal(err)
	}
	// Right after op 7, while disgo reconnects: a member joins voice and
	// runs a command. Both must reach the shard after it resumes.
	if err := f.emu.JoinVoice(w.guild, w.bob, w.lounge); err != nil {
		t.Fatal(err)
	}
	ix := f.invoke(t, w, w.bob, "after reconnect")
	expectPlay(t, f.nextInteraction(t), ix, "after reconnect", w.lounge, 0)

	resumed, err := f.emu.WaitSession(ctxTimeout(t), func(s discordemu.SessionInfo) bool { return s.Resumes >= 1 && s.Ready })
	if err != nil {
		t.Fatal(err)
	}
	if resumed.ID != first.ID {
		t.Fatalf("a new session %s replaced %s: identified again instead of resuming", resumed.ID, first.ID)
	}
	if n := len(f.emu.Recorder().PayloadsWithOp(2)); n != 1 {
		t.Fatalf("%d identifies; want 1", n)
	}
	f.waitStatus(t, 0, "ready after resume", func(st *clusterpb.ShardStatus) bool { return st.GetReady() && st.GetGuilds() == 1 })

	ix = f.invoke(t, w, w.alice, "later")
	expectPlay(t, f.nextInteraction(t), ix, "later", 0, 0)

	// Identify and resume carried the token; the logs (at DEBUG) never.
	logs := f.logs.String()
	if !strings.Contains(logs, "gateway resumed") {
		t.Fatalf("logs miss the resume:\n%s", logs)
	}
	if strings.Contains(logs, f.emu.Token()) {
		t.Fatal("the bot token appears in the logs")
	}
}

func TestCloseCodes(t *testing.T) {
	var w testWorld
	f := startFixture(t, discordemu.Config{}, 1, func(emu *discordemu.Emulator) {
		w = addWorld(t, emu, discordemu.SnowflakeForShard(0, 1))
	})
	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)

	// 4000 (unknown error) is worth a reconnect: disgo resumes by itself
	// and the shard serves again.
	if err := f.emu.CloseShard(0, 4000); err != nil {
		t.Fatal(err)
	}
	if _, err := f.emu.WaitSession(ctxTimeout(t), func(s discordemu.SessionInfo) bool { return s.Resumes >= 1 && s.Ready }); err != nil {
		t.Fatal(err)
	}
	ix := f.invoke(t, w, w.alice, "after 4000")
	expectPlay(t, f.nextInteraction(t), ix, "after 4000", 0, 0)
	f.waitStatus(t, 0, "ready after 4000", func(st *clusterpb.ShardStatus) bool { return st.GetReady() })

	// 4004 (authentication failed) is final: the shard reports not ready
	// and says why, instead of hammering Discord with a bad token.
	if err := f.emu.CloseShard(0, 4004); err != nil {
		t.Fatal(err)
	}
	for {
		if st := recv(t, f.status); !st.ready {
			break
		}
	}
	f.waitStatus(t, 0, "not ready after 4004", func(st *clusterpb.ShardStatus) bool { return !st.GetReady() })
	if logs := f.logs.String(); !strings.Contains(logs, "not reconnecting") {
		t.Fatalf("no reason logged for giving up:\n%s", logs)
	}
}

// TestDiscordCompatibleServer runs the shard against the emulator set up as
// a third-party Discord-compatible server: a token of no known shape, an
// application ID that is not the bot's user ID, and interactions with
// channel_id but no channel object.
func TestDiscordCompatibleServer(t *testing.T) {
	var w testWorld
	cfg := discordemu.Config{AppID: discordemu.NewSnowflake(), BotUserID: discordemu.NewSnowflake(), OpaqueToken: true, OmitInteractionChannel: true}
	f := startFixture(t, cfg, 1, func(emu *discordemu.Emulator) {
		w = addWorld(t, emu, discordemu.SnowflakeForShard(0, 1))
		if err := emu.JoinVoice(w.guild, w.alice, w.music); err != nil {
			t.Fatal(err)
		}
	})
	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)
	if got := recv(t, f.readies); got != [2]string{cfg.AppID.String(), cfg.BotUserID.String()} {
		t.Fatalf("OnReady(%q, %q); want application %s and bot user %s", got[0], got[1], cfg.AppID, cfg.BotUserID)
	}

	// The channel comes from the raw payload's channel_id.
	ix := f.invoke(t, w, w.alice, "no channel object")
	in := f.nextInteraction(t)
	expectPlay(t, in, ix, "no channel object", w.music, 0)
	if in.GetChannelId() != w.text.String() || in.GetApplicationId() != cfg.AppID.String() {
		t.Fatalf("delivered channel %q application %q; want %s and %s", in.GetChannelId(), in.GetApplicationId(), w.text, cfg.AppID)
	}

	// A command the bot does not have is answered, privately, at once.
	stale, err := f.emu.InvokeUnregistered(w.guild, w.alice, w.text, "eval", discordemu.StringOption("code", "x"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := stale.Wait(ctxTimeout(t))
	if err != nil || r.Type != discordemu.ResponseMessage || !r.Ephemeral() || !strings.Contains(r.Content, "isn't available here") {
		t.Fatalf("answer to an unknown command: %+v, %v", r, err)
	}
	// Nothing of it reached a guild grain, and the next command still does.
	ix = f.invoke(t, w, w.bob, "after refusals")
	expectPlay(t, f.nextInteraction(t), ix, "after refusals", 0, 0)
	if errs := f.emu.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
	if strings.Contains(f.logs.String(), f.emu.Token()) {
		t.Fatal("the bot token appears in the logs")
	}
}
