package discordemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type ixData struct {
	ID            Snowflake `json:"id"`
	ApplicationID Snowflake `json:"application_id"`
	Type          int       `json:"type"`
	Token         string    `json:"token"`
	Version       int       `json:"version"`
	GuildID       Snowflake `json:"guild_id"`
	ChannelID     Snowflake `json:"channel_id"`
	Channel       struct {
		ID          Snowflake `json:"id"`
		Permissions string    `json:"permissions"`
	} `json:"channel"`
	Member struct {
		User        struct{ ID Snowflake } `json:"user"`
		Permissions string                 `json:"permissions"`
	} `json:"member"`
	AppPermissions string            `json:"app_permissions"`
	Locale         string            `json:"locale"`
	GuildLocale    string            `json:"guild_locale"`
	Entitlements   []any             `json:"entitlements"`
	Owners         map[string]string `json:"authorizing_integration_owners"`
	Context        *int              `json:"context"`
	Data           struct {
		ID            Snowflake `json:"id"`
		Name          string    `json:"name"`
		Type          int       `json:"type"`
		CustomID      string    `json:"custom_id"`
		ComponentType int       `json:"component_type"`
		Options       []struct {
			Name    string `json:"name"`
			Type    int    `json:"type"`
			Value   any    `json:"value"`
			Focused bool   `json:"focused"`
		} `json:"options"`
	} `json:"data"`
	Message *struct {
		ID Snowflake `json:"id"`
	} `json:"message"`
}

// botSide is a plain-websocket "bot": one shard, commands registered, world loaded.
func botSide(t *testing.T, cfg Config) (*Emulator, *wsClient, testWorld) {
	emu := startEmu(t, cfg)
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	registerCommands(t, emu, `[{"name":"play","description":"Play","options":[{"type":3,"name":"query","description":"q","required":true,"autocomplete":true},{"type":5,"name":"next","description":"n"}]},{"name":"queue","description":"Queue"}]`)
	c := dial(t, emu, CompressionZstd)
	c.identify(emu.Token(), 0, 1, allTestIntents)
	c.expectDispatch("GUILD_CREATE")
	return emu, c, w
}

func (c *wsClient) expectInteraction() ixData {
	c.t.Helper()
	m := c.expectDispatch("INTERACTION_CREATE")
	var d ixData
	if err := json.Unmarshal(m.D, &d); err != nil {
		c.t.Fatal(err)
	}
	return d
}

func callbackPath(d ixData) string {
	return fmt.Sprintf("/interactions/%s/%s/callback", d.ID, d.Token)
}

func TestInteractionPayloadAndReply(t *testing.T) {
	emu, c, w := botSide(t, Config{})
	ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", StringOption("query", "never gonna"), BoolOption("next", true))
	if err != nil {
		t.Fatal(err)
	}
	d := c.expectInteraction()
	if d.ID != ix.ID || d.Type != 2 || d.ApplicationID != emu.AppID() || d.Version != 1 || d.GuildID != w.guild ||
		d.ChannelID != w.text || d.Channel.ID != w.text || d.Member.User.ID != w.alice || d.Locale == "" || d.GuildLocale == "" ||
		d.Entitlements == nil || d.Owners["0"] != w.guild.String() || d.Context == nil || d.AppPermissions == "" {
		t.Fatalf("INTERACTION_CREATE = %+v", d)
	}
	if d.Data.Name != "play" || d.Data.Type != 1 || d.Data.ID != emu.Commands(0)[0].ID || len(d.Data.Options) != 2 || d.Data.Options[0].Value != "never gonna" {
		t.Fatalf("data = %+v", d.Data)
	}
	// alice has the DJ role (Manage Guild) on top of @everyone.
	if d.Member.Permissions == "" || d.Member.Permissions == fmt.Sprint(DefaultEveryonePermissions) {
		t.Fatalf("member permissions %q ignore roles", d.Member.Permissions)
	}
	st, b := post(t, emu, callbackPath(d)+"?with_response=true", "", `{"type":4,"data":{"content":"Queued","flags":64,"components":[{"type":1,"components":[{"type":2,"style":1,"custom_id":"np:skip","label":"Skip"}]}]}}`)
	if st != 200 || !strings.Contains(string(b), `"response_message_ephemeral":true`) || !strings.Contains(string(b), `"content":"Queued"`) {
		t.Fatalf("callback: %d %s", st, b)
	}
	r, err := ix.Wait(ctxTimeout(t))
	if err != nil || r.Type != ResponseMessage || r.Content != "Queued" || !r.Ephemeral() || len(r.Components) != 1 || r.Latency <= 0 {
		t.Fatalf("response %+v %v", r, err)
	}
	if len(emu.Messages(w.text)) != 0 {
		t.Fatal("an ephemeral reply is visible in the channel")
	}
	orig, ok := ix.Original()
	if !ok || orig.InteractionID != ix.ID || !orig.Ephemeral() {
		t.Fatalf("original %+v", orig)
	}

	// A button on the (ephemeral) reply can be pressed; the press carries the message.
	press, err := emu.PressButton(w.guild, w.bob, orig.ID, "np:skip")
	if err != nil {
		t.Fatal(err)
	}
	pd := c.expectInteraction()
	if pd.Type != 3 || pd.Data.CustomID != "np:skip" || pd.Data.ComponentType != 2 || pd.Message == nil || pd.Message.ID != orig.ID {
		t.Fatalf("component interaction %+v", pd)
	}
	if st, b := post(t, emu, callbackPath(pd), "", `{"type":7,"data":{"content":"Skipped"}}`); st != 204 {
		t.Fatalf("update: %d %s", st, b)
	}
	if r, _ := press.Wait(ctxTimeout(t)); r.Type != ResponseUpdateMessage {
		t.Fatalf("press response %+v", r)
	}
	if m, _ := emu.Message(orig.ID); m.Content != "Skipped" || len(m.CustomIDs()) != 1 {
		t.Fatalf("updated message %+v", m)
	}
	if _, err := emu.PressButton(w.guild, w.bob, orig.ID, "np:nope"); !errors.Is(err, ErrNoComponent) {
		t.Fatalf("pressing a missing button: %v", err)
	}
}

