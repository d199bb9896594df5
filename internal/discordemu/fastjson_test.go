package discordemu

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func checkSameJSON(t *testing.T, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := appendJSON(&buf, v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("appendJSON:\n%s\nencoding/json:\n%s", buf.Bytes(), want)
	}
}

// TestAppendJSONMatchesEncodingJSON checks the fast encoder against encoding/json on
// every kind of payload the emulator dispatches, and on awkward values.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	emu.mu.Lock()
	gs := emu.guilds[w.guild]
	m := gs.members[w.alice]
	vs := &VoiceState{UserID: w.alice, ChannelID: w.voice, SessionID: "s<>&"}
	msg := emu.newMessageLocked(w.text, w.guild, nil, 0)
	msg.rawEmbeds = []json.RawMessage{json.RawMessage(`{ "title" : "a\u003cb" }`)}
	payloads := []any{
		emu.guildCreatePayloadLocked(gs),
		emu.voiceStatePayloadLocked(gs, vs, m),
		emu.messagePayloadLocked(msg),
		readyUser(emu.botUser()),
	}
	emu.mu.Unlock()
	for _, p := range payloads {
		checkSameJSON(t, p)
	}
	for _, v := range []any{
		nil, true, -12, int64(1) << 60, uint64(1) << 63, Snowflake(0), 1.5, time.Second,
		"", "plain", "quote\" back\\slash", "<script>&amp;</script>", "ctl\x00\x01\x1f\b\f\n\r\t\x7f",
		"é ✓ 😀", "bad \xff utf8 \xe2\x82", "sep \u2028 \u2029",
		map[string]any{}, map[string]any(nil), []any(nil), []any{}, []string(nil), []Snowflake{1, 2}, []int{3},
		[]json.RawMessage{json.RawMessage(`[1, 2]`), nil}, json.RawMessage(nil),
		map[string]any{"z": 1, "a": []any{map[string]any{"é": "x", "A": nil}}, "m": map[string]string{"k": "v"}},
	} {
		checkSameJSON(t, v)
	}
	var buf bytes.Buffer
	if err := appendJSON(&buf, json.RawMessage(`{bad`)); err == nil {
		t.Fatal("invalid raw JSON accepted")
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<&>", "\x00\xff", "\u2028", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSameJSON(t, s)
		checkSameJSON(t, map[string]any{s: s})
	})
}
