package shard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

const waitLong = 10 * time.Second

// quietLog discards logs; SHARD_TEST_LOG=1 shows them when debugging.
func quietLog() *slog.Logger {
	if os.Getenv("SHARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestForGuild(t *testing.T) {
	for _, count := range []int{1, 2, 3, 16} {
		for shard := range count {
			id := discordemu.SnowflakeForShard(shard, count)
			got, err := ForGuild(id.String(), count)
			if err != nil || got != shard {
				t.Fatalf("ForGuild(%s, %d) = %d, %v; want %d", id, count, got, err, shard)
			}
		}
	}
	// Discord's documented example: guild 41771983423143937 on 2 shards is
	// on shard (41771983423143937 >> 22) % 2 = 9959262 % 2 = 0.
	if got, err := ForGuild("41771983423143937", 2); err != nil || got != 0 {
		t.Fatalf("documented example = %d, %v", got, err)
	}
	for _, bad := range []string{"", "0", "01", "-5", "12a", "99999999999999999999999"} {
		if _, err := ForGuild(bad, 2); err == nil {
			t.Errorf("ForGuild(%q) accepted", bad)
		}
	}
	if _, err := ForGuild("41771983423143937", 0); !errors.Is(err, ErrShardCount) {
		t.Fatalf("shard count 0: %v", err)
	}
}

func TestParseShardID(t *testing.T) {
	for _, ok := range []struct {
		identity string
		count    int
		want     int
	}{{"0", 1, 0}, {"1", 2, 1}, {"15", 16, 15}} {
		if got, err := parseShardID(ok.identity, ok.count); err != nil || got != ok.want {
			t.Errorf("parseShardID(%q, %d) = %d, %v", ok.identity, ok.count, got, err)
		}
	}
	// "01" would be a second activation of shard 1 with its own connection.
	for _, bad := range []string{"", "01", "-1", "+1", "x", "2", "1 "} {
		if _, err := parseShardID(bad, 2); err == nil {
			t.Errorf("parseShardID(%q, 2) accepted", bad)
		}
	}
}

func TestVoiceUpdateChecksOwnership(t *testing.T) {
	guild := discordemu.SnowflakeForShard(1, 3).String()
	_, err := voiceUpdate(&clusterpb.VoiceRequest{GuildId: guild, ChannelId: "123456789012345678"}, 0, 3)
	if err == nil || !strings.Contains(err.Error(), "shard 0") || !strings.Contains(err.Error(), "shard 1 of 3") {
		t.Fatalf("wrong shard: %v", err)
	}
	msg, err := voiceUpdate(&clusterpb.VoiceRequest{GuildId: guild, ChannelId: "123456789012345678"}, 1, 3)
	if err != nil || msg.GuildID.String() != guild || msg.ChannelID == nil || msg.ChannelID.String() != "123456789012345678" || !msg.SelfDeaf {
		t.Fatalf("join: %+v %v", msg, err)
	}
	// Leaving is a null channel on the wire, not channel 0.
	msg, err = voiceUpdate(&clusterpb.VoiceRequest{GuildId: guild}, 1, 3)
	if err != nil || msg.ChannelID != nil {
		t.Fatalf("leave: %+v %v", msg, err)
	}
	if _, err := voiceUpdate(&clusterpb.VoiceRequest{GuildId: guild, ChannelId: "general"}, 1, 3); err == nil {
		t.Fatal("bad channel accepted")
	}
	if _, err := voiceUpdate(&clusterpb.VoiceRequest{GuildId: "nope"}, 1, 3); err == nil {
		t.Fatal("bad guild accepted")
	}
}

// fakeGateway stands in for disgo's gateway where only Send and Status
// matter; any other method panics (nil embedded interface).
type fakeGateway struct {
	gateway.Gateway
	mu     sync.Mutex
	status gateway.Status
	sent   []gateway.MessageDataVoiceStateUpdate
	// sends gets a value per Send call.
	sends chan struct{}
}

func (f *fakeGateway) Status() gateway.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeGateway) Send(_ context.Context, op gateway.Opcode, d gateway.MessageData) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sends != nil {
		defer func() { f.sends <- struct{}{} }()
	}
	if f.status != gateway.StatusReady {
		return discord.ErrShardNotReady
	}
	if op != gateway.OpcodeVoiceStateUpdate {
		return errors.New("unexpected opcode")
	}
	f.sent = append(f.sent, d.(gateway.MessageDataVoiceStateUpdate))
	return nil
}