func TestInteractionInvokeRefusals(t *testing.T) {
	emu, _, w := botSide(t, Config{})
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"unregistered", ErrNoCommand, func() error { _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "nope"); return err }},
		{"unknown guild", ErrNoGuild, func() error { _, err := emu.InvokeCommand(1<<40, w.alice, w.text, "queue"); return err }},
		{"not a member", ErrNoMember, func() error { _, err := emu.InvokeCommand(w.guild, 77, w.text, "queue"); return err }},
		{"unknown channel", ErrNoChannel, func() error { _, err := emu.InvokeCommand(w.guild, w.alice, 77, "queue"); return err }},
	}
	for _, tc := range cases {
		if err := tc.run(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play"); err == nil {
		t.Error("missing required option accepted")
	}
	if _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", IntOption("query", 3)); err == nil {
		t.Error("wrong option type accepted")
	}
	other := startEmu(t, Config{})
	ow := addWorld(t, other, SnowflakeForShard(0, 1))
	registerCommands(t, other, `[{"name":"queue","description":"Queue"}]`)
	if _, err := other.InvokeCommand(ow.guild, ow.alice, ow.text, "queue"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("invoke with no bot connected: %v", err)
	}
}

func TestInteractionLateResponse10062(t *testing.T) {
	emu, c, w := botSide(t, Config{InteractionDeadline: 300 * time.Millisecond})
	if _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "queue"); err != nil {
		t.Fatal(err)
	}
	d := c.expectInteraction()
	time.Sleep(400 * time.Millisecond)
	st, b := post(t, emu, callbackPath(d), "", `{"type":4,"data":{"content":"late"}}`)
	if st != 404 || errCode(t, b) != 10062 || !strings.Contains(string(b), "Unknown interaction") {
		t.Fatalf("late callback: %d %s", st, b)
	}
	if len(emu.ErrorsOfKind(ErrLateInteraction)) != 1 {
		t.Fatalf("errors: %v", emu.Errors())
	}
	if st, b := post(t, emu, fmt.Sprintf("/interactions/%s/%s/callback", d.ID, "wrongtoken"), "", `{"type":4,"data":{"content":"x"}}`); st != 404 || errCode(t, b) != 10062 {
		t.Fatalf("wrong token: %d %s", st, b)
	}
}

func TestInteractionDoubleResponse40060(t *testing.T) {
	emu, c, w := botSide(t, Config{})
	if _, err := emu.InvokeCommand(w.guild, w.alice, w.text, "queue"); err != nil {
		t.Fatal(err)
	}
	d := c.expectInteraction()
	if st, _ := post(t, emu, callbackPath(d), "", `{"type":5}`); st != 204 {
		t.Fatalf("defer: %d", st)
	}
	st, b := post(t, emu, callbackPath(d), "", `{"type":4,"data":{"content":"again"}}`)
	if st != 400 || errCode(t, b) != 40060 {
		t.Fatalf("second callback: %d %s", st, b)
	}
	if len(emu.ErrorsOfKind(ErrDoubleAck)) != 1 {
		t.Fatalf("errors: %v", emu.Errors())
	}
}

