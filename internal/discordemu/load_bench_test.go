package discordemu

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/disgoorg/disgo/gateway"
)

// benchQueueEmulator starts an emulator with guilds of members, /queue (with a page option)
// registered, and a session with no connection, which buffers its dispatches as a
// disconnected bot's would.
func benchQueueEmulator(b *testing.B, guilds, members int) (*Emulator, []LoadGuild, *session) {
	b.Helper()
	emu, err := Start(b.Context(), Config{MaxRecorded: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emu.Close)
	gs, err := emu.AddLoadGuilds(guilds, members)
	if err != nil {
		b.Fatal(err)
	}
	emu.mu.Lock()
	_, fe := emu.setCommandsLocked(0, []byte(`[{"name":"queue","description":"Queue","options":[{"type":4,"name":"page","description":"p"}]}]`))
	s := &session{id: "bench", shard: 0, count: 1, intents: allTestIntents}
	emu.sessions[s.id] = s
	emu.mu.Unlock()
	if fe != nil {
		b.Fatal(fe.message)
	}
	return emu, gs, s
}

// BenchmarkInvokeCommand is the emulator's cost of one interaction dispatch (payload,
// encoding, queueing) under load: a load driver's CPU is taken from the bot it measures.
func BenchmarkInvokeCommand(b *testing.B) {
	emu, guilds, _ := benchQueueEmulator(b, 10, 3)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g := guilds[i%len(guilds)]
		if _, err := emu.InvokeCommand(g.ID, g.Members[0], g.Text, "queue", IntOption("page", 1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallback is the emulator's cost of one interaction response carrying an embed.
func BenchmarkCallback(b *testing.B) {
	emu, err := Start(b.Context(), Config{MaxRecorded: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	guilds, _ := emu.AddLoadGuilds(1, 1)
	emu.mu.Lock()
	emu.setCommandsLocked(0, []byte(`[{"name":"queue","description":"Queue"}]`))
	emu.sessions["bench"] = &session{id: "bench", shard: 0, count: 1, intents: allTestIntents}
	emu.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"type": 4, "data": map[string]any{"flags": 64,
		"embeds": []any{map[string]any{"title": "Queue", "description": "1. Some track — Some author `3:12`\n2. Another track — Another `4:01`\n3. A third one — Band `2:59`", "color": 0x5865F2,
			"footer": map[string]any{"text": "Page 1/1 · 3 tracks · 10:12"}}},
		"components":       []any{},
		"allowed_mentions": map[string]any{"parse": []any{}}}})
	g := guilds[0]
	ixs := make([]*Interaction, b.N)
	for i := range ixs {
		if ixs[i], err = emu.InvokeCommand(g.ID, g.Members[0], g.Text, "queue"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, ix := range ixs {
		if _, _, fe := emu.callback(ix.ID, ix.Token, body, false); fe != nil {
			b.Fatal(fe.message)
		}
	}
}

// BenchmarkDisgoDecodeInteraction is a bot's cost of reading one INTERACTION_CREATE as the
// emulator sends it, the way disgo's gateway reader does (the node's and the bare bot's):
// one goroutine per shard spends this on every interaction before anything else can run.
// GOEXPERIMENT=jsonv2 measures the same with encoding/json on its v2 implementation.
func BenchmarkDisgoDecodeInteraction(b *testing.B) {
	emu, guilds, s := benchQueueEmulator(b, 1, 1)
	g := guilds[0]
	if _, err := emu.InvokeCommand(g.ID, g.Members[0], g.Text, "queue", IntOption("page", 1)); err != nil {
		b.Fatal(err)
	}
	emu.mu.Lock()
	frame := s.buf[len(s.buf)-1].payload
	emu.mu.Unlock()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		var m gateway.Message
		if err := json.NewDecoder(bytes.NewReader(frame)).Decode(&m); err != nil {
			b.Fatal(err)
		}
		if ev, ok := m.D.(gateway.EventInteractionCreate); !ok || ev.Interaction == nil {
			b.Fatalf("decoded %T, want an interaction", m.D)
		}
	}
}