type sinks struct {
	voice   chan *clusterpb.VoiceEvent
	guilds  chan *clusterpb.Interaction
	status  chan bool
	refused chan refusal
	readies chan [2]string
}

// refusal is one call of Deps.Refuse.
type refusal struct {
	id, token string
	kind      clusterpb.InteractionKind
	message   string
	deadline  time.Time
}

// newTestGrain is a grain without an actor or a connection: events are fed
// to handle directly, and deliveries go through a real Ordered to
// channels.
func newTestGrain(t *testing.T, id, count int) (*grain, *fakeGateway, *sinks) {
	t.Helper()
	s := &sinks{voice: make(chan *clusterpb.VoiceEvent, 64), guilds: make(chan *clusterpb.Interaction, 64), status: make(chan bool, 64),
		refused: make(chan refusal, 64), readies: make(chan [2]string, 64)}
	ordered := cluster.NewOrdered(64, 1000)
	t.Cleanup(ordered.Close)
	d := Deps{
		ShardCount: count,
		Log:        quietLog(),
		Ordered:    ordered,
		Voice: func(_ context.Context, ev *clusterpb.VoiceEvent) error {
			s.voice <- ev
			return nil
		},
		Guilds: func(_ context.Context, in *clusterpb.Interaction) error {
			s.guilds <- in
			return nil
		},
		Refuse: func(ctx context.Context, id, token string, kind clusterpb.InteractionKind, message string) error {
			deadline, _ := ctx.Deadline()
			s.refused <- refusal{id: id, token: token, kind: kind, message: message, deadline: deadline}
			return nil
		},
		OnStatus: func(_ int, ready bool) { s.status <- ready },
		OnReady:  func(app, bot string) { s.readies <- [2]string{app, bot} },
	}
	d.defaults()
	gw := &fakeGateway{sends: make(chan struct{}, 64)}
	g := &grain{deps: &d, log: d.Log, id: id, gw: gw, cache: voiceCache{},
		sends: make(chan gateway.MessageDataVoiceStateUpdate, sendQueue)}
	base, stop := context.WithCancel(context.Background())
	g.sendWG.Add(1)
	go sendLoop(base, gw, g.sends, d.Log, &g.sendWG)
	t.Cleanup(func() { stop(); close(g.sends); g.sendWG.Wait() })
	return g, gw, s
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLong):
		var zero T
		t.Fatalf("timed out waiting for %T", zero)
		return zero
	}
}

func none[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %v", v)
	default:
	}
}

func ptrID(id snowflake.ID) *snowflake.ID { return &id }

func vsu(guild, user, channel snowflake.ID, session string) gateway.EventVoiceStateUpdate {
	ev := gateway.EventVoiceStateUpdate{VoiceState: discord.VoiceState{GuildID: guild, UserID: user, SessionID: session}}
	if channel != 0 {
		ev.ChannelID = ptrID(channel)
	}
	return ev
}

func guildCreate(guild snowflake.ID, states ...discord.VoiceState) gateway.EventGuildCreate {
	var ev gateway.EventGuildCreate
	ev.ID = guild
	ev.VoiceStates = states
	return ev
}

func ready(bot snowflake.ID, guilds ...snowflake.ID) gateway.EventReady {
	ev := gateway.EventReady{User: discord.OAuth2User{User: discord.User{ID: bot}}}
	for _, g := range guilds {
		ev.Guilds = append(ev.Guilds, discord.UnavailableGuild{ID: g, Unavailable: true})
	}
	return ev
}

func wantState(t *testing.T, ev *clusterpb.VoiceEvent, guild snowflake.ID, channel, session string) {
	t.Helper()
	st := ev.GetState()
	if ev.GetGuildId() != guild.String() || st == nil || st.GetChannelId() != channel || st.GetSessionId() != session {
		t.Fatalf("voice event %v; want state guild %s channel %q session %q", ev, guild, channel, session)
	}
}

