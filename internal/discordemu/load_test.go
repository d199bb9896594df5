package discordemu

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// loadBot answers INTERACTION_CREATE from a plain websocket client the way the test
// needs: per guild, never, late, or at once (an ephemeral message for /queue, a deferral
// for /play). It stops when the connection closes.
func loadBot(t *testing.T, emu *Emulator, c *wsClient, silent, late Snowflake, lateBy time.Duration) {
	answer := func(d ixData, body string) {
		rq, _ := http.NewRequest("POST", emu.RESTURL()+callbackPath(d), strings.NewReader(body))
		rq.Header.Set("Content-Type", "application/json")
		rs, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Errorf("callback: %v", err)
			return
		}
		rs.Body.Close()
	}
	go func() {
		for {
			var m gwMsg
			select {
			case m = <-c.msgs:
			case <-c.close:
				return
			}
			if m.T != "INTERACTION_CREATE" {
				continue
			}
			var d ixData
			if err := json.Unmarshal(m.D, &d); err != nil {
				t.Errorf("interaction: %v", err)
				return
			}
			body := `{"type":4,"data":{"content":"busy now","flags":64}}`
			if d.Data.Name == "play" {
				body = `{"type":5,"data":{}}`
				if q := d.Data.Options[0].Value; q != "a" && q != "b" {
					t.Errorf("/play query %v, want one of the spec's values", q)
				}
			}
			switch d.GuildID {
			case silent:
			case late:
				// The bot is slow: its answer leaves after the deadline, within the grace.
				time.AfterFunc(lateBy, func() { answer(d, body) })
			default:
				go answer(d, body)
			}
		}
	}()
}

