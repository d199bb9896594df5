package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

const (
	testChannel = "81384788765712386"
	testUser    = "81384788765712387"
	testRole    = "81384788765712388"
	testMessage = "81384788765712389"
)

// payload is an INTERACTION_CREATE's data as Discord sends it, as a map so
// that a test case can remove or replace any part.
func payload(typ int, data map[string]any) map[string]any {
	return map[string]any{
		"id": "1180000000000000001", "application_id": "1180000000000000002", "type": typ,
		"token": "aW50ZXJhY3Rpb24", "version": 1, "guild_id": guild, "channel_id": testChannel,
		"channel": map[string]any{"id": testChannel, "type": 0, "name": "general", "guild_id": guild, "permissions": "0"},
		"member": map[string]any{
			"user": map[string]any{"id": testUser, "username": "alice", "global_name": "Alice"},
			"nick": "DJ Alice", "roles": []string{testRole}, "permissions": "1099511627807", "joined_at": "2020-01-01T00:00:00Z",
		},
		"locale": "en-US", "context": 0, "app_permissions": "0",
		"data": data,
	}
}

func command(name string, options ...map[string]any) map[string]any {
	if options == nil {
		options = []map[string]any{}
	}
	return payload(2, map[string]any{"id": "1180000000000000003", "name": name, "type": 1, "options": options})
}

func opt(name string, typ int, value any) map[string]any {
	return map[string]any{"name": name, "type": typ, "value": value}
}

func button(customID string) map[string]any {
	p := payload(3, map[string]any{"custom_id": customID, "component_type": 2})
	p["message"] = map[string]any{"id": testMessage, "channel_id": testChannel, "content": "", "type": 0,
		"author": map[string]any{"id": "1180000000000000002", "username": "Ensemble"}, "timestamp": "2020-01-01T00:00:00Z"}
	return p
}

func unmarshal(t testing.TB, p map[string]any) discord.Interaction {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	i, err := discord.UnmarshalInteraction(b)
	if err != nil {
		t.Fatalf("disgo refused the payload: %v", err)
	}
	return i
}

