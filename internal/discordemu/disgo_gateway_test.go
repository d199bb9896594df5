//go:build !race

// The tests in this file drive the emulator with disgo's real gateway client. Under -race
// they fail only because of data races inside disgo v0.19.6 (and the zstd decoder it
// drives); the emulator itself is covered under -race by the plain-websocket tests. Race
// reports observed (go test -race -run Disgo, 2 cores):
//
//   - gateway/gateway.go:317 and :319 (CloseWithCode reads and calls heartbeatCancel) vs
//     gateway/gateway.go:450-451 (heartbeat goroutine writes heartbeatCancel).
//   - gateway/gateway.go:641, :650, :651 (listen writes config.LastSequenceReceived,
//     SessionID, ResumeURL on op 0 / op 9) vs gateway/gateway.go:335-337 (CloseWithCode
//     clears them).
//   - gateway/gateway_transports.go:146 (pipeBuffer.Reset from zstdStreamTransport.Close,
//     :195) vs gateway/gateway_transports.go:140 (pipeBuffer.Write in ReceiveMessage), and
//     klauspost/compress@v1.20.1 zstd/decoder.go:619 (Decoder.Close) vs decoder.go:545,
//     :524, :459 (nextBlockSync/nextBlock) with drainOutput decoder.go:299-300: closing a
//     compressed connection while the reader goroutine still decodes.
//
// The Makefile runs this package a second time without -race so these tests still run.

package discordemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/disgoorg/disgo"
	"github.com/disgoorg/disgo/bot"
	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/events"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/disgo/sharding"
	"github.com/gorilla/websocket"
)

var testCommands = []discord.ApplicationCommandCreate{
	discord.SlashCommandCreate{Name: "play", Description: "Play a track", Options: []discord.ApplicationCommandOption{
		discord.ApplicationCommandOptionString{Name: "query", Description: "What to play", Required: true, Autocomplete: true},
	}},
	discord.SlashCommandCreate{Name: "slow", Description: "A command that defers"},
	discord.SlashCommandCreate{Name: "twice", Description: "Answers twice"},
	discord.SlashCommandCreate{Name: "late", Description: "Answers late"},
}

// musicBot answers like the real bot will: replies, defers and edits, autocompletes and
// updates a message from a button. Errors from REST are sent to errs.
func musicBot(errs chan<- error) bot.ConfigOpt {
	return bot.WithEventListeners(&events.ListenerAdapter{
		OnApplicationCommandInteraction: func(e *events.ApplicationCommandInteractionCreate) {
			data := e.SlashCommandInteractionData()
			switch data.CommandName() {
			case "play":
				errs <- e.CreateMessage(discord.NewMessageCreate().
					WithContent("Queued " + data.String("query")).
					AddEmbeds(discord.NewEmbed().WithTitle(data.String("query")).AddField("Position", "1", true)).
					AddActionRow(discord.NewPrimaryButton("Pause", "np:pause")))
			case "slow":
				if err := e.DeferCreateMessage(true); err != nil {
					errs <- err
					return
				}
				client, token := e.Client(), e.Token()
				go func() {
					_, err := client.Rest.UpdateInteractionResponse(client.ApplicationID, token,
						discord.NewMessageUpdate().WithContent("Loaded 12 tracks"))
					errs <- err
				}()
			case "twice":
				if err := e.DeferCreateMessage(false); err != nil {
					errs <- err
					return
				}
				errs <- e.CreateMessage(discord.NewMessageCreate().WithContent("second"))
			case "late":
				go func() {
					time.Sleep(500 * time.Millisecond)
					errs <- e.CreateMessage(discord.NewMessageCreate().WithContent("too late"))
				}()
			}
		},
		OnAutocompleteInteraction: func(e *events.AutocompleteInteractionCreate) {
			errs <- e.AutocompleteResult([]discord.AutocompleteChoice{
				discord.AutocompleteChoiceString{Name: "Result for " + e.Data.String("query"), Value: "yt:1"},
			})
		},
		OnComponentInteraction: func(e *events.ComponentInteractionCreate) {
			errs <- e.UpdateMessage(discord.NewMessageUpdate().WithContent("Paused by " + e.User().Username))
		},
	})
}