func TestCacheFollowsGuildsAndVoiceStates(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	bot, alice, bob := snowflake.ID(1000), snowflake.ID(2000), snowflake.ID(3000)
	guild, other := snowflake.ID(41771983423143937), snowflake.ID(41771983423143938)
	music, lounge := snowflake.ID(11), snowflake.ID(12)

	g.handle(time.Now(), ready(bot, guild, other))
	if !recv(t, s.status) || !g.ready {
		t.Fatal("READY did not make the shard ready")
	}
	g.handle(time.Now(), guildCreate(guild,
		discord.VoiceState{UserID: alice, ChannelID: ptrID(music), SessionID: "a"},
		discord.VoiceState{UserID: bob, ChannelID: nil}))
	g.handle(time.Now(), guildCreate(other))
	if len(g.cache) != 2 || g.cache.channel(guild, alice) != music || g.cache.channel(guild, bob) != 0 {
		t.Fatalf("cache after GUILD_CREATE: %v", g.cache)
	}
	// Members' voice states are cached, not forwarded.
	g.handle(time.Now(), vsu(guild, bob, lounge, "b"))
	g.handle(time.Now(), vsu(guild, alice, 0, "a"))
	if g.cache.channel(guild, bob) != lounge || g.cache.channel(guild, alice) != 0 {
		t.Fatalf("cache after VOICE_STATE_UPDATEs: %v", g.cache)
	}
	if _, ok := g.cache[guild][alice]; ok {
		t.Fatal("a member who left voice is still cached")
	}
	// The bot's own state is cached and forwarded, then its server.
	g.handle(time.Now(), vsu(guild, bot, music, "botsession"))
	g.handle(time.Now(), gateway.EventVoiceServerUpdate{GuildID: guild, Token: "tok", Endpoint: new(string)})
	wantState(t, recv(t, s.voice), guild, music.String(), "botsession")
	if srv := recv(t, s.voice).GetServer(); srv == nil || srv.GetToken() != "tok" || srv.GetEndpoint() != "" {
		t.Fatalf("voice server: %v", srv)
	}
	ep := "voice.example:443"
	g.handle(time.Now(), gateway.EventVoiceServerUpdate{GuildID: guild, Token: "tok2", Endpoint: &ep})
	if srv := recv(t, s.voice).GetServer(); srv.GetEndpoint() != ep || srv.GetToken() != "tok2" {
		t.Fatalf("voice server: %v", srv)
	}
	// A null endpoint is forwarded as empty: the session must drop the old.
	g.handle(time.Now(), gateway.EventVoiceServerUpdate{GuildID: guild, Token: "tok3"})
	if srv := recv(t, s.voice).GetServer(); srv.GetEndpoint() != "" || srv.GetToken() != "tok3" {
		t.Fatalf("null endpoint: %v", srv)
	}

	// An outage keeps the session alone; the guild comes back unchanged.
	g.handle(time.Now(), gateway.EventGuildDelete{UnavailableGuild: discord.UnavailableGuild{ID: guild, Unavailable: true}})
	if _, ok := g.cache[guild]; ok || len(g.cache) != 1 {
		t.Fatalf("unavailable guild still cached: %v", g.cache)
	}
	none(t, s.voice)
	g.handle(time.Now(), guildCreate(guild, discord.VoiceState{UserID: bot, ChannelID: ptrID(music), SessionID: "botsession"}))
	// First sight of the bot in voice after the guild came back: the
	// session hears the state (it may be a new owner of the shard).
	wantState(t, recv(t, s.voice), guild, music.String(), "botsession")
	// Same state again: nothing new to tell.
	g.handle(time.Now(), guildCreate(guild, discord.VoiceState{UserID: bot, ChannelID: ptrID(music), SessionID: "botsession"}))
	none(t, s.voice)

	// A new session (READY) without the guild: the bot was removed while
	// away, so the session hears it is out of voice.
	g.handle(time.Now(), ready(bot, other))
	if _, ok := g.cache[guild]; ok {
		t.Fatal("guild missing from READY still cached")
	}
	wantState(t, recv(t, s.voice), guild, "", "botsession")

	// The bot leaving voice is forwarded with an empty channel.
	g.handle(time.Now(), guildCreate(guild, discord.VoiceState{UserID: bot, ChannelID: ptrID(lounge), SessionID: "s2"}))
	wantState(t, recv(t, s.voice), guild, lounge.String(), "s2")
	g.handle(time.Now(), vsu(guild, bot, 0, "s2"))
	wantState(t, recv(t, s.voice), guild, "", "s2")
	if _, ok := g.cache[guild][bot]; ok {
		t.Fatal("bot still cached in voice")
	}
	// Removed from the guild while in voice: the session hears it left.
	g.handle(time.Now(), vsu(guild, bot, music, "s3"))
	wantState(t, recv(t, s.voice), guild, music.String(), "s3")
	g.handle(time.Now(), gateway.EventGuildDelete{UnavailableGuild: discord.UnavailableGuild{ID: guild}})
	wantState(t, recv(t, s.voice), guild, "", "s3")
	none(t, s.voice)
}