func TestInteractionCallbackTypeRules(t *testing.T) {
	emu, c, w := botSide(t, Config{})
	cases := []struct {
		name   string
		invoke func() (*Interaction, error)
		body   string
		status int
		code   int
	}{
		{"command with update", func() (*Interaction, error) { return emu.InvokeCommand(w.guild, w.alice, w.text, "queue") }, `{"type":7,"data":{"content":"x"}}`, 400, 50035},
		{"command with choices", func() (*Interaction, error) { return emu.InvokeCommand(w.guild, w.alice, w.text, "queue") }, `{"type":8,"data":{"choices":[]}}`, 400, 50035},
		{"empty message", func() (*Interaction, error) { return emu.InvokeCommand(w.guild, w.alice, w.text, "queue") }, `{"type":4,"data":{"content":""}}`, 400, 50006},
		{"autocomplete with message", func() (*Interaction, error) {
			return emu.Autocomplete(w.guild, w.alice, w.text, "play", FocusedOption("query", "nev"))
		}, `{"type":4,"data":{"content":"x"}}`, 400, 50035},
		{"autocomplete with 26 choices", func() (*Interaction, error) {
			return emu.Autocomplete(w.guild, w.alice, w.text, "play", FocusedOption("query", "nev"))
		}, `{"type":8,"data":{"choices":[` + strings.TrimSuffix(strings.Repeat(`{"name":"a","value":"a"},`, 26), ",") + `]}}`, 400, 50035},
		{"autocomplete result", func() (*Interaction, error) {
			return emu.Autocomplete(w.guild, w.alice, w.text, "play", FocusedOption("query", "nev"))
		}, `{"type":8,"data":{"choices":[{"name":"Never Gonna Give You Up","value":"yt:dQw4"}]}}`, 204, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := tc.invoke()
			if err != nil {
				t.Fatal(err)
			}
			d := c.expectInteraction()
			st, b := post(t, emu, callbackPath(d), "", tc.body)
			if st != tc.status || (tc.code != 0 && errCode(t, b) != tc.code) {
				t.Fatalf("%d %s", st, b)
			}
			if st == 204 && ix.Type == InteractionAutocomplete {
				if d.Data.Options[0].Focused != true {
					t.Fatal("focused flag missing")
				}
				r, _ := ix.Wait(ctxTimeout(t))
				if len(r.Choices) != 1 || r.Choices[0].Value != "yt:dQw4" {
					t.Fatalf("choices %+v", r.Choices)
				}
			}
		})
	}
}

