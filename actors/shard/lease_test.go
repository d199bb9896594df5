package shard

import (
	"testing"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
)

// The resume state carries what READY and the voice events gave, so that
// the next holder of the shard starts where this one stopped.
func TestResumeStateRoundTrip(t *testing.T) {
	g, _, _ := newTestGrain(t, 0, 1)
	if g.resumeState() != nil {
		t.Fatal("a state before READY: the stored one (if any) must stay")
	}
	const guild, bot, alice = snowflake.ID(81384788765712384), snowflake.ID(42), snowflake.ID(7)
	music := snowflake.ID(1001)
	r := ready(bot, guild)
	r.SessionID, r.ResumeGatewayURL = "sess-1", "wss://resume.example"
	g.handle(g.deps.Now(), r)
	g.handle(g.deps.Now(), guildCreate(guild))
	g.handle(g.deps.Now(), vsu(guild, alice, music, "alice-voice"))
	g.handle(g.deps.Now(), vsu(guild, bot, music, "bot-voice"))
	g.seq = 17
	b := g.resumeState()

	h, _, _ := newTestGrain(t, 0, 1)
	if !h.restore(b) {
		t.Fatal("restore failed")
	}
	if h.sessionID != "sess-1" || h.seq != 17 || h.resumeURL != "wss://resume.example" || h.botID != bot || h.appID != g.appID {
		t.Fatalf("restored session %q seq %d url %q bot %d app %q", h.sessionID, h.seq, h.resumeURL, h.botID, h.appID)
	}
	if h.cache.channel(guild, alice) != music || h.cache[guild][bot] != (voiceState{channel: music, session: "bot-voice"}) || len(h.cache) != 1 {
		t.Fatalf("restored cache %v", h.cache)
	}
	// A session identified with another shard count or other intents
	// would get other guilds' events: not resumed.
	other, _, _ := newTestGrain(t, 0, 2)
	if other.restore(b) {
		t.Fatal("a state of a 1-shard deployment restored with 2 shards")
	}
	other, _, _ = newTestGrain(t, 0, 1)
	other.deps.Intents |= gateway.IntentGuildMessages
	if other.restore(b) {
		t.Fatal("a state restored with other intents")
	}
	for _, bad := range [][]byte{nil, {0xff, 0xff}, {}} {
		if newGrain, _, _ := newTestGrain(t, 0, 1); newGrain.restore(bad) {
			t.Fatalf("restore(%x) accepted", bad)
		}
	}
}