func nextErr(t *testing.T, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(waitLong):
		t.Fatal("timed out waiting for the bot's REST call")
		return nil
	}
}

func TestDisgoSingleShardConformance(t *testing.T) {
	for _, comp := range []gateway.CompressionType{gateway.CompressionZstdStream, gateway.CompressionZlibStream, gateway.CompressionNone} {
		t.Run(comp.String(), func(t *testing.T) {
			emu := startEmu(t, Config{VoiceEndpoint: "127.0.0.1:7"})
			w := addWorld(t, emu, SnowflakeForShard(0, 1))
			if err := emu.JoinVoice(w.guild, w.alice, w.voice); err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 16)
			client, ev := newBot(t, emu, musicBot(errs), bot.WithGatewayConfigOpts(gateway.WithCompression(comp)))
			ctx := ctxTimeout(t)
			if err := client.OpenGateway(ctx); err != nil {
				t.Fatal(err)
			}
			waitEvent[*events.GuildReady](t, ev, func(e *events.GuildReady) bool { return e.Guild.ID == sf(w.guild) })
			if vs, ok := client.Caches.VoiceState(sf(w.guild), sf(w.alice)); !ok || vs.ChannelID == nil || *vs.ChannelID != sf(w.voice) {
				t.Fatalf("voice state from GUILD_CREATE not cached: %+v %v", vs, ok)
			}
			if s := emu.Sessions(); len(s) != 1 || s[0].Compression != Compression(comp) {
				t.Fatalf("sessions %+v", s)
			}

			cmds, err := client.Rest.SetGlobalCommands(client.ApplicationID, testCommands)
			if err != nil || len(cmds) != len(testCommands) || cmds[0].ID() == 0 || cmds[0].Name() != "play" {
				t.Fatalf("SetGlobalCommands: %v %v", cmds, err)
			}

			// Reply with a message, embed and button.
			ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", StringOption("query", "lofi"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ix.Wait(ctx)
			if err != nil || r.Type != ResponseMessage || r.Content != "Queued lofi" || r.Embeds[0].Title != "lofi" || r.Ephemeral() {
				t.Fatalf("reply %+v %v", r, err)
			}
			if err := nextErr(t, errs); err != nil {
				t.Fatal(err)
			}
			orig, _ := ix.Original()
			if got := emu.Messages(w.text); len(got) != 1 || got[0].ID != orig.ID {
				t.Fatalf("channel messages %+v", got)
			}

			// Button → update message.
			press, err := emu.PressButton(w.guild, w.bob, orig.ID, "np:pause")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := press.Wait(ctx); err != nil || r.Type != ResponseUpdateMessage || r.Content != "Paused by bob" {
				t.Fatalf("button response %+v %v", r, err)
			}
			if err := nextErr(t, errs); err != nil {
				t.Fatal(err)
			}
			if m, _ := emu.Message(orig.ID); m.Content != "Paused by bob" || len(m.CustomIDs()) != 1 {
				t.Fatalf("message after update %+v", m)
			}

			// Autocomplete.
			ac, err := emu.Autocomplete(w.guild, w.alice, w.text, "play", FocusedOption("query", "lo"))
			if err != nil {
				t.Fatal(err)
			}
			if r, err := ac.Wait(ctx); err != nil || r.Type != ResponseAutocompleteResult || len(r.Choices) != 1 || r.Choices[0].Name != "Result for lo" {
				t.Fatalf("autocomplete %+v %v", r, err)
			}
			if err := nextErr(t, errs); err != nil {
				t.Fatal(err)
			}

			// Defer, then edit @original.
			slow, err := emu.InvokeCommand(w.guild, w.alice, w.text, "slow")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := slow.Wait(ctx); err != nil || r.Type != ResponseDeferredMessage || !r.Ephemeral() {
				t.Fatalf("deferred %+v %v", r, err)
			}
			if e, err := slow.WaitEdit(ctx); err != nil || e.Content != "Loaded 12 tracks" || !e.Ephemeral() {
				t.Fatalf("edit %+v %v", e, err)
			}
			if err := nextErr(t, errs); err != nil {
				t.Fatal(err)
			}

			// Op 4 → VOICE_STATE_UPDATE (bot) then VOICE_SERVER_UPDATE.
			voice := sf(w.voice)
			if err := client.UpdateVoiceState(ctx, sf(w.guild), &voice, false, true); err != nil {
				t.Fatal(err)
			}
			var order []string
			for len(order) < 2 {
				select {
				case e := <-ev.ch:
					switch e := e.(type) {
					case *events.GuildVoiceStateUpdate:
						if e.VoiceState.UserID == client.ApplicationID && e.VoiceState.SessionID != "" {
							order = append(order, "state")
						}
					case *events.VoiceServerUpdate:
						if e.Token == "" || e.Endpoint == nil || *e.Endpoint != "127.0.0.1:7" || e.GuildID != sf(w.guild) {
							t.Fatalf("server update %+v", e.EventVoiceServerUpdate)
						}
						order = append(order, "server")
					}
				case <-time.After(waitLong):
					t.Fatalf("voice events so far: %v", order)
				}
			}
			if order[0] != "state" || order[1] != "server" {
				t.Fatalf("voice event order %v", order)
			}
			if errs := emu.Errors(); len(errs) != 0 {
				t.Fatalf("protocol errors: %v", errs)
			}
		})
	}
}