// interactionJSON is an INTERACTION_CREATE for /play as Discord sends it.
func interactionJSON(id, guild, channel, user snowflake.ID, query string) string {
	return `{"id":"` + id.String() + `","application_id":"555","type":2,"token":"tok","version":1,
"guild_id":"` + guild.String() + `","channel_id":"` + channel.String() + `",
"channel":{"id":"` + channel.String() + `","type":0,"name":"general","guild_id":"` + guild.String() + `","permissions":"0"},
"member":{"user":{"id":"` + user.String() + `","username":"u"},"roles":[],"permissions":"0","joined_at":"2024-01-01T00:00:00.000000+00:00"},
"app_permissions":"0","locale":"en-US","guild_locale":"en-US","entitlements":[],"context":0,
"data":{"id":"777","name":"play","type":1,"options":[{"name":"query","type":3,"value":"` + query + `"}]}}`
}

func interaction(t *testing.T, raw string) gateway.EventInteractionCreate {
	t.Helper()
	i, err := discord.UnmarshalInteraction([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return gateway.EventInteractionCreate{Interaction: i}
}

func TestInteractionsCarryVoiceChannelsInOrder(t *testing.T) {
	g, _, s := newTestGrain(t, 1, 2)
	bot, alice, bob := snowflake.ID(1000), snowflake.ID(2000), snowflake.ID(3000)
	guild := snowflake.ID(discordemu.SnowflakeForShard(1, 2))
	foreign := snowflake.ID(discordemu.SnowflakeForShard(0, 2))
	text, music := snowflake.ID(10), snowflake.ID(11)
	g.handle(time.Now(), ready(bot, guild))
	g.handle(time.Now(), guildCreate(guild,
		discord.VoiceState{UserID: alice, ChannelID: ptrID(music)},
		discord.VoiceState{UserID: bot, ChannelID: ptrID(music), SessionID: "x"}))
	recv(t, s.voice) // the bot's state on first sight

	at := time.Now()
	for i, q := range []string{"one", "two", "three", "four"} {
		user := alice
		if i%2 == 1 {
			user = bob
		}
		g.handle(at, interaction(t, interactionJSON(snowflake.ID(900+i), guild, text, user, q)))
	}
	for i, q := range []string{"one", "two", "three", "four"} {
		in := recv(t, s.guilds)
		if in.GetOptions()[0].GetValue() != q || in.GetShardId() != 1 || in.GetReceivedUnixNano() != at.UnixNano() {
			t.Fatalf("interaction %d: %v", i, in)
		}
		wantVoice := music.String()
		if i%2 == 1 {
			wantVoice = "" // bob is in no voice channel
		}
		if in.GetInvoker().GetVoiceChannelId() != wantVoice || in.GetBotVoiceChannelId() != music.String() {
			t.Fatalf("interaction %d voice: invoker %q bot %q", i, in.GetInvoker().GetVoiceChannelId(), in.GetBotVoiceChannelId())
		}
	}
	// A guild of another shard is refused; so is what FromInteraction
	// refuses (unknown command). Both are answered, not dropped.
	g.handle(at, interaction(t, interactionJSON(950, foreign, text, alice, "x")))
	g.handle(at, interaction(t, strings.Replace(interactionJSON(951, guild, text, alice, "x"), `"name":"play"`, `"name":"nope"`, 1)))
	g.handle(at, interaction(t, interactionJSON(952, guild, text, alice, "last")))
	if in := recv(t, s.guilds); in.GetId() != "952" {
		t.Fatalf("refused interactions were delivered: got %v", in)
	}
	// Two guilds, two workers: the answers may come in either order.
	told := map[string]string{}
	for range 2 {
		r := recv(t, s.refused)
		told[r.id] = r.message
	}
	if told["950"] != commands.RefuseOtherShard.Text() || told["951"] != commands.RefuseUnknownCommand.Text() {
		t.Fatalf("refusals %q; want 950 told the other-shard text and 951 the unknown-command text", told)
	}
}

// ixPayload is an INTERACTION_CREATE's data as a map, so that a case can
// drop or replace any part.
func ixPayload(typ int, id, guild, channel, user snowflake.ID, data map[string]any) map[string]any {
	return map[string]any{
		"id": id.String(), "application_id": "555", "type": typ, "token": "tok-" + id.String(), "version": 1,
		"guild_id": guild.String(), "channel_id": channel.String(),
		"channel": map[string]any{"id": channel.String(), "type": 0, "name": "general", "guild_id": guild.String(), "permissions": "0"},
		"member": map[string]any{"user": map[string]any{"id": user.String(), "username": "u"}, "roles": []string{},
			"permissions": "0", "joined_at": "2024-01-01T00:00:00.000000+00:00"},
		"app_permissions": "0", "locale": "en-US", "entitlements": []any{}, "context": 0, "data": data,
	}
}

func playData(name string) map[string]any {
	return map[string]any{"id": "777", "name": name, "type": 1, "options": []map[string]any{{"name": "query", "type": 3, "value": "q"}}}
}

func without(p map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		delete(p, k)
	}
	return p
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawInteraction is the self-message the reader goroutine makes of an
// INTERACTION_CREATE: disgo's parse and, when raw events came, the payload.
func rawInteraction(t *testing.T, parsed, payload []byte) interactionCreate {
	t.Helper()
	ev := interaction(t, string(parsed))
	if payload == nil {
		return interactionCreate{EventInteractionCreate: ev}
	}
	return interactionCreate{EventInteractionCreate: ev, payload: bytes.NewReader(payload)}
}

// TestInteractionChannelFromRawPayload: an interaction with channel_id but
// no channel object (both optional in Discord's docs; disgo reads only the
// object) reaches its guild grain with the channel from the raw payload.
func TestInteractionChannelFromRawPayload(t *testing.T) {
	guild, text, alice := snowflake.ID(discordemu.SnowflakeForShard(0, 1)), snowflake.ID(10), snowflake.ID(2000)
	bare := mustJSON(t, without(ixPayload(2, 900, guild, text, alice, playData("play")), "channel"))
	for _, tc := range []struct {
		name    string
		parsed  []byte
		payload []byte
		want    string // the delivered channel; "" = refused as malformed
	}{
		{"channel object", mustJSON(t, ixPayload(2, 900, guild, text, alice, playData("play"))), nil, text.String()},
		{"channel_id only", bare, bare, text.String()},
		{"channel_id only, no raw event", bare, nil, ""},
		{"raw payload of another interaction", bare, mustJSON(t, without(ixPayload(2, 901, guild, 11, alice, playData("play")), "channel")), ""},
		{"raw payload without channel_id", bare, mustJSON(t, without(ixPayload(2, 900, guild, text, alice, playData("play")), "channel", "channel_id")), ""},
		{"raw payload not JSON", bare, []byte("{"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _, s := newTestGrain(t, 0, 1)
			g.handle(time.Now(), ready(1000, guild))
			g.handle(time.Now(), rawInteraction(t, tc.parsed, tc.payload))
			if tc.want == "" {
				r := recv(t, s.refused)
				if r.id != "900" || r.token != "tok-900" || r.message != commands.RefuseMalformed.Text() {
					t.Fatalf("refusal %+v; want the malformed-interaction text", r)
				}
				none(t, s.guilds)
				return
			}
			in := recv(t, s.guilds)
			if in.GetId() != "900" || in.GetChannelId() != tc.want || in.GetName() != "play" {
				t.Fatalf("delivered %v; want channel %s", in, tc.want)
			}
			none(t, s.refused)
		})
	}
}

// TestUnconvertibleInteractionsAreRefused: what the bot cannot handle is
// answered through Deps.Refuse (with the class's text, by the right kind of
// callback, within Discord's 3 s) instead of being dropped.
func TestUnconvertibleInteractionsAreRefused(t *testing.T) {
	guild, foreign := snowflake.ID(discordemu.SnowflakeForShard(1, 2)), snowflake.ID(discordemu.SnowflakeForShard(0, 2))
	text, alice := snowflake.ID(10), snowflake.ID(2000)
	const (
		command      = clusterpb.InteractionKind_INTERACTION_KIND_COMMAND
		autocomplete = clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE
		button       = clusterpb.InteractionKind_INTERACTION_KIND_BUTTON
		other        = clusterpb.InteractionKind_INTERACTION_KIND_UNSPECIFIED
	)
	message := map[string]any{"id": "4242", "channel_id": text.String(), "content": "", "type": 0,
		"author": map[string]any{"id": "555", "username": "Ensemble"}, "timestamp": "2024-01-01T00:00:00Z"}
	component := func(data map[string]any) map[string]any {
		p := ixPayload(3, 900, guild, text, alice, data)
		p["message"] = message
		return p
	}
	dm := without(ixPayload(2, 900, guild, text, alice, playData("play")), "guild_id", "member")
	dm["user"] = map[string]any{"id": alice.String(), "username": "u"}
	for _, tc := range []struct {
		name    string
		p       map[string]any
		kind    clusterpb.InteractionKind
		refusal commands.Refusal
	}{
		{"unknown command", ixPayload(2, 900, guild, text, alice, playData("eval")), command, commands.RefuseUnknownCommand},
		{"unknown option", ixPayload(2, 900, guild, text, alice, map[string]any{"id": "777", "name": "pause", "type": 1,
			"options": []map[string]any{{"name": "hard", "type": 5, "value": true}}}), command, commands.RefuseBadOptions},
		{"autocomplete of an unknown command", ixPayload(4, 900, guild, text, alice, map[string]any{"id": "777", "name": "eval", "type": 1,
			"options": []map[string]any{{"name": "query", "type": 3, "value": "q", "focused": true}}}), autocomplete, commands.RefuseUnknownCommand},
		{"guild of another shard", ixPayload(2, 900, foreign, text, alice, playData("play")), command, commands.RefuseOtherShard},
		{"direct message", dm, command, commands.RefuseNotInServer},
		{"stale button", component(map[string]any{"custom_id": "np:skip", "component_type": 2}), button, commands.RefuseStaleButton},
		{"select menu", component(map[string]any{"custom_id": "np:skip", "component_type": 3, "values": []string{"a"}}), button, commands.RefuseUnsupported},
		{"modal submit", ixPayload(5, 900, guild, text, alice, map[string]any{"custom_id": "m", "components": []any{}}), other, commands.RefuseUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _, s := newTestGrain(t, 1, 2)
			g.handle(time.Now(), ready(1000, guild))
			at := time.Now()
			g.handle(at, interaction(t, string(mustJSON(t, tc.p))))
			r := recv(t, s.refused)
			want := refusal{id: "900", token: "tok-900", kind: tc.kind, message: tc.refusal.Text(), deadline: at.Add(3 * time.Second)}
			if !r.deadline.Equal(want.deadline) {
				t.Fatalf("deadline %v; want %v (3 s after arrival)", r.deadline, want.deadline)
			}
			r.deadline = want.deadline
			if r != want {
				t.Fatalf("refusal %+v\nwant %+v", r, want)
			}
			none(t, s.guilds)
		})
	}
}

func TestReadyReportsApplicationAndBotUser(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	ev := ready(1000)
	ev.Application.ID = 555
	g.handle(time.Now(), ev)
	if got := recv(t, s.readies); got != [2]string{"555", "1000"} {
		t.Fatalf("OnReady(%q, %q); want the application and user IDs of READY", got[0], got[1])
	}
	// A READY without application.id reports it missing rather than "0".
	g.handle(time.Now(), ready(1000))
	if got := recv(t, s.readies); got != [2]string{"", "1000"} {
		t.Fatalf("OnReady(%q, %q) without application.id", got[0], got[1])
	}
}

// TestClosingShardAnswersBusyOnTheReader: once a stop begins, the reader
// queues nothing more for the grain (it would land behind the PoisonPill
// and be dropped, left to a replay on the next holder a second or more
// later, past Discord's deadline). It answers interactions busy itself and
// leaves other events to that replay.
func TestClosingShardAnswersBusyOnTheReader(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	queued := make(chan any, 8)
	onEvent := g.eventHandler(func(m any) { queued <- m })
	alice, guild, text := snowflake.ID(2000), snowflake.ID(discordemu.SnowflakeForShard(0, 1)), snowflake.ID(10)

	onEvent(nil, gateway.EventTypeInteractionCreate, 5, interaction(t, interactionJSON(921, guild, text, alice, "before")))
	if d, ok := recv(t, queued).(*dispatch); !ok || d.seq != 5 {
		t.Fatalf("before the stop: queued %+v, want the interaction's dispatch (seq 5)", d)
	}
	g.beginClose()
	onEvent(nil, gateway.EventTypeInteractionCreate, 6, interaction(t, interactionJSON(922, guild, text, alice, "during")))
	onEvent(nil, gateway.EventTypeVoiceStateUpdate, 7, vsu(guild, alice, text, "s"))
	// The handler queues synchronously: anything it queued is there now.
	none(t, queued)
	if r := recv(t, s.refused); r.id != "922" || !commands.IsBusy(r.message) {
		t.Fatalf("refusal %+v, want 922 answered busy", r)
	}
	none(t, s.refused)
}

func TestLastPayloadPairsBySequence(t *testing.T) {
	var l lastPayload
	a, b := strings.NewReader("a"), strings.NewReader("b")
	l.keep(5, a)
	if got := l.take(6); got != nil {
		t.Fatal("took the payload of another dispatch")
	}
	if got := l.take(5); got != nil {
		t.Fatal("a payload was kept after a take")
	}
	l.keep(7, a)
	l.keep(8, b)
	if got := l.take(8); got != b {
		t.Fatalf("take(8) = %v", got)
	}
}

func TestUpdateVoiceAndEnsureStatus(t *testing.T) {
	g, gw, s := newTestGrain(t, 1, 2)
	guild := discordemu.SnowflakeForShard(1, 2).String()
	// Not connected: refused at once, nothing queued for the sender.
	if _, err := g.UpdateVoice(&clusterpb.VoiceRequest{GuildId: guild, ChannelId: "1234"}, nil); !errors.Is(err, discord.ErrShardNotReady) {
		t.Fatalf("not ready: %v", err)
	}
	g.ready = true
	gw.mu.Lock()
	gw.status = gateway.StatusReady
	gw.mu.Unlock()
	if _, err := g.UpdateVoice(&clusterpb.VoiceRequest{GuildId: guild, ChannelId: "1234"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.UpdateVoice(&clusterpb.VoiceRequest{GuildId: guild}, nil); err != nil {
		t.Fatal(err)
	}
	wrong := discordemu.SnowflakeForShard(0, 2).String()
	if _, err := g.UpdateVoice(&clusterpb.VoiceRequest{GuildId: wrong, ChannelId: "1234"}, nil); err == nil || !strings.Contains(err.Error(), "belongs to shard 0") {
		t.Fatalf("wrong shard: %v", err)
	}
	// The shard's sender makes the sends, in order, off the grain.
	recv(t, gw.sends)
	recv(t, gw.sends)
	gw.mu.Lock()
	sent := gw.sent
	gw.mu.Unlock()
	if len(sent) != 2 || sent[0].ChannelID == nil || *sent[0].ChannelID != 1234 || sent[1].ChannelID != nil {
		t.Fatalf("sent %+v", sent)
	}
	g.ready = false

	// An identity that is not a shard answers with its reason.
	bad := &grain{invalid: errors.New("shard 7 does not exist")}
	if _, err := bad.UpdateVoice(&clusterpb.VoiceRequest{GuildId: guild}, nil); err == nil {
		t.Fatal("invalid grain sent a voice update")
	}
	if _, err := bad.Ensure(&clusterpb.Ack{}, nil); err == nil {
		t.Fatal("invalid grain reported a status")
	}

	// disgo reconnecting silently (status no longer ready) is noticed.
	g.handle(time.Now(), ready(1000))
	if !recv(t, s.status) {
		t.Fatal("not ready after READY")
	}
	gw.status = gateway.StatusResuming
	g.syncStatus()
	if recv(t, s.status) {
		t.Fatal("still ready while disgo reconnects")
	}
	g.handle(time.Now(), gateway.EventResumed{})
	if !recv(t, s.status) {
		t.Fatal("not ready after RESUMED")
	}
}

// initCtx is the little of a grain context Init uses on a refused
// identity; anything else panics (nil embedded interface).
type initCtx struct {
	pcluster.GrainContext
	identity string
	poisoned bool
}

func (c *initCtx) Identity() string  { return c.identity }
func (c *initCtx) Self() *actor.PID  { return nil }
func (c *initCtx) Poison(*actor.PID) { c.poisoned = true }

func TestInitRefusesIdentitiesThatAreNotShards(t *testing.T) {
	d := Deps{ShardCount: 2, Log: quietLog(), GatewayURL: "ws://127.0.0.1:1/never"}
	d.defaults()
	for _, identity := range []string{"2", "01", "shard-0", ""} {
		g := &grain{deps: &d}
		ctx := &initCtx{identity: identity}
		g.Init(ctx)
		if !ctx.poisoned || g.gw != nil || g.invalid == nil {
			t.Fatalf("identity %q: poisoned %v gateway %v invalid %v", identity, ctx.poisoned, g.gw, g.invalid)
		}
		// The request that activated it gets the reason, not a timeout.
		if _, err := g.Ensure(&clusterpb.Ack{}, ctx); err == nil || err.Error() != g.invalid.Error() {
			t.Fatalf("identity %q: Ensure = %v", identity, err)
		}
		g.Terminate(ctx)
	}
}

// TestGuildBacklogIsAnsweredBusy: deliveries never block the shard. A
// guild whose backlog is full has its next interaction answered busy at
// once, one that waited past the delivery budget too; other guilds and
// the queued interaction go on.
func TestGuildBacklogIsAnsweredBusy(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	release := make(chan struct{})
	blocked := make(chan struct{})
	first := true
	g.deps.Ordered = cluster.NewOrdered(2, 1000)
	t.Cleanup(g.deps.Ordered.Close)
	guilds := g.deps.Guilds
	g.deps.Guilds = func(ctx context.Context, in *clusterpb.Interaction) error {
		if in.GetId() == "901" && first {
			first = false
			close(blocked)
			<-release
		}
		return guilds(ctx, in)
	}
	bot, alice := snowflake.ID(1000), snowflake.ID(2000)
	slow, other := snowflake.ID(discordemu.SnowflakeForShard(0, 1)), snowflake.ID(discordemu.SnowflakeForShard(0, 1))
	text := snowflake.ID(10)
	g.handle(time.Now(), ready(bot, slow, other))
	now := time.Now()
	g.handle(now, interaction(t, interactionJSON(901, slow, text, alice, "stuck")))
	<-blocked
	g.handle(now, interaction(t, interactionJSON(902, slow, text, alice, "queued")))
	g.handle(now, interaction(t, interactionJSON(903, slow, text, alice, "over the bound")))
	if r := recv(t, s.refused); r.id != "903" || !commands.IsBusy(r.message) {
		t.Fatalf("refusal %+v, want 903 answered busy", r)
	}
	g.handle(now, interaction(t, interactionJSON(904, other, text, alice, "elsewhere")))
	if in := recv(t, s.guilds); in.GetId() != "904" {
		t.Fatalf("delivered %s while another guild's delivery is stuck, want 904", in.GetId())
	}
	// An interaction that arrived long ago is answered busy rather than
	// delivered after Discord's deadline.
	g.handle(now.Add(-2*deliverBudget), interaction(t, interactionJSON(905, other, text, alice, "late")))
	if r := recv(t, s.refused); r.id != "905" || !commands.IsBusy(r.message) {
		t.Fatalf("refusal %+v, want 905 answered busy", r)
	}
	close(release)
	for _, want := range []string{"901", "902"} {
		if in := recv(t, s.guilds); in.GetId() != want {
			t.Fatalf("delivered %s, want %s", in.GetId(), want)
		}
	}
}

// TestFailedDeliveryIsAnsweredBusy: a guild grain that cannot be reached
// (its member just died, say) leaves no interaction unanswered, and the
// delivery gives up in time for the busy answer to make Discord's 3 s.
func TestFailedDeliveryIsAnsweredBusy(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	deadlines := make(chan time.Time, 1)
	g.deps.Guilds = func(ctx context.Context, in *clusterpb.Interaction) error {
		d, _ := ctx.Deadline()
		deadlines <- d
		return errors.New("member unreachable")
	}
	bot, alice, guild, text := snowflake.ID(1000), snowflake.ID(2000), snowflake.ID(discordemu.SnowflakeForShard(0, 1)), snowflake.ID(10)
	g.handle(time.Now(), ready(bot, guild))
	at := time.Now()
	g.handle(at, interaction(t, interactionJSON(911, guild, text, alice, "queue")))
	if d := recv(t, deadlines); d.After(at.Add(answerWithin)) || !d.After(at) {
		t.Fatalf("delivery deadline %v after arrival, want within Discord's %v", d.Sub(at), answerWithin)
	}
	r := recv(t, s.refused)
	if r.id != "911" || !commands.IsBusy(r.message) {
		t.Fatalf("refusal %+v, want 911 answered busy", r)
	}
	if !r.deadline.Equal(at.Add(answerWithin)) {
		t.Fatalf("busy answer deadline %v after arrival, want %v", r.deadline.Sub(at), answerWithin)
	}
}

// TestUpdateVoiceNeverWaits: with the sender's queue full, a voice update
// is refused at once instead of waiting on the gateway.
func TestUpdateVoiceNeverWaits(t *testing.T) {
	g, _, _ := newTestGrain(t, 0, 1)
	g.ready = true
	sends := g.sends
	g.sends = make(chan gateway.MessageDataVoiceStateUpdate) // no room, no sender
	defer func() { g.sends = sends }()
	guild := discordemu.SnowflakeForShard(0, 1).String()
	if _, err := g.UpdateVoice(&clusterpb.VoiceRequest{GuildId: guild, ChannelId: "1234"}, nil); !errors.Is(err, errSendQueueFull) {
		t.Fatalf("with the sender's queue full: %v", err)
	}
}