func TestFromInteractionCommand(t *testing.T) {
	received := time.Unix(1700000000, 42)
	// Options arrive in any order and come out in the declared order.
	i := unmarshal(t, command("play", opt("next", 5, true), opt("query", 3, "never gonna")))
	got, err := FromInteraction(i, 0, received, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := &clusterpb.Interaction{
		Id: "1180000000000000001", Token: "aW50ZXJhY3Rpb24", ApplicationId: "1180000000000000002",
		GuildId: guild, ChannelId: testChannel, Kind: clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, Name: "play",
		Invoker:          &clusterpb.Invoker{UserId: testUser, RoleIds: []string{testRole}, Permissions: 1099511627807, DisplayName: "DJ Alice"},
		Options:          []*clusterpb.Option{{Name: "query", Value: "never gonna"}, {Name: "next", Value: "true"}},
		ReceivedUnixNano: received.UnixNano(), ShardId: 3,
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Fatalf("got  %s\nwant %s", g, w)
	}
	if got.Invoker.VoiceChannelId != "" {
		t.Fatal("the voice channel is the shard's to fill")
	}

	// The display name falls back to the global name, then the username.
	p := command("pause")
	delete(p["member"].(map[string]any), "nick")
	got, err = FromInteraction(unmarshal(t, p), 0, received, 0)
	if err != nil || got.Invoker.DisplayName != "Alice" || got.Options != nil {
		t.Fatalf("pause: %+v, %v", got, err)
	}

	// Integers, roles and channels become canonical text.
	got, err = FromInteraction(unmarshal(t, command("settings",
		opt("announce_channel", 7, testChannel), opt("dj_role", 8, testRole), opt("default_volume", 4, 150))), 0, received, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g := optionPairs(got.Options); g != "dj_role="+testRole+" default_volume=150 announce_channel="+testChannel {
		t.Fatalf("settings options %s", g)
	}
	if s, _, err := ParseSettings(got.Options, music.DefaultSettings()); err != nil || s.DefaultVolume != 150 || s.DJRoleID != testRole {
		t.Fatalf("the converted options do not parse: %+v, %v", s, err)
	}
}

func optionPairs(opts []*clusterpb.Option) string {
	var parts []string
	for _, o := range opts {
		s := o.Name + "=" + o.Value
		if o.Focused {
			s += "*"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFromInteractionAutocomplete(t *testing.T) {
	p := payload(4, map[string]any{"id": "1180000000000000003", "name": "play", "type": 1, "options": []map[string]any{
		{"name": "query", "type": 3, "value": "never gon", "focused": true}, opt("next", 5, false)}})
	got, err := FromInteraction(unmarshal(t, p), 0, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE || got.Name != "play" ||
		optionPairs(got.Options) != "query=never gon* next=false" {
		t.Fatalf("%+v", got)
	}
}

func TestFromInteractionButton(t *testing.T) {
	id := CustomID(ButtonSkip, guild)
	got, err := FromInteraction(unmarshal(t, button(id)), 0, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != clusterpb.InteractionKind_INTERACTION_KIND_BUTTON || got.Name != id || got.MessageId != testMessage || got.Options != nil {
		t.Fatalf("%+v", got)
	}
}

// TestFromInteractionChannel: `channel` and `channel_id` are both optional
// in Discord's documentation and disgo reads only the object, so the
// payload's channel_id comes in as an argument (a Discord-compatible server
// sends only channel_id).
func TestFromInteractionChannel(t *testing.T) {
	const other = "81384788765712390"
	withoutChannel := func(keys ...string) map[string]any {
		p := command("pause")
		for _, k := range keys {
			delete(p, k)
		}
		return p
	}
	for _, tc := range []struct {
		name     string
		p        map[string]any
		fallback string
		want     string // "" = refused
	}{
		{"object only", withoutChannel("channel_id"), "", testChannel},
		{"channel_id only", withoutChannel("channel"), testChannel, testChannel},
		// The object is what disgo parsed from the same payload; the
		// argument only stands in for a missing one.
		{"object wins", command("pause"), other, testChannel},
		{"neither", withoutChannel("channel", "channel_id"), "", ""},
		{"channel_id only, not passed", withoutChannel("channel"), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := unmarshal(t, tc.p)
			var fallback snowflake.ID
			if tc.fallback != "" {
				fallback = snowflake.MustParse(tc.fallback)
			}
			if HasChannel(i) != (tc.p["channel"] != nil) {
				t.Fatalf("HasChannel = %v with channel object %v", HasChannel(i), tc.p["channel"])
			}
			got, err := FromInteraction(i, fallback, time.Now(), 0)
			if tc.want == "" {
				var ie *InteractionError
				if !errors.As(err, &ie) || ie.Refusal != RefuseMalformed || got != nil {
					t.Fatalf("= %+v, %v; want a malformed-interaction refusal", got, err)
				}
				return
			}
			if err != nil || got.ChannelId != tc.want || got.Name != "pause" {
				t.Fatalf("= %+v, %v; want channel %s", got, err, tc.want)
			}
		})
	}
}

// TestRefusalText: every class has its own text, written for the member
// (what happened and what to do), not an error string.
func TestRefusalText(t *testing.T) {
	seen := map[string]Refusal{}
	for _, tc := range []struct {
		class Refusal
		says  []string
	}{
		{RefuseMalformed, []string{"incomplete", "try again"}},
		{RefuseNotInServer, []string{"only in servers"}},
		{RefuseUnknownCommand, []string{"isn't available here", "outdated command list", "restart"}},
		{RefuseBadOptions, []string{"options", "outdated version", "restart"}},
		{RefuseUnsupported, []string{"doesn't handle this kind"}},
		{RefuseStaleButton, []string{"button", "latest now-playing message"}},
		{RefuseOtherShard, []string{"right now", "try again in a moment"}},
	} {
		text := tc.class.Text()
		for _, want := range tc.says {
			if !strings.Contains(strings.ToLower(text), strings.ToLower(want)) {
				t.Errorf("class %d: %q does not say %q", tc.class, text, want)
			}
		}
		for _, jargon := range []string{"unsupported interaction", "%", "nil", "shard", "payload", "error"} {
			if strings.Contains(strings.ToLower(text), jargon) {
				t.Errorf("class %d: %q reads like an error string (%q)", tc.class, text, jargon)
			}
		}
		if prev, dup := seen[text]; dup {
			t.Errorf("classes %d and %d say the same", prev, tc.class)
		}
		seen[text] = tc.class
		if r := Error(text); !r.Ephemeral || len([]rune(r.Content)) > maxContent {
			t.Errorf("class %d: reply %+v", tc.class, r)
		}
	}
	if got := RefusalText(errors.New("something else")); got != RefuseMalformed.Text() {
		t.Fatalf("RefusalText of a foreign error = %q", got)
	}
	wrapped := fmt.Errorf("shard 0: %w", refuse(RefuseStaleButton, "x"))
	if got := RefusalText(wrapped); got != RefuseStaleButton.Text() {
		t.Fatalf("RefusalText of a wrapped refusal = %q", got)
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		p    map[string]any
		want clusterpb.InteractionKind
	}{
		{command("pause"), clusterpb.InteractionKind_INTERACTION_KIND_COMMAND},
		{payload(4, map[string]any{"id": "1", "name": "play", "type": 1, "options": []any{}}), clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE},
		{button("x"), clusterpb.InteractionKind_INTERACTION_KIND_BUTTON},
		{payload(5, map[string]any{"custom_id": "m", "components": []any{}}), clusterpb.InteractionKind_INTERACTION_KIND_UNSPECIFIED},
	} {
		if got := KindOf(unmarshal(t, tc.p)); got != tc.want {
			t.Errorf("KindOf(type %v) = %v; want %v", tc.p["type"], got, tc.want)
		}
	}
	if got := KindOf(nil); got != clusterpb.InteractionKind_INTERACTION_KIND_UNSPECIFIED {
		t.Errorf("KindOf(nil) = %v", got)
	}
}

func TestFromInteractionRefusals(t *testing.T) {
	without := func(p map[string]any, keys ...string) map[string]any {
		for _, k := range keys {
			delete(p, k)
		}
		return p
	}
	autocomplete := func(options ...map[string]any) map[string]any {
		return payload(4, map[string]any{"id": "1", "name": "play", "type": 1, "options": options})
	}
	subcommand := command("settings", map[string]any{"name": "show", "type": 1, "options": []any{}})
	userCommand := command("play")
	userCommand["data"].(map[string]any)["type"] = 2
	userCommand["data"].(map[string]any)["target_id"] = testUser
	selectMenu := button("x")
	selectMenu["data"] = map[string]any{"custom_id": CustomID(ButtonSkip, guild), "component_type": 3, "values": []string{"a"}}
	noMessage := without(button(CustomID(ButtonSkip, guild)), "message")
	noUser := command("pause")
	delete(noUser["member"].(map[string]any), "user")
	for _, tc := range []struct {
		name    string
		p       map[string]any
		mention string
		class   Refusal
	}{
		{"direct message", without(command("play", opt("query", 3, "x")), "guild_id", "member"), "only in servers", RefuseNotInServer},
		{"no member", without(command("pause"), "member"), "only in servers", RefuseNotInServer},
		{"no channel", without(command("pause"), "channel"), "no channel", RefuseMalformed},
		{"no channel at all", without(command("pause"), "channel", "channel_id"), "no channel", RefuseMalformed},
		{"no member user", noUser, "no member", RefuseMalformed},
		{"unknown command", command("eval"), "unknown command /eval", RefuseUnknownCommand},
		{"unknown option", command("play", opt("query", 3, "x"), opt("volume", 4, 5)), `no option "volume"`, RefuseBadOptions},
		{"wrong type", command("volume", opt("level", 3, "loud")), "level has type 3", RefuseBadOptions},
		{"string as integer", command("volume", opt("level", 4, "50")), "", 0},
		{"float as integer", command("volume", opt("level", 4, 50.5)), "not an integer", RefuseBadOptions},
		{"null value", command("play", opt("query", 3, nil)), "not a string", RefuseBadOptions},
		{"number as string", command("play", opt("query", 3, 5)), "not a string", RefuseBadOptions},
		{"bad role ID", command("settings", opt("dj_role", 8, "0")), "invalid Discord ID", RefuseBadOptions},
		{"subcommand", subcommand, "no subcommands", RefuseBadOptions},
		{"user command", userCommand, "not a slash command", RefuseUnknownCommand},
		{"ping", payload(1, nil), "interaction type 1", RefuseUnsupported},
		{"modal", payload(5, map[string]any{"custom_id": "m", "components": []any{}}), "interaction type 5", RefuseUnsupported},
		{"select menu", selectMenu, "only buttons", RefuseUnsupported},
		{"button from another guild", button(CustomID(ButtonSkip, "81384788765712399")), "another server", RefuseStaleButton},
		{"old button", button("np:skip"), "not valid here", RefuseStaleButton},
		{"button without message", noMessage, "without a message", RefuseMalformed},
		{"autocomplete nothing focused", autocomplete(opt("query", 3, "x")), "0 focused", RefuseBadOptions},
		{"autocomplete on a choice option", payload(4, map[string]any{"id": "1", "name": "loop", "type": 1, "options": []map[string]any{
			{"name": "mode", "type": 3, "value": "o", "focused": true}}}), "no autocomplete", RefuseBadOptions},
		{"autocomplete unknown command", payload(4, map[string]any{"id": "1", "name": "nope", "type": 1, "options": []any{}}), "unknown command", RefuseUnknownCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(tc.p)
			i, err := discord.UnmarshalInteraction(b)
			if err != nil {
				return // disgo refuses it already: nothing reaches FromInteraction
			}
			got, err := FromInteraction(i, 0, time.Now(), 0)
			if tc.mention == "" {
				// Accepted leniently only if the value is still a plain integer.
				if err == nil && got.Options[0].Value != "50" {
					t.Fatalf("accepted as %q", got.Options[0].Value)
				}
				return
			}
			if !errors.Is(err, ErrInteraction) || got != nil {
				t.Fatalf("= %+v, %v; want ErrInteraction", got, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
			var ie *InteractionError
			if !errors.As(err, &ie) || ie.Refusal != tc.class {
				t.Fatalf("error %v is refusal %v; want %v", err, ie, tc.class)
			}
			if RefusalText(err) != tc.class.Text() {
				t.Fatalf("RefusalText = %q; want the text of class %d", RefusalText(err), tc.class)
			}
		})
	}
	for _, i := range []discord.Interaction{nil, (*discord.ApplicationCommandInteraction)(nil), (*discord.ComponentInteraction)(nil)} {
		if _, err := FromInteraction(i, 0, time.Now(), 0); !errors.Is(err, ErrInteraction) {
			t.Fatalf("nil interaction %T: %v", i, err)
		}
	}
	// The pointer form converts like the value.
	v := unmarshal(t, command("pause")).(discord.ApplicationCommandInteraction)
	if got, err := FromInteraction(&v, 0, time.Now(), 0); err != nil || got.Name != "pause" {
		t.Fatalf("pointer: %+v, %v", got, err)
	}
}

// FuzzFromInteraction feeds arbitrary payloads through disgo's decoder and
// FromInteraction: whatever disgo accepts must not panic the conversion, and
// whatever the conversion accepts must be a guild interaction for a known
// command with known options.
func FuzzFromInteraction(f *testing.F) {
	for _, p := range []map[string]any{
		command("play", opt("query", 3, "never gonna"), opt("next", 5, true)),
		command("settings", opt("dj_role", 8, testRole), opt("default_volume", 4, 150)),
		command("skip", opt("count", 4, 3)),
		button(CustomID(ButtonLoop, guild)),
		payload(4, map[string]any{"id": "1", "name": "play", "type": 1, "options": []map[string]any{{"name": "query", "type": 3, "value": "x", "focused": true}}}),
	} {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		i, ok := decodeInteraction(b)
		if !ok {
			return
		}
		got, err := FromInteraction(i, 0, time.Unix(0, 0), 0)
		if err != nil {
			var ie *InteractionError
			if !errors.Is(err, ErrInteraction) || !errors.As(err, &ie) {
				t.Fatalf("error %v is not a refusal", err)
			}
			return
		}
		if got.GuildId == "" || got.Invoker == nil || got.ChannelId == "" {
			t.Fatalf("accepted without guild, member or channel: %+v", got)
		}
		spec, known := specIndex[got.Name]
		switch got.Kind {
		case clusterpb.InteractionKind_INTERACTION_KIND_BUTTON:
			if _, err := ParseCustomID(got.Name, got.GuildId); err != nil {
				t.Fatalf("accepted button %q: %v", got.Name, err)
			}
		default:
			if !known {
				t.Fatalf("accepted unknown command %q", got.Name)
			}
			for _, o := range got.Options {
				if !slices.Contains(spec.names, o.Name) {
					t.Fatalf("accepted unknown option %q", o.Name)
				}
			}
		}
	})
}

// decodeInteraction runs disgo's decoder, reporting a panic inside it as a
// payload to skip. disgo v0.19.6 indexes the first option of a subcommand
// group without checking there is one; that is disgo's bug to fix (and the
// shard's to guard), not something FromInteraction can see.
func decodeInteraction(b []byte) (i discord.Interaction, ok bool) {
	defer func() {
		if recover() != nil {
			i, ok = nil, false
		}
	}()
	i, err := discord.UnmarshalInteraction(b)
	return i, err == nil
}