func TestDisgoFourShards(t *testing.T) {
	emu := startEmu(t, Config{Shards: 4, MaxConcurrency: 4})
	var worlds []testWorld
	for i := 0; i < 4; i++ {
		worlds = append(worlds, addWorld(t, emu, SnowflakeForShard(i, 4)))
	}
	ev := &eventLog{ch: make(chan bot.Event, 4096)}
	errs := make(chan error, 16)
	client, err := disgo.New(emu.Token(),
		bot.WithLogger(quietLogger()),
		bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())),
		bot.WithShardManagerConfigOpts(sharding.WithGatewayConfigOpts(gateway.WithCompression(gateway.CompressionNone),
			gateway.WithIntents(gateway.IntentGuilds|gateway.IntentGuildVoiceStates))),
		ev.listener(), musicBot(errs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	ctx := ctxTimeout(t)
	if err := client.OpenShardManager(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := emu.WaitReady(ctx, i); err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	seen := map[Snowflake]int{}
	for len(seen) < 4 {
		g := waitEvent[*events.GuildReady](t, ev, nil)
		seen[Snowflake(g.Guild.ID)] = g.ShardID()
	}
	for i, w := range worlds {
		if seen[w.guild] != i {
			t.Fatalf("guild of shard %d arrived on shard %d", i, seen[w.guild])
		}
	}
	if v := emu.IdentifyViolations(); len(v) != 0 {
		t.Fatalf("identify violations with disgo's default limiter: %v", v)
	}

	// Op 4 through disgo goes to the owning shard; both voice events come back on it.
	w := worlds[2]
	voice := sf(w.voice)
	if err := client.UpdateVoiceState(ctx, sf(w.guild), &voice, false, true); err != nil {
		t.Fatal(err)
	}
	su := waitEvent[*events.VoiceServerUpdate](t, ev, nil)
	if su.ShardID() != 2 || su.GuildID != sf(w.guild) {
		t.Fatalf("server update on shard %d for %s", su.ShardID(), su.GuildID)
	}
	if bv, ok := emu.BotVoiceState(w.guild); !ok || bv.ChannelID != w.voice {
		t.Fatal("bot voice state not tracked")
	}

	// An op 4 on the wrong shard is recorded, not answered.
	wrong := client.ShardManager.Shard(0)
	voice3 := sf(worlds[3].voice)
	if err := wrong.Send(ctx, gateway.OpcodeVoiceStateUpdate, gateway.MessageDataVoiceStateUpdate{GuildID: sf(worlds[3].guild), ChannelID: &voice3}); err != nil {
		t.Fatal(err)
	}
	if p, err := emu.WaitError(ctx, ErrWrongShard); err != nil || p.Shard != 0 || p.GuildID != worlds[3].guild {
		t.Fatalf("wrong shard: %+v %v", p, err)
	}
	if _, ok := emu.BotVoiceState(worlds[3].guild); ok {
		t.Fatal("wrong-shard op 4 changed the voice state")
	}

	// Interactions arrive on the guild's shard and the reply goes through.
	if _, err := client.Rest.SetGlobalCommands(client.ApplicationID, testCommands); err != nil {
		t.Fatal(err)
	}
	ix, err := emu.InvokeCommand(worlds[3].guild, worlds[3].alice, worlds[3].text, "play", StringOption("query", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if ix.Shard() != 3 {
		t.Fatalf("interaction dispatched on shard %d", ix.Shard())
	}
	if r, err := ix.Wait(ctx); err != nil || r.Content != "Queued x" {
		t.Fatalf("reply %+v %v", r, err)
	}
	if err := nextErr(t, errs); err != nil {
		t.Fatal(err)
	}
}

// TestDisgoIdentifyPacing shows the emulator's identify accounting against disgo's own
// limiter (paced, no violation) and a no-op limiter (violation recorded).
func TestDisgoIdentifyPacing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		noop       bool
		violations int
	}{{"default limiter", false, 0}, {"noop limiter", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			emu := startEmu(t, Config{Shards: 2, MaxConcurrency: 1})
			opts := []sharding.ConfigOpt{sharding.WithGatewayConfigOpts(gateway.WithCompression(gateway.CompressionNone), gateway.WithIntents(gateway.IntentGuilds))}
			if tc.noop {
				opts = append(opts, sharding.WithIdentifyRateLimiter(gateway.NewNoopIdentifyRateLimiter()))
			}
			client, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()),
				bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())),
				bot.WithShardManagerConfigOpts(opts...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close(context.Background()) })
			ctx := ctxTimeout(t)
			if err := client.OpenShardManager(ctx); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if _, err := emu.WaitReady(ctx, i); err != nil {
					t.Fatal(err)
				}
			}
			if got := len(emu.IdentifyViolations()); got != tc.violations {
				t.Fatalf("violations %d, want %d: %v", got, tc.violations, emu.IdentifyViolations())
			}
		})
	}
}