func TestRunLoadReportsEveryInteraction(t *testing.T) {
	const deadline = 200 * time.Millisecond
	emu := startEmu(t, Config{InteractionDeadline: deadline})
	registerCommands(t, emu, `[{"name":"play","description":"Play","options":[{"type":3,"name":"query","description":"q","required":true}]},{"name":"queue","description":"Queue"}]`)
	guilds, err := emu.AddLoadGuilds(3, 2)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, emu, CompressionNone)
	c.identify(emu.Token(), 0, 1, allTestIntents)
	for range guilds {
		c.expectDispatch("GUILD_CREATE")
	}
	loadBot(t, emu, c, guilds[0].ID, guilds[1].ID, deadline+100*time.Millisecond)

	res, err := emu.RunLoad(ctxTimeout(t), guilds, LoadSpec{
		Rate: 200, Count: 12, Sequential: true, Seed: 7, Grace: 2 * time.Second,
		Mix: []LoadCommand{
			{Name: "queue", Weight: 1},
			{Name: "play", Weight: 1, Options: []LoadOption{{Name: "query", Type: OptionString, Values: []any{"a", "b"}}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 12 || res.SendErrors != 0 {
		t.Fatalf("%d records, %d send errors (%s); want 12, 0", len(res.Records), res.SendErrors, res.FirstError)
	}
	seen := map[string]int{}
	for i, r := range res.Records {
		seen[r.Command]++
		if r.Guild != i%3 {
			t.Errorf("record %d: guild %d, want %d (sequential)", i, r.Guild, i%3)
		}
		if r.SentUS < 0 {
			t.Errorf("record %d: never written to the socket", i)
		}
		switch r.Guild {
		case 0, 1:
			if r.LatencyUS != -1 || r.Type != 0 || r.Late != (r.Guild == 1) {
				t.Errorf("record %d (guild %d): %+v; want unanswered, late=%v", i, r.Guild, r, r.Guild == 1)
			}
		case 2:
			want := ResponseMessage
			if r.Command == "play" {
				want = ResponseDeferredMessage
			}
			if r.LatencyUS < 0 || r.Type != want || r.Late {
				t.Errorf("record %d: %+v; want answered with type %d", i, r, want)
			}
			if want == ResponseMessage && (r.Content != "busy now" || r.Flags&FlagEphemeral == 0) {
				t.Errorf("record %d: content %q flags %d; want the ephemeral answer", i, r.Content, r.Flags)
			}
		}
	}
	if seen["queue"] == 0 || seen["play"] == 0 {
		t.Errorf("commands drawn %v; want both", seen)
	}
}

func TestRunLoadRefusesBadSpecs(t *testing.T) {
	emu := startEmu(t, Config{})
	registerCommands(t, emu, `[{"name":"queue","description":"Queue"}]`)
	guilds, err := emu.AddLoadGuilds(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	queue := []LoadCommand{{Name: "queue", Weight: 1}}
	for _, tc := range []struct {
		name   string
		guilds []LoadGuild
		spec   LoadSpec
	}{
		{"zero rate", guilds, LoadSpec{Duration: time.Second, Mix: queue}},
		{"endless", guilds, LoadSpec{Rate: 10, Duration: 2 * time.Hour, Mix: queue}},
		{"no duration or count", guilds, LoadSpec{Rate: 10, Mix: queue}},
		{"empty mix", guilds, LoadSpec{Rate: 10, Count: 1}},
		{"no guilds", nil, LoadSpec{Rate: 10, Count: 1, Mix: queue}},
		{"zero weight", guilds, LoadSpec{Rate: 10, Count: 1, Mix: []LoadCommand{{Name: "queue"}}}},
		{"option without values", guilds, LoadSpec{Rate: 10, Count: 1, Mix: []LoadCommand{{Name: "queue", Weight: 1, Options: []LoadOption{{Name: "page", Type: OptionInteger}}}}}},
		{"unregistered command", guilds, LoadSpec{Rate: 10, Count: 1, Mix: []LoadCommand{{Name: "play", Weight: 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := emu.RunLoad(context.Background(), tc.guilds, tc.spec)
			if err == nil || len(res.Records) != 0 {
				t.Fatalf("RunLoad = %d records, %v; want an error before sending", len(res.Records), err)
			}
		})
	}
	if _, err := emu.RunLoad(context.Background(), guilds, LoadSpec{Rate: 10, Count: 1, Mix: []LoadCommand{{Name: "play", Weight: 1}}}); !errors.Is(err, ErrNoCommand) {
		t.Fatalf("unregistered command: %v, want ErrNoCommand", err)
	}
}

func TestAddLoadGuildsSpreadsShardsWithListenersInVoice(t *testing.T) {
	emu := startEmu(t, Config{Shards: 2})
	guilds, err := emu.AddLoadGuilds(4, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range guilds {
		if got := ShardForGuild(g.ID, 2); got != i%2 {
			t.Errorf("guild %d on shard %d, want %d", i, got, i%2)
		}
		if len(g.Members) != 3 {
			t.Fatalf("guild %d has %d members, want 3", i, len(g.Members))
		}
		for _, u := range g.Members {
			if vs, ok := emu.UserVoiceState(g.ID, u); !ok || vs.ChannelID != g.Voice {
				t.Errorf("guild %d member %s voice %+v, want in %s", i, u, vs, g.Voice)
			}
		}
	}
}

func TestRecorderBounds(t *testing.T) {
	t.Run("nothing recorded", func(t *testing.T) {
		emu := startEmu(t, Config{MaxRecorded: -1})
		do(t, emu, "GET", "/gateway", "", "")
		c := dial(t, emu, CompressionNone)
		c.identify(emu.Token(), 0, 1, allTestIntents)
		if rq, p := emu.Recorder().Requests(), emu.Recorder().Payloads(); len(rq) != 0 || len(p) != 0 {
			t.Fatalf("%d requests and %d payloads recorded, want none", len(rq), len(p))
		}
	})
	t.Run("newest kept", func(t *testing.T) {
		emu := startEmu(t, Config{MaxRecorded: 1})
		for range 3 {
			do(t, emu, "GET", "/gateway", "", "")
		}
		do(t, emu, "GET", "/users/@me", "bot", "")
		if rq := emu.Recorder().Requests(); len(rq) != 1 || rq[0].Path != "/users/@me" {
			t.Fatalf("requests %+v, want only the last", rq)
		}
		// A heartbeat, then IDENTIFY: recording IDENTIFY trims the heartbeat away before
		// the gateway fills in IDENTIFY's shard and session, which must land on IDENTIFY.
		c := dial(t, emu, CompressionNone)
		c.hello()
		c.send(opHeartbeat, nil)
		if m := c.next(); m.Op != opHeartbeatACK {
			t.Fatalf("op %d after a heartbeat, want ACK", m.Op)
		}
		c.send(opIdentify, map[string]any{"token": emu.Token(), "intents": allTestIntents, "shard": []int{0, 1},
			"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}})
		c.expectDispatch("READY")
		p := emu.Recorder().Payloads()
		if len(p) != 1 || p[0].Op != opIdentify || p[0].Shard != 0 || p[0].SessionID == "" {
			t.Fatalf("payloads %+v, want IDENTIFY with its shard and session", p)
		}
	})
}

// TestResumeReplaysMoreThanTheQueue: a client that missed more dispatches than
// GatewayQueue while disconnected still resumes and gets them all; the replay is not
// the client being slow.
func TestResumeReplaysMoreThanTheQueue(t *testing.T) {
	emu := startEmu(t, Config{GatewayQueue: 4, ReplayBuffer: 64})
	registerCommands(t, emu, `[{"name":"queue","description":"Queue"}]`)
	guilds, err := emu.AddLoadGuilds(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, emu, CompressionNone)
	r, _ := c.identify(emu.Token(), 0, 1, allTestIntents)
	last := *c.expectDispatch("GUILD_CREATE").S
	// Gone without a close frame: the session waits for a RESUME.
	_ = c.conn.Close()
	if _, err := emu.WaitSession(ctxTimeout(t), func(si SessionInfo) bool { return si.ID == r.SessionID && !si.Connected }); err != nil {
		t.Fatal(err)
	}
	const missed = 20
	g := guilds[0]
	for range missed {
		if _, err := emu.InvokeCommand(g.ID, g.Members[0], g.Text, "queue"); err != nil {
			t.Fatal(err)
		}
	}
	c2 := dial(t, emu, CompressionNone)
	c2.hello()
	c2.send(opResume, map[string]any{"token": emu.Token(), "session_id": r.SessionID, "seq": last})
	for i := range missed {
		if m := c2.nextNonAck(); m.T != "INTERACTION_CREATE" {
			t.Fatalf("replayed dispatch %d: op %d %q, want INTERACTION_CREATE", i, m.Op, m.T)
		}
	}
	c2.expectDispatch("RESUMED")
	if n := emu.SlowDisconnects(); n != 0 {
		t.Fatalf("%d slow disconnects, want 0", n)
	}
}

// TestSlowClientIsDisconnected: a client that stops reading is dropped once more than
// GatewayQueue dispatches wait behind its socket, and the drop is counted.
func TestSlowClientIsDisconnected(t *testing.T) {
	emu := startEmu(t, Config{GatewayQueue: 16, MaxRecorded: -1})
	registerCommands(t, emu, `[{"name":"queue","description":"Queue"}]`)
	guilds, err := emu.AddLoadGuilds(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := wsDialer.Dial(emu.GatewayURL()+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadMessage(); err != nil { // HELLO
		t.Fatal(err)
	}
	ident, _ := json.Marshal(map[string]any{"op": opIdentify, "d": map[string]any{"token": emu.Token(), "intents": allTestIntents,
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}}})
	if err := conn.WriteMessage(1, ident); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.WaitReady(ctxTimeout(t), 0); err != nil {
		t.Fatal(err)
	}
	// From here on nothing is read: the socket's buffers fill, then the queue. The bound
	// is far above what loopback buffers hold.
	g := guilds[0]
	for i := 0; emu.SlowDisconnects() == 0; i++ {
		if i == 200000 {
			t.Fatal("a client that reads nothing was never disconnected")
		}
		if _, err := emu.InvokeCommand(g.ID, g.Members[0], g.Text, "queue"); err != nil {
			t.Fatal(err)
		}
	}
	if si, err := emu.WaitSession(ctxTimeout(t), func(si SessionInfo) bool { return !si.Connected }); err != nil {
		t.Fatalf("session still connected: %+v, %v", si, err)
	}
}