func TestInteractionDeferEditFollowupAndTokenExpiry(t *testing.T) {
	emu, c, w := botSide(t, Config{TokenLifetime: 500 * time.Millisecond})
	app := emu.AppID().String()
	ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", StringOption("query", "x"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.expectInteraction()
	hook := "/webhooks/" + app + "/" + d.Token

	if st, b := post(t, emu, hook, "", `{"content":"too early"}`); st != 404 || errCode(t, b) != 10015 {
		t.Fatalf("follow-up before ack: %d %s", st, b)
	}
	if st, b, _ := do(t, emu, "PATCH", hook+"/messages/@original", "", `{"content":"too early"}`); st != 404 || errCode(t, b) != 10008 {
		t.Fatalf("edit before ack: %d %s", st, b)
	}
	if st, _ := post(t, emu, callbackPath(d), "", `{"type":5}`); st != 204 {
		t.Fatal("defer failed")
	}
	if r, _ := ix.Wait(ctxTimeout(t)); r.Type != ResponseDeferredMessage {
		t.Fatalf("response %+v", r)
	}
	orig, _ := ix.Original()
	if orig.Flags&FlagLoading == 0 {
		t.Fatal("deferred message is not loading")
	}
	st, b, _ := do(t, emu, "PATCH", hook+"/messages/@original", "", `{"content":"Now playing","embeds":[{"title":"Song"}]}`)
	if st != 200 || !strings.Contains(string(b), `"title":"Song"`) {
		t.Fatalf("edit original: %d %s", st, b)
	}
	edit, err := ix.WaitEdit(ctxTimeout(t))
	if err != nil || edit.Content != "Now playing" || edit.Embeds[0].Title != "Song" || edit.Flags&FlagLoading != 0 {
		t.Fatalf("edit %+v %v", edit, err)
	}
	if st, b, _ := do(t, emu, "GET", hook+"/messages/@original", "", ""); st != 200 || !strings.Contains(string(b), "Now playing") {
		t.Fatalf("get original: %d %s", st, b)
	}
	st, b = post(t, emu, hook, "", `{"content":"Added 3 tracks","flags":64}`)
	if st != 200 {
		t.Fatalf("follow-up: %d %s", st, b)
	}
	fs, err := ix.WaitFollowups(ctxTimeout(t), 1)
	if err != nil || fs[0].Content != "Added 3 tracks" || !fs[0].Ephemeral() || fs[0].ID == orig.ID {
		t.Fatalf("follow-ups %+v %v", fs, err)
	}
	if st, _, _ := do(t, emu, "PATCH", hook+"/messages/"+fs[0].ID.String(), "", `{"content":"Added 4 tracks"}`); st != 200 {
		t.Fatalf("edit follow-up: %d", st)
	}
	if st, _, _ := do(t, emu, "PATCH", "/webhooks/"+app+"/"+d.Token+"/messages/12345", "", `{"content":"x"}`); st != 404 {
		t.Fatalf("edit of a foreign message: %d", st)
	}
	if st, b, _ := do(t, emu, "PATCH", "/webhooks/"+app+"/bogus/messages/@original", "", `{"content":"x"}`); st != 401 || errCode(t, b) != 50027 {
		t.Fatalf("unknown token: %d %s", st, b)
	}

	time.Sleep(600 * time.Millisecond) // past the (shortened) 15-minute token lifetime
	if st, b, _ := do(t, emu, "PATCH", hook+"/messages/@original", "", `{"content":"late edit"}`); st != 401 || errCode(t, b) != 50027 {
		t.Fatalf("edit after token expiry: %d %s", st, b)
	}
	if st, b := post(t, emu, hook, "", `{"content":"late"}`); st != 401 || errCode(t, b) != 50027 {
		t.Fatalf("follow-up after token expiry: %d %s", st, b)
	}
	if len(emu.ErrorsOfKind(ErrExpiredInteractionToken)) != 2 {
		t.Fatalf("errors %v", emu.Errors())
	}
}

func TestInteractionDeferredFirstFollowupReplacesThinking(t *testing.T) {
	emu, c, w := botSide(t, Config{})
	ix, _ := emu.InvokeCommand(w.guild, w.alice, w.text, "queue")
	d := c.expectInteraction()
	post(t, emu, callbackPath(d), "", `{"type":5}`)
	st, b := post(t, emu, "/webhooks/"+emu.AppID().String()+"/"+d.Token, "", `{"content":"Queue is empty"}`)
	orig, _ := ix.Original()
	if st != 200 || !strings.Contains(string(b), orig.ID.String()) || orig.Content != "Queue is empty" || orig.Flags&FlagLoading != 0 {
		t.Fatalf("first follow-up after defer: %d %s, original %+v", st, b, orig)
	}
	if n := len(emu.Messages(w.text)); n != 1 {
		t.Fatalf("%d messages in the channel, want the one original", n)
	}
}

func TestInteractionSelectMenu(t *testing.T) {
	emu, c, w := botSide(t, Config{})
	st, b := post(t, emu, "/channels/"+w.text.String()+"/messages", "bot",
		`{"content":"pick","components":[{"type":1,"components":[{"type":3,"custom_id":"loop","options":[{"label":"Off","value":"off"},{"label":"Track","value":"track"}]}]},{"type":1,"components":[{"type":2,"style":1,"custom_id":"go","label":"Go"}]}]}`)
	if st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	msg := emu.Messages(w.text)[0]
	if _, err := emu.PressButton(w.guild, w.bob, msg.ID, "loop"); !errors.Is(err, ErrNoComponent) {
		t.Fatalf("pressing a select menu like a button: %v", err)
	}
	if _, err := emu.SelectMenu(w.guild, w.bob, msg.ID, "go", "x"); !errors.Is(err, ErrNoComponent) {
		t.Fatalf("selecting on a button: %v", err)
	}
	if _, err := emu.SelectMenu(w.guild, w.bob, msg.ID, "loop", "track"); err != nil {
		t.Fatal(err)
	}
	m := c.expectDispatch("INTERACTION_CREATE")
	if !strings.Contains(string(m.D), `"values":["track"]`) || !strings.Contains(string(m.D), `"component_type":3`) {
		t.Fatalf("select interaction %s", m.D)
	}
}
