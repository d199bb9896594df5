//go:build !race

// Checks of disgolink v3.1.0 behaviours the bot works around, against the real
// client. Excluded from -race builds for the upstream races listed in
// conformance_test.go (node.go:111/115 getters against node.go:360/235).

package lavalinkemu

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
)

// Confirmed: BestNode picks the node with the higher load.
func TestPitfallBestNodePrefersBusiest(t *testing.T) {
	busy := startEmu(t, Config{StatsInterval: 10 * time.Millisecond})
	idle := startEmu(t, Config{StatsInterval: 10 * time.Millisecond})
	busy.SetLoad(0.9, 0)
	idle.SetLoad(0.1, 0)
	d := mustDL(t, busy)
	ctx := ctxT(t)
	if _, err := d.client.AddNode(ctx, disgolink.NodeConfig{Name: "idle", Address: idle.Addr(), Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both nodes have stats with their load", func() bool {
		return d.client.Node("emu").Stats().CPU.SystemLoad == 0.9 && d.client.Node("idle").Stats().CPU.SystemLoad == 0.1
	})
	if best := d.client.BestNode().Config().Name; best != "emu" {
		t.Fatalf("BestNode = %s; the pitfall (busiest wins) no longer holds", best)
	}
}

// Confirmed: one unparseable message ends the reader silently; the status
// stays CONNECTED and nothing sent afterwards is delivered, though the socket
// stays open.
func TestPitfallMalformedMessageStopsReadLoop(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(6000)
	r, _ := d.node.LoadTracks(ctx, "ytsearch:probe")
	if err := d.client.Player(g).Update(ctx, lavalink.WithTrack(r.Data.(lavalink.Search)[0])); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.TrackStartEvent](d, nil)
	if err := e.SendRaw(onlySession(t, e).ID, []byte(`{"op":"playerUpdate","guildId":"not-a-snowflake","state":{}}`)); err != nil {
		t.Fatal(err)
	}
	// The probe goes out after the bad message on the same socket.
	if err := e.FailTrack(uint64(g), "probe"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(500 * time.Millisecond)
	for {
		select {
		case m := <-d.events:
			if _, ok := m.(lavalink.TrackExceptionEvent); ok {
				t.Fatal("an event after the malformed message was delivered; the pitfall no longer holds")
			}
			continue
		case <-deadline:
		}
		break
	}
	if st := d.node.Status(); st != disgolink.StatusConnected {
		t.Fatalf("status %s; the pitfall says it stays CONNECTED", st)
	}
	if s := onlySession(t, e); !s.Connected {
		t.Fatal("the socket was closed; the pitfall is about an open socket nobody reads")
	}
}

// Confirmed: an update between VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE
// overwrites the cached voice with the server's echo (empty: not connected
// yet), so OnVoiceServerUpdate finds no session ID, sends nothing, and the
// player never connects.
func TestPitfallUpdateBetweenVoiceEventsNeverConnects(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(6001)
	ch := snowflake.ID(42)
	d.client.OnVoiceStateUpdate(ctx, g, &ch, "vsess")
	if err := d.client.Player(g).Update(ctx, lavalink.WithVolume(80)); err != nil {
		t.Fatal(err)
	}
	d.client.OnVoiceServerUpdate(ctx, g, "tok", "voice.example:443")
	for _, r := range e.RequestsTo("PATCH", "/v4/sessions/") {
		if strings.Contains(string(r.Body), `"voice"`) {
			t.Fatalf("a voice update was sent: %s", r.Body)
		}
	}
	if pl := playerOf(t, e, g); pl.Connected {
		t.Fatal("player connected; the pitfall no longer holds")
	}
}

// Confirmed: WebSocketClosedEvent wipes disgolink's cached voice state, so a
// later VOICE_SERVER_UPDATE alone (Discord's usual reaction to a voice
// server move) sends nothing: the bot must resend the full voice state from
// its own copy.
func TestPitfallVoiceCloseWipesCachedVoice(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	g := snowflake.ID(6002)
	d.connectVoice(g)
	if err := e.CloseVoice(uint64(g), 4006, "gone", true); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.WebSocketClosedEvent](d, nil)
	before := len(e.RequestsTo("PATCH", "/v4/sessions/"))
	d.client.OnVoiceServerUpdate(ctxT(t), g, "tok2", "voice2.example:443")
	if after := len(e.RequestsTo("PATCH", "/v4/sessions/")); after != before {
		t.Fatalf("disgolink sent %d update(s) after the wipe", after-before)
	}
	if playerOf(t, e, g).Connected {
		t.Fatal("player reconnected")
	}
	// With its own copy of the voice state the bot can reconnect.
	if err := d.client.Player(g).Update(ctxT(t), lavalink.WithVoice(lavalink.VoiceState{Token: "tok2", Endpoint: "voice2.example:443", SessionID: "vsess", ChannelID: 42})); err != nil {
		t.Fatal(err)
	}
	if !playerOf(t, e, g).Connected {
		t.Fatal("explicit voice update did not connect")
	}
}

// Confirmed fixed: failed voice updates and destroys return or log errors
// instead of panicking.
func TestPitfallFailedDestroyAndVoiceUpdateDoNotPanic(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(6003)
	e.FailREST(2, 500)
	d.connectVoice(g) // logs the failure
	if err := d.client.Player(g).Destroy(ctx); err == nil {
		t.Fatal("Destroy during a failure returned nil")
	}
}

// Confirmed: AddNode does not give up on a node that refuses it; only the
// context ends the attempt.
func TestPitfallAddNodeRetriesUntilDeadline(t *testing.T) {
	e := startEmu(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	client := disgolink.New(snowflake.MustParse(testUserID), disgolink.WithLogger(slog.New(slog.DiscardHandler)))
	defer client.Close()
	_, err := client.AddNode(ctx, disgolink.NodeConfig{Name: "x", Address: e.Addr(), Password: "wrong"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AddNode: %v", err)
	}
	if n := len(e.RequestsTo("GET", "/v4/websocket")); n < 2 {
		t.Fatalf("%d handshake attempts; want retries", n)
	}
}