func TestDisgoReconnectResumeLosesNothing(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	client, ev := newBot(t, emu)
	ctx := ctxTimeout(t)
	if err := client.OpenGateway(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := emu.WaitReady(ctx, 0)
	waitEvent[*events.GuildReady](t, ev, nil)

	if err := emu.Reconnect(0); err != nil {
		t.Fatal(err)
	}
	// These dispatches race the reconnect: some are written to the dying connection after
	// disgo stopped reading it. RESUME must replay exactly those.
	channels := []Snowflake{w.voice, w.voice2, w.voice, w.voice2, 0, w.voice}
	for _, ch := range channels {
		var err error
		if ch == 0 {
			err = emu.LeaveVoice(w.guild, w.bob)
		} else {
			err = emu.JoinVoice(w.guild, w.bob, ch)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range channels {
		e := waitEvent[*events.GuildVoiceStateUpdate](t, ev, func(e *events.GuildVoiceStateUpdate) bool {
			return e.VoiceState.UserID == sf(w.bob)
		})
		got := Snowflake(0)
		if e.VoiceState.ChannelID != nil {
			got = Snowflake(*e.VoiceState.ChannelID)
		}
		if got != want {
			t.Fatalf("event %d: channel %s, want %s (lost or duplicated dispatch)", i, got, want)
		}
	}
	waitEventOrSeen[*events.Resumed](t, ev)
	s, _ := emu.WaitReady(ctx, 0)
	// op 7 was queued before the six dispatches and disgo stops reading at op 7, so all
	// six reached it only through the replay.
	if s.ID != first.ID || s.Resumes != 1 || s.Replayed != len(channels) {
		t.Fatalf("session after reconnect %+v (first %s)", s, first.ID)
	}
	if n := len(emu.Recorder().PayloadsWithOp(opResume)); n != 1 {
		t.Fatalf("%d RESUME payloads", n)
	}
	if n := len(emu.Recorder().PayloadsWithOp(opIdentify)); n != 1 {
		t.Fatalf("%d IDENTIFY payloads", n)
	}
	// And the live stream continues.
	if err := emu.JoinVoice(w.guild, w.alice, w.voice); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.GuildVoiceStateUpdate](t, ev, func(e *events.GuildVoiceStateUpdate) bool { return e.VoiceState.UserID == sf(w.alice) })
}

// waitEventOrSeen is satisfied by an event that may already have been consumed while
// waiting for others: it checks the session instead of failing.
func waitEventOrSeen[T bot.Event](t *testing.T, ev *eventLog) {
	t.Helper()
	for {
		select {
		case e := <-ev.ch:
			if _, ok := e.(T); ok {
				return
			}
		default:
			return
		}
	}
}

func TestDisgoInvalidSession(t *testing.T) {
	t.Run("not resumable", func(t *testing.T) {
		emu := startEmu(t, Config{})
		addWorld(t, emu, SnowflakeForShard(0, 1))
		client, ev := newBot(t, emu)
		ctx := ctxTimeout(t)
		if err := client.OpenGateway(ctx); err != nil {
			t.Fatal(err)
		}
		first, _ := emu.WaitReady(ctx, 0)
		waitEvent[*events.Ready](t, ev, nil)
		if err := emu.InvalidateSession(0, false); err != nil {
			t.Fatal(err)
		}
		r := waitEvent[*events.Ready](t, ev, nil)
		if r.SessionID == first.ID || r.SessionID == "" {
			t.Fatalf("re-identified into session %q (first %q)", r.SessionID, first.ID)
		}
		if n := len(emu.Recorder().PayloadsWithOp(opIdentify)); n != 2 {
			t.Fatalf("%d IDENTIFY payloads", n)
		}
		if n := len(emu.Recorder().PayloadsWithOp(opResume)); n != 0 {
			t.Fatalf("disgo tried to resume an invalidated session")
		}
		// Single-gateway disgo uses a no-op identify limiter: the second identify comes
		// about 1 s after the first, inside Discord's 5 s window.
		if len(emu.IdentifyViolations()) != 1 {
			t.Fatalf("identify violations %v", emu.IdentifyViolations())
		}
	})
	t.Run("resumable", func(t *testing.T) {
		emu := startEmu(t, Config{})
		client, ev := newBot(t, emu)
		ctx := ctxTimeout(t)
		if err := client.OpenGateway(ctx); err != nil {
			t.Fatal(err)
		}
		first, _ := emu.WaitReady(ctx, 0)
		if err := emu.InvalidateSession(0, true); err != nil {
			t.Fatal(err)
		}
		waitEvent[*events.Resumed](t, ev, nil)
		s, _ := emu.WaitReady(ctx, 0)
		if s.ID != first.ID || s.Resumes != 1 {
			t.Fatalf("session %+v", s)
		}
	})
}

func TestDisgoCloseCodes(t *testing.T) {
	cases := []struct {
		code    int
		outcome string // "resume", "identify" or "give up"
	}{
		{CloseUnknownError, "resume"},
		{CloseRateLimited, "resume"},
		{CloseSessionTimedOut, "identify"}, // session ended: disgo's RESUME gets op 9 false
		{CloseInvalidSeq, "identify"},      // disgo forgets the session itself
		{CloseAuthenticationFailed, "give up"},
	}
	for _, tc := range cases {
		t.Run(closeTexts[tc.code], func(t *testing.T) {
			emu := startEmu(t, Config{})
			closed := make(chan error, 1)
			client, ev := newBot(t, emu, bot.WithGatewayConfigOpts(gateway.WithCloseHandler(func(_ gateway.Gateway, err error, reconnect bool) {
				if !reconnect {
					closed <- err
				}
			})))
			ctx := ctxTimeout(t)
			if err := client.OpenGateway(ctx); err != nil {
				t.Fatal(err)
			}
			first, _ := emu.WaitReady(ctx, 0)
			if err := emu.CloseShard(0, tc.code); err != nil {
				t.Fatal(err)
			}
			switch tc.outcome {
			case "resume":
				s, err := emu.WaitSession(ctx, func(s SessionInfo) bool { return s.Ready && s.Resumes == 1 })
				if err != nil || s.ID != first.ID {
					t.Fatalf("no resume: %+v %v", s, err)
				}
				// Until disgo has read RESUMED, closing the client would
				// crash its reader (gateway.go:658 dereferences the session
				// ID that Close clears).
				waitEvent[*events.Resumed](t, ev, nil)
			case "identify":
				s, err := emu.WaitSession(ctx, func(s SessionInfo) bool { return s.Ready && s.ID != first.ID })
				if err != nil {
					t.Fatalf("no new session: %+v %v", s, err)
				}
				waitEvent[*events.Ready](t, ev, func(e *events.Ready) bool { return e.SessionID == s.ID })
				if n := len(emu.Recorder().PayloadsWithOp(opIdentify)); n != 2 {
					t.Fatalf("%d IDENTIFY payloads", n)
				}
			case "give up":
				select {
				case err := <-closed:
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != tc.code {
						t.Fatalf("close handler got %v", err)
					}
				case <-ctx.Done():
					t.Fatal("close handler not called")
				}
				if n := len(emu.Recorder().PayloadsWithOp(opIdentify)) + len(emu.Recorder().PayloadsWithOp(opResume)); n != 1 {
					t.Fatalf("disgo reconnected after a fatal close (%d identify/resume payloads)", n)
				}
			}
		})
	}
}

func TestDisgoBadToken4004(t *testing.T) {
	emu := startEmu(t, Config{})
	bad := base64.RawStdEncoding.EncodeToString([]byte(emu.AppID().String())) + ".bad.token"
	client, err := disgo.New(bad, bot.WithLogger(quietLogger()),
		bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())),
		bot.WithGatewayConfigOpts(gateway.WithURL(emu.GatewayURL()), gateway.WithIntents(gateway.IntentGuilds)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	err = client.OpenGateway(ctxTimeout(t))
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseAuthenticationFailed {
		t.Fatalf("OpenGateway with a bad token: %v", err)
	}
	_, err = client.Rest.GetGatewayBot()
	var re *rest.Error
	if !errors.As(err, &re) || re.Response.StatusCode != 401 {
		t.Fatalf("REST with a bad token: %v", err)
	}
}

func TestDisgoInteractionRefusals(t *testing.T) {
	emu := startEmu(t, Config{InteractionDeadline: 300 * time.Millisecond})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	errs := make(chan error, 16)
	client, _ := newBot(t, emu, musicBot(errs))
	ctx := ctxTimeout(t)
	if err := client.OpenGateway(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Rest.SetGlobalCommands(client.ApplicationID, testCommands); err != nil {
		t.Fatal(err)
	}
	t.Run("late response 10062", func(t *testing.T) {
		if _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "late"); err != nil {
			t.Fatal(err)
		}
		if err := nextErr(t, errs); restCode(err) != 10062 {
			t.Fatalf("late response: %v", err)
		}
	})
	t.Run("double response 40060", func(t *testing.T) {
		ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "twice")
		if err != nil {
			t.Fatal(err)
		}
		if err := nextErr(t, errs); restCode(err) != 40060 {
			t.Fatalf("second response: %v", err)
		}
		if r, _ := ix.Wait(ctx); r.Type != ResponseDeferredMessage {
			t.Fatalf("first response %+v", r)
		}
	})
	if got := len(emu.ErrorsOfKind(ErrLateInteraction)) + len(emu.ErrorsOfKind(ErrDoubleAck)); got != 2 {
		t.Fatalf("recorded errors %v", emu.Errors())
	}
}

func TestDisgoInteractionTokenExpiry(t *testing.T) {
	emu := startEmu(t, Config{TokenLifetime: 500 * time.Millisecond})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	tokens := make(chan string, 1)
	client, _ := newBot(t, emu, bot.WithEventListenerFunc(func(e *events.ApplicationCommandInteractionCreate) {
		_ = e.DeferCreateMessage(false)
		tokens <- e.Token()
	}))
	ctx := ctxTimeout(t)
	if err := client.OpenGateway(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Rest.SetGlobalCommands(client.ApplicationID, testCommands); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "slow"); err != nil {
		t.Fatal(err)
	}
	token := <-tokens
	if _, err := client.Rest.CreateFollowupMessage(client.ApplicationID, token, discord.NewMessageCreate().WithContent("in time")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past the shortened 15-minute lifetime
	_, err := client.Rest.UpdateInteractionResponse(client.ApplicationID, token, discord.NewMessageUpdate().WithContent("too late"))
	if restCode(err) != 50027 {
		t.Fatalf("edit after expiry: %v", err)
	}
}

// TestDisgoClientFacts pins down facts about disgo's client that the rest of
// the project relies on.
func TestDisgoClientFacts(t *testing.T) {
	emu := startEmu(t, Config{})
	client, _ := newBotWith(t, emu)
	// Construction already called GET /gateway (no auth), even with gateway.WithURL.
	if rqs := emu.Recorder().RequestsMatching("GET", "/gateway"); len(rqs) != 1 || rqs[0].Header.Get("Authorization") != "" {
		t.Fatalf("GET /gateway at construction: %+v", rqs)
	}
	// The application ID comes from the token.
	if Snowflake(client.ApplicationID) != emu.AppID() {
		t.Fatalf("application ID %s, want %s", client.ApplicationID, emu.AppID())
	}
	// Send refuses before READY.
	voice := sf(1)
	if err := client.UpdateVoiceState(context.Background(), sf(SnowflakeForShard(0, 1)), &voice, false, false); !errors.Is(err, discord.ErrShardNotReady) {
		t.Fatalf("op 4 before READY: %v", err)
	}
	ctx := ctxTimeout(t)
	if err := client.OpenGateway(ctx); err != nil {
		t.Fatal(err)
	}
	// Open returns only once READY was sent; the default transport is zstd-stream.
	s := emu.Sessions()
	if len(s) != 1 || !s[0].Ready || s[0].Compression != CompressionZstd {
		t.Fatalf("after Open: %+v", s)
	}
	if client.Gateway.Status() != gateway.StatusReady {
		t.Fatalf("disgo status %s", client.Gateway.Status())
	}
	// A heartbeat requested by the server is answered at once.
	before := len(emu.Recorder().PayloadsWithOp(opHeartbeat))
	if err := emu.RequestHeartbeat(0); err != nil {
		t.Fatal(err)
	}
	for len(emu.Recorder().PayloadsWithOp(opHeartbeat)) == before {
		select {
		case <-ctx.Done():
			t.Fatal("disgo did not answer a heartbeat request")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestDisgoShardManagerConstructionCallsGatewayBot(t *testing.T) {
	emu := startEmu(t, Config{Shards: 3, MaxConcurrency: 3})
	client, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()),
		bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())),
		bot.WithShardManagerConfigOpts(sharding.WithGatewayConfigOpts(gateway.WithCompression(gateway.CompressionNone), gateway.WithIntents(gateway.IntentGuilds))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	rqs := emu.Recorder().RequestsMatching("GET", "/gateway/bot")
	if len(rqs) != 1 || rqs[0].Status != 200 {
		t.Fatalf("GET /gateway/bot at construction: %+v", rqs)
	}
	// disgo takes the shard count from /gateway/bot.
	if n := len(slices.Collect(client.ShardManager.Shards())); n != 0 {
		t.Fatalf("%d shards before Open", n)
	}
	if err := client.OpenShardManager(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(slices.Collect(client.ShardManager.Shards())); n != 3 {
		t.Fatalf("%d shards opened, want the 3 /gateway/bot recommended", n)
	}
}

// TestDisgoShardSubsetSendsOp4OnWrongShard confirms disgo's fallback: with only
// some shards in this process, ShardByGuildID picks a shard this process owns for a guild
// it does not own, and disgo sends op 4 there without an error. The emulator catches it.
func TestDisgoShardSubsetSendsOp4OnWrongShard(t *testing.T) {
	emu := startEmu(t, Config{Shards: 4, MaxConcurrency: 4})
	far := addWorld(t, emu, SnowflakeForShard(3, 4))
	client, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()),
		bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())),
		bot.WithShardManagerConfigOpts(sharding.WithShardIDs(0, 1), sharding.WithShardCount(4),
			sharding.WithGatewayConfigOpts(gateway.WithCompression(gateway.CompressionNone), gateway.WithIntents(gateway.IntentGuilds|gateway.IntentGuildVoiceStates))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	ctx := ctxTimeout(t)
	if err := client.OpenShardManager(ctx); err != nil {
		t.Fatal(err)
	}
	voice := sf(far.voice)
	if err := client.UpdateVoiceState(ctx, sf(far.guild), &voice, false, true); err != nil {
		t.Fatalf("disgo reported %v; the pitfall says it silently picks another shard", err)
	}
	p, err := emu.WaitError(ctx, ErrWrongShard)
	if err != nil || p.GuildID != far.guild || p.Shard == 3 {
		t.Fatalf("wrong-shard record %+v %v", p, err)
	}
	if got := sharding.ShardIDByGuild(sf(far.guild), 4); got != 3 {
		t.Fatalf("ShardIDByGuild = %d, want 3", got)
	}
}

// TestDisgoWithoutTokenShapeOrChannelObject drives disgo's gateway and REST clients (not
// disgo.New) against a server like Spacebar: an opaque token, an application ID that is
// not the bot user's ID, and interactions with channel_id but no channel object.
func TestDisgoWithoutTokenShapeOrChannelObject(t *testing.T) {
	cfg := Config{AppID: NewSnowflake(), BotUserID: NewSnowflake(), OpaqueToken: true, OmitInteractionChannel: true}
	emu := startEmu(t, cfg)
	w := addWorld(t, emu, SnowflakeForShard(0, 1))

	// disgo.New parses the application ID out of the token (bot/config.go:251).
	if _, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger())); err == nil {
		t.Fatal("disgo.New accepted an opaque token: the fact the bot relies on changed")
	}

	// The REST client takes the token as is.
	r := rest.New(rest.NewClient(emu.Token(), rest.WithURL(emu.RESTURL()), rest.WithLogger(quietLogger())))
	if _, err := r.SetGlobalCommands(sf(emu.AppID()), testCommands); err != nil {
		t.Fatal(err)
	}

	type event struct {
		typ gateway.EventType
		seq int
		ev  gateway.EventData
		raw []byte
	}
	events := make(chan event, 256)
	gw := gateway.New(emu.Token(), func(_ gateway.Gateway, typ gateway.EventType, seq int, ev gateway.EventData) {
		e := event{typ: typ, seq: seq, ev: ev}
		if rawEv, ok := ev.(gateway.EventRaw); ok {
			e.raw, _ = io.ReadAll(rawEv.Payload)
			e.typ = rawEv.EventType
		}
		events <- e
	}, gateway.WithURL(emu.GatewayURL()), gateway.WithCompression(gateway.CompressionNone),
		gateway.WithIntents(gateway.IntentGuilds|gateway.IntentGuildVoiceStates),
		gateway.WithEnableRawEvents(true), gateway.WithLogger(quietLogger()))
	ctx := ctxTimeout(t)
	if err := gw.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close(context.Background()) })
	next := func(want gateway.EventType) event {
		t.Helper()
		for {
			select {
			case e := <-events:
				if e.typ == want {
					return e
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", want)
			}
		}
	}
	// The raw event comes first, then the parsed one, with one sequence.
	rawReady := next(gateway.EventTypeReady)
	ready := next(gateway.EventTypeReady)
	rd, ok := ready.ev.(gateway.EventReady)
	if rawReady.raw == nil || !ok || ready.seq != rawReady.seq {
		t.Fatalf("READY events %+v then %+v", rawReady, ready)
	}
	if Snowflake(rd.Application.ID) != cfg.AppID || Snowflake(rd.User.ID) != cfg.BotUserID {
		t.Fatalf("READY application %s user %s; want %s and %s", rd.Application.ID, rd.User.ID, cfg.AppID, cfg.BotUserID)
	}

	ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", StringOption("query", "x"))
	if err != nil {
		t.Fatal(err)
	}
	raw := next(gateway.EventTypeInteractionCreate)
	parsed := next(gateway.EventTypeInteractionCreate)
	ic, ok := parsed.ev.(gateway.EventInteractionCreate)
	if raw.raw == nil || !ok || parsed.seq != raw.seq || Snowflake(ic.ID()) != ix.ID {
		t.Fatalf("INTERACTION_CREATE events %+v then %+v", raw, parsed)
	}
	// disgo leaves the channel empty: channel_id is only in the raw payload.
	if ic.Channel().MessageChannel != nil {
		t.Fatalf("disgo filled the channel from channel_id: %+v", ic.Channel())
	}
	var p struct {
		ChannelID Snowflake `json:"channel_id"`
	}
	if err := json.Unmarshal(raw.raw, &p); err != nil || p.ChannelID != w.text {
		t.Fatalf("raw channel_id %s, %v; want %s", p.ChannelID, err, w.text)
	}
}
