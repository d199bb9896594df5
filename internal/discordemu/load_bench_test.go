package discordemu

import (
	"encoding/json"
	"testing"
)

// BenchmarkInvokeCommand is the emulator's cost of one interaction dispatch (payload,
// encoding, queueing) under load: a load driver's CPU is taken from the bot it measures.
func BenchmarkInvokeCommand(b *testing.B) {
	emu, err := Start(b.Context(), Config{MaxRecorded: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	guilds, err := emu.AddLoadGuilds(10, 3)
	if err != nil {
		b.Fatal(err)
	}
	emu.mu.Lock()
	_, fe := emu.setCommandsLocked(0, []byte(`[{"name":"queue","description":"Queue","options":[{"type":4,"name":"page","description":"p"}]}]`))
	// A session with no connection buffers dispatches as a disconnected bot's would.
	s := &session{id: "bench", shard: 0, count: 1, intents: allTestIntents}
	emu.sessions[s.id] = s
	emu.mu.Unlock()
	if fe != nil {
		b.Fatal(fe.message)
	}
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
