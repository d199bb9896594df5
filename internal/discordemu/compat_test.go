package discordemu

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// Options that reproduce a third-party Discord-compatible server (Spacebar):
// tokens of no documented shape, interactions without the channel object,
// commands a client invokes from an outdated list.

func TestOpaqueTokenAndDistinctIDs(t *testing.T) {
	app, user := NewSnowflake(), NewSnowflake()
	for _, tc := range []struct {
		name   string
		cfg    Config
		shaped bool // base64(appID).x.y, as Discord issues
	}{
		{"discord", Config{AppID: app, BotUserID: user}, true},
		{"opaque", Config{AppID: app, BotUserID: user, OpaqueToken: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu := startEmu(t, tc.cfg)
			token := emu.Token()
			first, _, _ := strings.Cut(token, ".")
			decoded, err := base64.RawStdEncoding.DecodeString(first)
			if shaped := err == nil && string(decoded) == app.String() && strings.Count(token, ".") == 2; shaped != tc.shaped {
				t.Fatalf("token %q: Discord-shaped %v, want %v", token, shaped, tc.shaped)
			}
			if strings.Contains(token, app.String()) || strings.Contains(token, user.String()) {
				t.Fatalf("token %q shows an ID in clear", token)
			}

			// The token authenticates REST and the gateway; READY carries
			// both IDs, which differ.
			if st, b, _ := do(t, emu, "GET", "/users/@me", "bot", ""); st != 200 || !strings.Contains(string(b), `"id":"`+user.String()+`"`) {
				t.Fatalf("GET /users/@me = %d %s", st, b)
			}
			if st, _, _ := do(t, emu, "GET", "/users/@me", "Bot "+token+"x", ""); st != 401 {
				t.Fatalf("a wrong token got %d", st)
			}
			c := dial(t, emu, CompressionNone)
			r, _ := c.identify(token, 0, 1, allTestIntents)
			if r.Application.ID != app || r.User.ID != user {
				t.Fatalf("READY application %s user %s; want %s and %s", r.Application.ID, r.User.ID, app, user)
			}
			bad := dial(t, emu, CompressionNone)
			bad.hello()
			bad.send(opIdentify, map[string]any{"token": token + "x", "intents": allTestIntents, "properties": map[string]string{}})
			bad.expectClose(CloseAuthenticationFailed)

			// Commands live under the application ID, not the user's.
			registerCommands(t, emu, `[{"name":"queue","description":"Queue"}]`)
			if st, b, _ := do(t, emu, "PUT", "/applications/"+user.String()+"/commands", "bot", `[]`); st != 403 {
				t.Fatalf("commands under the user ID: %d %s", st, b)
			}
		})
	}
}

func TestInteractionsWithoutChannelObject(t *testing.T) {
	for _, omit := range []bool{false, true} {
		t.Run(map[bool]string{false: "with channel", true: "channel_id only"}[omit], func(t *testing.T) {
			emu, c, w := botSide(t, Config{OmitInteractionChannel: omit})
			raw := func() map[string]json.RawMessage {
				t.Helper()
				m := c.expectDispatch("INTERACTION_CREATE")
				var p map[string]json.RawMessage
				if err := json.Unmarshal(m.D, &p); err != nil {
					t.Fatal(err)
				}
				if string(p["channel_id"]) != `"`+w.text.String()+`"` {
					t.Fatalf("channel_id %s; want %s", p["channel_id"], w.text)
				}
				if _, has := p["channel"]; has == omit {
					t.Fatalf("channel object present: %v; want %v", has, !omit)
				}
				return p
			}
			ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", StringOption("query", "x"))
			if err != nil {
				t.Fatal(err)
			}
			p := raw()
			var id Snowflake
			_ = json.Unmarshal(p["id"], &id)
			var token string
			_ = json.Unmarshal(p["token"], &token)
			// The answer lands in the channel named by channel_id.
			if st, b := post(t, emu, "/interactions/"+id.String()+"/"+token+"/callback", "", `{"type":4,"data":{"content":"Queued","components":[{"type":1,"components":[{"type":2,"style":1,"custom_id":"np:skip","label":"Skip"}]}]}}`); st != 204 {
				t.Fatalf("callback %d %s", st, b)
			}
			r, err := ix.Wait(ctxTimeout(t))
			if err != nil || r.Content != "Queued" {
				t.Fatalf("response %+v %v", r, err)
			}
			msgs := emu.Messages(w.text)
			if len(msgs) != 1 || msgs[0].Content != "Queued" {
				t.Fatalf("messages in the channel: %+v", msgs)
			}
			// Components and autocomplete are dispatched the same way.
			if _, err := emu.PressButton(w.guild, w.bob, msgs[0].ID, "np:skip"); err != nil {
				t.Fatal(err)
			}
			raw()
			if _, err := emu.Autocomplete(w.guild, w.bob, w.text, "play", FocusedOption("query", "ne")); err != nil {
				t.Fatal(err)
			}
			raw()
		})
	}
}

func TestInvokeUnregistered(t *testing.T) {
	emu, c, w := botSide(t, Config{})
	// Anything goes: a name and options no registration declares.
	ix, err := emu.InvokeUnregistered(w.guild, w.alice, w.text, "eval", StringOption("code", "1+1"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.expectInteraction()
	if d.ID != ix.ID || d.Type != InteractionCommand || d.Data.Name != "eval" || d.Data.ID == 0 ||
		len(d.Data.Options) != 1 || d.Data.Options[0].Value != "1+1" {
		t.Fatalf("INTERACTION_CREATE %+v", d)
	}
	for _, cmd := range emu.Commands(0) {
		if cmd.ID == d.Data.ID {
			t.Fatalf("command ID %s is a registered command's", d.Data.ID)
		}
	}
	// It is answered like any other.
	if st, b := post(t, emu, callbackPath(d), "", `{"type":4,"data":{"content":"unknown","flags":64}}`); st != 204 {
		t.Fatalf("callback %d %s", st, b)
	}
	if r, err := ix.Wait(ctxTimeout(t)); err != nil || !r.Ephemeral() {
		t.Fatalf("response %+v %v", r, err)
	}
	if _, err := emu.InvokeUnregistered(w.guild, NewSnowflake(), w.text, "eval"); err != ErrNoMember {
		t.Fatalf("stranger: %v", err)
	}
}
