package commands

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/discordrest"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// harness connects to the Discord emulator as the bot: interactions arrive
// over the gateway and are decoded by disgo exactly as the shard actor will
// see them, and the adapter answers through disgo's real REST client.
type harness struct {
	emu          *discordemu.Emulator
	d            *Discord
	app          string
	ix           chan discord.Interaction
	guild, text  discordemu.Snowflake
	alice, bob   discordemu.Snowflake
	dj           discordemu.Snowflake
	otherChannel discordemu.Snowflake
}

func newHarness(t *testing.T, cfg discordemu.Config) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	emu, err := discordemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	h := &harness{emu: emu, ix: make(chan discord.Interaction, 64), guild: discordemu.SnowflakeForShard(0, 1),
		text: discordemu.NewSnowflake(), otherChannel: discordemu.NewSnowflake(), dj: discordemu.NewSnowflake(),
		alice: discordemu.NewSnowflake(), bob: discordemu.NewSnowflake()}
	err = emu.AddGuild(discordemu.Guild{ID: h.guild, Name: "test",
		Channels: []discordemu.Channel{{ID: h.text, Name: "general", Type: discordemu.ChannelText},
			{ID: h.otherChannel, Name: "music", Type: discordemu.ChannelText},
			{ID: discordemu.NewSnowflake(), Name: "Music", Type: discordemu.ChannelVoice}},
		Roles: []discordemu.Role{{ID: h.dj, Name: "DJ", Permissions: discordemu.PermManageGuild}},
		Members: []discordemu.Member{
			{User: discordemu.User{ID: h.alice, Username: "alice"}, Nick: "Alice the DJ", Roles: []discordemu.Snowflake{h.dj}},
			{User: discordemu.User{ID: h.bob, Username: "bob"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	conn := dialGateway(t, ctx, emu, h.ix)
	t.Cleanup(func() { _ = conn.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, _, err := discordrest.New(emu.Token(), quiet, prometheus.NewRegistry(), rest.WithURL(emu.RESTURL()), rest.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	h.d = NewDiscord(r)
	h.app = emu.AppID().String()
	if err := h.d.RegisterCommands(ctx, h.app, ""); err != nil {
		t.Fatal(err)
	}
	return h
}

// next converts the next interaction the bot receives.
func (h *harness) next(t *testing.T) *clusterpb.Interaction {
	t.Helper()
	select {
	case i := <-h.ix:
		got, err := FromInteraction(i, 0, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no interaction arrived")
		return nil
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDiscordAgainstEmulator(t *testing.T) {
	h := newHarness(t, discordemu.Config{InteractionDeadline: 1500 * time.Millisecond})
	ctx := ctxFor(t)

	t.Run("registered commands are Specs", func(t *testing.T) {
		cmds := h.emu.Commands(0)
		if len(cmds) != len(Specs()) {
			t.Fatalf("%d commands registered, want %d", len(cmds), len(Specs()))
		}
		if err := h.d.RegisterCommands(ctx, h.app, h.guild.String()); err != nil {
			t.Fatal(err)
		}
		if got := len(h.emu.Commands(h.guild)); got != len(Specs()) {
			t.Fatalf("%d guild commands", got)
		}
		if err := h.d.RegisterCommands(ctx, h.app, "guild"); err == nil {
			t.Fatal("a malformed guild ID was sent")
		}
	})

	t.Run("command, respond, double respond", func(t *testing.T) {
		ix, err := h.emu.InvokeCommand(h.guild, h.alice, h.text, "play",
			discordemu.StringOption("query", "never gonna"), discordemu.BoolOption("next", true))
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		if in.Kind != clusterpb.InteractionKind_INTERACTION_KIND_COMMAND || in.Name != "play" || in.GuildId != h.guild.String() ||
			in.ChannelId != h.text.String() || in.ApplicationId != h.app || in.Invoker.UserId != h.alice.String() ||
			in.Invoker.DisplayName != "Alice the DJ" || len(in.Invoker.RoleIds) != 1 || in.Invoker.RoleIds[0] != h.dj.String() ||
			in.Invoker.Permissions&music.PermissionManageGuild == 0 {
			t.Fatalf("converted %+v", in)
		}
		args, err := ParsePlay(in.Options)
		if err != nil || args.Query.Identifier != "ytsearch:never gonna" || !args.Next {
			t.Fatalf("ParsePlay = %+v, %v", args, err)
		}
		tr := track("@everyone Never Gonna Give You Up")
		if err := h.d.Respond(ctx, in.Id, in.Token, Added(tr, 2)); err != nil {
			t.Fatal(err)
		}
		r, err := ix.Wait(ctx)
		if err != nil || r.Type != discordemu.ResponseMessage || r.Ephemeral() || len(r.Embeds) != 1 || r.Embeds[0].Title != "Added at position 2" {
			t.Fatalf("response %+v, %v", r, err)
		}
		var raw struct {
			AllowedMentions *discord.AllowedMentions `json:"allowed_mentions"`
		}
		if err := json.Unmarshal(r.Raw, &raw); err != nil || raw.AllowedMentions == nil || raw.AllowedMentions.Parse == nil || len(raw.AllowedMentions.Parse) != 0 {
			t.Fatalf("allowed_mentions on the wire: %s", r.Raw)
		}
		err = h.d.Respond(ctx, in.Id, in.Token, Info("again"))
		if !errors.Is(err, ErrAlreadyAcknowledged) || !rest.IsJSONErrorCode(err, rest.JSONErrorCodeInteractionAlreadyAcknowledged) {
			t.Fatalf("second response: %v", err)
		}
		if strings.Contains(err.Error(), in.Token) {
			t.Fatalf("the error quotes the interaction token: %v", err)
		}
	})

	t.Run("defer, edit original, follow-up", func(t *testing.T) {
		ix, err := h.emu.InvokeCommand(h.guild, h.bob, h.text, "queue", discordemu.IntOption("page", 2))
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		if page, err := ParseQueuePage(in.Options); err != nil || page != 2 {
			t.Fatalf("page %d, %v", page, err)
		}
		if err := h.d.Defer(ctx, in.Id, in.Token, true); err != nil {
			t.Fatal(err)
		}
		if r, err := ix.Wait(ctx); err != nil || r.Type != discordemu.ResponseDeferredMessage || !r.Ephemeral() {
			t.Fatalf("deferred %+v, %v", r, err)
		}
		q, _ := music.RestoreQueue(10, []music.Track{track("One")})
		page, _ := q.Page(1, 10)
		if err := h.d.EditOriginal(ctx, in.ApplicationId, in.Token, QueuePage(page, nil)); err != nil {
			t.Fatal(err)
		}
		m, err := ix.WaitEdit(ctx)
		if err != nil || len(m.Embeds) != 1 || m.Embeds[0].Title != "Queue" || !m.Ephemeral() {
			t.Fatalf("edit %+v, %v", m, err)
		}
		if a, err := ix.WaitAnswer(ctx); err != nil || len(a.Embeds) != 1 || a.Embeds[0].Title != "Queue" {
			t.Fatalf("answer %+v, %v, want the edit", a, err)
		}
		if err := h.d.Followup(ctx, in.ApplicationId, in.Token, Error("and one more thing")); err != nil {
			t.Fatal(err)
		}
		fs, err := ix.WaitFollowups(ctx, 1)
		if err != nil || len(fs) != 1 || !strings.Contains(fs[0].Content, "and one more thing") || !fs[0].Ephemeral() {
			t.Fatalf("follow-ups %+v, %v", fs, err)
		}
	})

	t.Run("public deferral replaced by a private follow-up", func(t *testing.T) {
		ix, err := h.emu.InvokeCommand(h.guild, h.bob, h.text, "play", discordemu.StringOption("query", "nothing"))
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		if err := h.d.Defer(ctx, in.Id, in.Token, false); err != nil {
			t.Fatal(err)
		}
		if err := h.d.DeleteOriginal(ctx, in.ApplicationId, in.Token); err != nil {
			t.Fatal(err)
		}
		if err := h.d.Followup(ctx, in.ApplicationId, in.Token, Error("nothing found")); err != nil {
			t.Fatal(err)
		}
		m, err := ix.WaitAnswer(ctx)
		if err != nil || !strings.Contains(m.Content, "nothing found") || !m.Ephemeral() {
			t.Fatalf("answer %+v, %v", m, err)
		}
		if orig, ok := ix.Original(); !ok || !orig.Deleted {
			t.Fatalf("original %+v (present %v), want deleted", orig, ok)
		}
	})

	t.Run("late response is ErrUnknownInteraction", func(t *testing.T) {
		if _, err := h.emu.InvokeCommand(h.guild, h.bob, h.text, "nowplaying"); err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		time.Sleep(h.emu.Config().InteractionDeadline + 200*time.Millisecond)
		err := h.d.Respond(ctx, in.Id, in.Token, Info("too late"))
		if !errors.Is(err, ErrUnknownInteraction) {
			t.Fatalf("late response: %v", err)
		}
		var re *rest.Error
		if !errors.As(err, &re) || re.Code != rest.JSONErrorCodeUnknownInteraction {
			t.Fatalf("the disgo error is not wrapped: %v", err)
		}
	})

	t.Run("autocomplete", func(t *testing.T) {
		ix, err := h.emu.Autocomplete(h.guild, h.bob, h.text, "play", discordemu.FocusedOption("query", "never"))
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		if in.Kind != clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE || len(in.Options) != 1 || !in.Options[0].Focused || in.Options[0].Value != "never" {
			t.Fatalf("converted %+v", in)
		}
		var choices []*clusterpb.Choice
		choices = append(choices, &clusterpb.Choice{Name: strings.Repeat("n", 150), Value: "https://youtu.be/a"},
			&clusterpb.Choice{Name: "too long a value", Value: strings.Repeat("v", 101)}, nil,
			&clusterpb.Choice{Name: "", Value: "ytsearch:never"})
		for range 30 {
			choices = append(choices, &clusterpb.Choice{Name: "more", Value: "ytsearch:more"})
		}
		if err := h.d.Autocomplete(ctx, in.Id, in.Token, choices); err != nil {
			t.Fatal(err)
		}
		r, err := ix.Wait(ctx)
		if err != nil || r.Type != discordemu.ResponseAutocompleteResult || len(r.Choices) != 25 {
			t.Fatalf("autocomplete %+v, %v", r, err)
		}
		if n := len([]rune(r.Choices[0].Name)); n != 100 || r.Choices[0].Value != "https://youtu.be/a" {
			t.Fatalf("first choice %d characters, value %v", n, r.Choices[0].Value)
		}
		if r.Choices[1].Name != "ytsearch:never" {
			t.Fatalf("second choice %+v: the long value should be left out and an empty name replaced", r.Choices[1])
		}
	})

	t.Run("refuse", func(t *testing.T) {
		cmd, err := h.emu.InvokeCommand(h.guild, h.bob, h.text, "pause")
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		if err := h.d.Refuse(ctx, in.Id, in.Token, in.Kind, RefuseUnknownCommand.Text()); err != nil {
			t.Fatal(err)
		}
		r, err := cmd.Wait(ctx)
		if err != nil || r.Type != discordemu.ResponseMessage || !r.Ephemeral() || !strings.Contains(r.Content, "isn't available here") {
			t.Fatalf("refused command: %+v, %v", r, err)
		}
		ac, err := h.emu.Autocomplete(h.guild, h.bob, h.text, "play", discordemu.FocusedOption("query", "x"))
		if err != nil {
			t.Fatal(err)
		}
		in = h.next(t)
		if err := h.d.Refuse(ctx, in.Id, in.Token, in.Kind, "never shown"); err != nil {
			t.Fatal(err)
		}
		r, err = ac.Wait(ctx)
		// An empty list ("choices":[]), not a missing one: Discord refuses
		// a result without choices.
		if err != nil || r.Type != discordemu.ResponseAutocompleteResult || r.Choices == nil || len(r.Choices) != 0 {
			t.Fatalf("refused autocomplete: %+v, %v", r, err)
		}
	})

	t.Run("now-playing message and its buttons", func(t *testing.T) {
		view := nowPlayingView()
		view.Guild = h.guild.String()
		msgID, err := h.d.CreateMessage(ctx, h.otherChannel.String(), NowPlaying(view))
		if err != nil {
			t.Fatal(err)
		}
		id, err := discordemu.ParseSnowflake(msgID)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := h.emu.Message(id)
		if !ok || len(m.CustomIDs()) != len(buttonCommands) || m.Ephemeral() {
			t.Fatalf("message %+v", m)
		}
		ix, err := h.emu.PressButton(h.guild, h.bob, id, CustomID(ButtonSkip, h.guild.String()))
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		action, err := ParseCustomID(in.Name, in.GuildId)
		if err != nil || action != ButtonSkip || in.MessageId != msgID || in.Kind != clusterpb.InteractionKind_INTERACTION_KIND_BUTTON {
			t.Fatalf("press %+v: %q, %v", in, action, err)
		}
		if err := h.d.Respond(ctx, in.Id, in.Token, Info("Skipped.")); err != nil {
			t.Fatal(err)
		}
		if _, err := ix.Wait(ctx); err != nil {
			t.Fatal(err)
		}

		view.Paused = true
		if err := h.d.EditMessage(ctx, h.otherChannel.String(), msgID, NowPlaying(view)); err != nil {
			t.Fatal(err)
		}
		m, _ = h.emu.Message(id)
		if m.EditedTimestamp.IsZero() || !strings.Contains(string(m.Components[0]), "Resume") {
			t.Fatalf("edited message %+v", m)
		}

		err = h.d.EditMessage(ctx, h.otherChannel.String(), discordemu.NewSnowflake().String(), NowPlaying(view))
		if !errors.Is(err, ErrUnknownMessage) {
			t.Fatalf("editing a missing message: %v", err)
		}
	})

	t.Run("answers whose reply was a 5xx are not sent twice", func(t *testing.T) {
		ix, err := h.emu.InvokeCommand(h.guild, h.bob, h.text, "nowplaying")
		if err != nil {
			t.Fatal(err)
		}
		in := h.next(t)
		// Discord took the callback and its front end lost the answer.
		h.emu.FailNext(discordemu.ServerError{Method: "POST", Path: "/interactions/{id}/{token}/callback", AfterHandling: true})
		if err := h.d.Respond(ctx, in.Id, in.Token, Info("Nothing is playing.")); err != nil {
			t.Fatalf("a callback whose answer was a 502: %v", err)
		}
		if r, err := ix.Wait(ctx); err != nil || r.Content != "Nothing is playing." {
			t.Fatalf("response %+v, %v", r, err)
		}
		calls := h.emu.Recorder().RequestsMatching("POST", "/interactions/"+in.Id+"/*/callback")
		if len(calls) != 2 || calls[0].Status != 502 || calls[1].Status != 400 {
			t.Fatalf("callbacks: %d, want the 502 and the retry refused as already acknowledged", len(calls))
		}

		before := len(h.emu.Messages(h.otherChannel))
		h.emu.FailNext(discordemu.ServerError{Method: "POST", Path: "/channels/{c}/messages", AfterHandling: true})
		view := nowPlayingView()
		view.Guild = h.guild.String()
		msgID, err := h.d.CreateMessage(ctx, h.otherChannel.String(), NowPlaying(view))
		if err != nil {
			t.Fatalf("a now-playing post whose answer was a 502: %v", err)
		}
		ms := h.emu.Messages(h.otherChannel)
		if len(ms) != before+1 || ms[len(ms)-1].ID.String() != msgID {
			t.Fatalf("%d new messages, want the one posted", len(ms)-before)
		}
	})

	t.Run("malformed IDs never reach Discord", func(t *testing.T) {
		before := len(h.emu.Recorder().Requests())
		for _, err := range []error{
			h.d.Respond(ctx, "x", "tok", Info("x")),
			h.d.Defer(ctx, "", "tok", false),
			h.d.EditOriginal(ctx, "-1", "tok", Info("x")),
			h.d.Followup(ctx, "0", "tok", Info("x")),
			h.d.EditMessage(ctx, h.text.String(), "abc", Info("x")),
		} {
			if err == nil {
				t.Error("accepted a malformed ID")
			}
		}
		if _, err := h.d.CreateMessage(ctx, "general", Info("x")); err == nil {
			t.Error("accepted a channel name")
		}
		if after := len(h.emu.Recorder().Requests()); after != before {
			t.Fatalf("%d requests sent", after-before)
		}
	})

	t.Run("context is passed to disgo", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := h.d.CreateMessage(cancelled, h.text.String(), Info("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: %v", err)
		}
	})

	// The late and the double response above are deliberate, and so is
	// the retried callback after the lost answer (Discord refuses it as
	// the second); any other protocol error is the adapter's.
	if errs := h.emu.Errors(); len(errs) != 3 || len(h.emu.ErrorsOfKind(discordemu.ErrLateInteraction)) != 1 ||
		len(h.emu.ErrorsOfKind(discordemu.ErrDoubleAck)) != 2 {
		t.Fatalf("protocol errors: %v", errs)
	}
}

// dialGateway is the least of a gateway client: identify, wait for READY and
// decode every INTERACTION_CREATE with disgo. disgo's own gateway is not used
// because -race reports data races inside it on every connection
// (heartbeatCancel; the Makefile lists them), and the gateway is not what is under test.
func dialGateway(t *testing.T, ctx context.Context, emu *discordemu.Emulator, out chan<- discord.Interaction) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, emu.GatewayURL()+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	type frame struct {
		Op int             `json:"op"`
		T  string          `json:"t"`
		D  json.RawMessage `json:"d"`
	}
	var hello frame
	if err := conn.ReadJSON(&hello); err != nil || hello.Op != 10 {
		t.Fatalf("HELLO: %+v, %v", hello, err)
	}
	identify := map[string]any{"op": 2, "d": map[string]any{"token": emu.Token(), "intents": int(gateway.IntentGuilds | gateway.IntentGuildVoiceStates),
		"shard": []int{0, 1}, "properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}}}
	if err := conn.WriteJSON(identify); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		for {
			var f frame
			if err := conn.ReadJSON(&f); err != nil {
				return
			}
			switch f.T {
			case "READY":
				close(ready)
			case "INTERACTION_CREATE":
				i, err := discord.UnmarshalInteraction(f.D)
				if err != nil {
					t.Errorf("disgo cannot decode the interaction: %v", err)
					continue
				}
				out <- i
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("no READY")
	}
	return conn
}

// Transport errors quote the request URL, which holds the interaction token;
// the adapter's errors must not.
func TestErrorsDoNotQuoteTheToken(t *testing.T) {
	const token = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2Vu"
	d := NewDiscord(rest.New(rest.NewClient("", rest.WithURL("http://127.0.0.1:1/api/v10"),
		rest.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))))
	ctx := ctxFor(t)
	for name, err := range map[string]error{
		"respond":  d.Respond(ctx, "1180000000000000001", token, Info("x")),
		"defer":    d.Defer(ctx, "1180000000000000001", token, true),
		"edit":     d.EditOriginal(ctx, "1180000000000000002", token, Info("x")),
		"followup": d.Followup(ctx, "1180000000000000002", token, Info("x")),
		"autocomplete": d.Autocomplete(ctx, "1180000000000000001", token,
			[]*clusterpb.Choice{{Name: "a", Value: "b"}}),
	} {
		if err == nil {
			t.Fatalf("%s: no error from a closed port", name)
		}
		if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "<token>") {
			t.Errorf("%s: %v", name, err)
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("%s: the transport error is not wrapped: %v", name, err)
		}
	}
}
