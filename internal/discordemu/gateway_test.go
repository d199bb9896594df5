package discordemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGatewayIdentifyReadyGuildCreate(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionZlib, CompressionZstd} {
		t.Run(comp.name(), func(t *testing.T) {
			emu := startEmu(t, Config{HeartbeatInterval: 30 * time.Second})
			w := addWorld(t, emu, SnowflakeForShard(0, 1))
			c := dial(t, emu, comp)
			if got := c.hello(); got != 30000 {
				t.Fatalf("heartbeat_interval = %d", got)
			}
			c.send(opIdentify, map[string]any{"token": emu.Token(), "intents": allTestIntents, "properties": map[string]string{}})
			m := c.expectDispatch("READY")
			var r readyData
			if err := json.Unmarshal(m.D, &r); err != nil {
				t.Fatal(err)
			}
			if r.SessionID == "" || r.ResumeGatewayURL != emu.GatewayURL() || !r.User.Bot || r.User.ID != emu.BotUserID() ||
				r.Application.ID != emu.AppID() || r.Shard != [2]int{0, 1} {
				t.Fatalf("bad READY: %+v", r)
			}
			if len(r.Guilds) != 1 || r.Guilds[0].ID != w.guild || !r.Guilds[0].Unavailable {
				t.Fatalf("READY guild stubs = %+v", r.Guilds)
			}
			g := c.expectDispatch("GUILD_CREATE")
			if *g.S != *m.S+1 {
				t.Fatalf("GUILD_CREATE seq %d after READY seq %d", *g.S, *m.S)
			}
			var gd struct {
				ID       Snowflake `json:"id"`
				Channels []struct {
					ID   Snowflake `json:"id"`
					Type int       `json:"type"`
				} `json:"channels"`
				Members []struct {
					User struct {
						ID Snowflake `json:"id"`
					} `json:"user"`
				} `json:"members"`
				Roles []struct {
					ID          Snowflake `json:"id"`
					Permissions string    `json:"permissions"`
				} `json:"roles"`
			}
			if err := json.Unmarshal(g.D, &gd); err != nil {
				t.Fatal(err)
			}
			if gd.ID != w.guild || len(gd.Channels) != 3 || len(gd.Members) != 3 || len(gd.Roles) != 2 {
				t.Fatalf("GUILD_CREATE = %s", g.D)
			}
			if gd.Members[2].User.ID != emu.BotUserID() {
				t.Fatalf("bot is not a member of the guild: %s", g.D)
			}
			c.send(opHeartbeat, *g.S)
			if m := c.next(); m.Op != opHeartbeatACK {
				t.Fatalf("heartbeat answered with op %d", m.Op)
			}
			if s := emu.Sessions(); len(s) != 1 || s[0].Compression != comp || !s[0].Ready {
				t.Fatalf("sessions = %+v", s)
			}
		})
	}
}

func (c Compression) name() string {
	if c == CompressionNone {
		return "none"
	}
	return string(c)
}

func TestGatewayCloseCodes(t *testing.T) {
	emu := startEmu(t, Config{Shards: 2})
	cases := []struct {
		name string
		run  func(c *wsClient)
		code int
	}{
		{"bad token", func(c *wsClient) {
			c.hello()
			c.send(opIdentify, map[string]any{"token": emu.Token() + "x", "intents": 1})
		}, CloseAuthenticationFailed},
		{"invalid shard", func(c *wsClient) {
			c.hello()
			c.send(opIdentify, map[string]any{"token": emu.Token(), "intents": 1, "shard": []int{2, 2}})
		}, CloseInvalidShard},
		{"not authenticated", func(c *wsClient) {
			c.hello()
			c.send(opVoiceState, map[string]any{"guild_id": "1", "channel_id": nil})
		}, CloseNotAuthenticated},
		{"already authenticated", func(c *wsClient) {
			c.identify(emu.Token(), 0, 1, 1)
			c.send(opIdentify, map[string]any{"token": emu.Token(), "intents": 1})
		}, CloseAlreadyAuthenticated},
		{"unknown opcode", func(c *wsClient) {
			c.identify(emu.Token(), 0, 1, 1)
			c.send(42, nil)
		}, CloseUnknownOpcode},
		{"decode error", func(c *wsClient) {
			c.hello()
			_ = c.conn.WriteMessage(1, []byte("{not json"))
		}, CloseDecodeError},
		{"invalid intents", func(c *wsClient) {
			c.hello()
			c.send(opIdentify, map[string]any{"token": emu.Token(), "intents": 1 << 40})
		}, CloseInvalidIntents},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, emu, CompressionZstd)
			c.t = t
			tc.run(c)
			c.expectClose(tc.code)
		})
	}
	t.Run("bad version", func(t *testing.T) {
		c := dialURL(t, emu.GatewayURL()+"?v=6&encoding=json")
		c.expectClose(CloseInvalidAPIVersion)
	})
}

func dialURL(t *testing.T, url string) *wsClient {
	t.Helper()
	emuLess := &wsClient{t: t, msgs: make(chan gwMsg, 16), close: make(chan int, 1)}
	conn, _, err := wsDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	emuLess.conn = conn
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				emuLess.close <- closeCode(err)
				return
			}
			var m gwMsg
			_ = json.Unmarshal(data, &m)
			emuLess.msgs <- m
		}
	}()
	return emuLess
}

func TestGatewayMissedHeartbeatCloses4009(t *testing.T) {
	emu := startEmu(t, Config{HeartbeatInterval: 100 * time.Millisecond})
	c := dial(t, emu, CompressionNone)
	r, _ := c.identify(emu.Token(), 0, 1, allTestIntents)
	c.expectClose(CloseSessionTimedOut)
	// The session is gone: a resume is refused with op 9 false.
	c2 := dial(t, emu, CompressionNone)
	c2.hello()
	c2.send(opResume, map[string]any{"token": emu.Token(), "session_id": r.SessionID, "seq": 1})
	if m := c2.next(); m.Op != opInvalidSession || string(m.D) != "false" {
		t.Fatalf("resume after timeout: op %d d %s", m.Op, m.D)
	}
}

func TestGatewayHeartbeatsKeepConnectionAlive(t *testing.T) {
	// A 1 s interval: the session times out 1.5 s after its last
	// heartbeat, and a heartbeat every 250 ms leaves 1.25 s for a busy
	// machine's stalls (a 100 ms interval failed under load).
	emu := startEmu(t, Config{HeartbeatInterval: time.Second})
	c := dial(t, emu, CompressionNone)
	c.identify(emu.Token(), 0, 1, allTestIntents)
	for i := 0; i < 8; i++ { // 8 × 250 ms is past 1.5 intervals
		c.send(opHeartbeat, 1)
		if m := c.next(); m.Op != opHeartbeatACK {
			t.Fatalf("got op %d", m.Op)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if s := emu.Sessions(); len(s) != 1 || !s[0].Connected {
		t.Fatalf("session dropped: %+v", s)
	}
}

func TestGatewaySendRateLimit4008(t *testing.T) {
	emu := startEmu(t, Config{})
	c := dial(t, emu, CompressionNone)
	c.identify(emu.Token(), 0, 1, 1) // identify counts as the first send
	for i := 0; i < sendLimit; i++ {
		c.send(opHeartbeat, 1)
	}
	c.expectClose(CloseRateLimited)
	if n := len(emu.Recorder().PayloadsWithOp(opHeartbeat)); n != sendLimit {
		t.Fatalf("recorded %d heartbeats, want %d", n, sendLimit)
	}
}

func TestGatewayResumeReplaysMissedDispatches(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionZstd} {
		t.Run(comp.name(), func(t *testing.T) {
			emu := startEmu(t, Config{})
			w := addWorld(t, emu, SnowflakeForShard(0, 1))
			c := dial(t, emu, comp)
			r, _ := c.identify(emu.Token(), 0, 1, allTestIntents)
			last := *c.expectDispatch("GUILD_CREATE").S
			// Drop the TCP connection without a close frame, then make events happen.
			_ = c.conn.UnderlyingConn().Close()
			ctx := ctxTimeout(t)
			if _, err := emu.WaitSession(ctx, func(s SessionInfo) bool { return !s.Connected }); err != nil {
				t.Fatal(err)
			}
			for _, ch := range []Snowflake{w.voice, w.voice2, 0} {
				var err error
				if ch == 0 {
					err = emu.LeaveVoice(w.guild, w.alice)
				} else {
					err = emu.JoinVoice(w.guild, w.alice, ch)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			c2 := dial(t, emu, comp)
			c2.hello()
			c2.send(opResume, map[string]any{"token": emu.Token(), "session_id": r.SessionID, "seq": last})
			want := []Snowflake{w.voice, w.voice2, 0}
			for i, ch := range want {
				m := c2.expectDispatch("VOICE_STATE_UPDATE")
				if *m.S != last+1+i {
					t.Fatalf("replayed seq %d, want %d", *m.S, last+1+i)
				}
				var vs struct {
					ChannelID *Snowflake `json:"channel_id"`
					UserID    Snowflake  `json:"user_id"`
				}
				_ = json.Unmarshal(m.D, &vs)
				got := Snowflake(0)
				if vs.ChannelID != nil {
					got = *vs.ChannelID
				}
				if got != ch || vs.UserID != w.alice {
					t.Fatalf("replay %d: %s", i, m.D)
				}
			}
			m := c2.expectDispatch("RESUMED")
			if *m.S != last+4 {
				t.Fatalf("RESUMED seq %d", *m.S)
			}
			// Live dispatches continue on the new connection.
			if err := emu.JoinVoice(w.guild, w.bob, w.voice); err != nil {
				t.Fatal(err)
			}
			if m := c2.expectDispatch("VOICE_STATE_UPDATE"); *m.S != last+5 {
				t.Fatalf("seq after resume %d", *m.S)
			}
			if s := emu.Sessions(); len(s) != 1 || s[0].Resumes != 1 || s[0].Replayed != 3 || s[0].ID != r.SessionID {
				t.Fatalf("sessions: %+v", s)
			}
		})
	}
}

func TestGatewayResumeRefusals(t *testing.T) {
	emu := startEmu(t, Config{})
	c := dial(t, emu, CompressionNone)
	r, seq := c.identify(emu.Token(), 0, 1, allTestIntents)
	_ = c.conn.UnderlyingConn().Close()
	ctx := ctxTimeout(t)
	if _, err := emu.WaitSession(ctx, func(s SessionInfo) bool { return !s.Connected }); err != nil {
		t.Fatal(err)
	}
	t.Run("unknown session", func(t *testing.T) {
		c := dial(t, emu, CompressionNone)
		c.hello()
		c.send(opResume, map[string]any{"token": emu.Token(), "session_id": "nope", "seq": 1})
		if m := c.next(); m.Op != opInvalidSession || string(m.D) != "false" {
			t.Fatalf("op %d d %s", m.Op, m.D)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		c := dial(t, emu, CompressionNone)
		c.hello()
		c.send(opResume, map[string]any{"token": "x", "session_id": r.SessionID, "seq": seq})
		c.expectClose(CloseAuthenticationFailed)
	})
	t.Run("seq from the future", func(t *testing.T) {
		c := dial(t, emu, CompressionNone)
		c.hello()
		c.send(opResume, map[string]any{"token": emu.Token(), "session_id": r.SessionID, "seq": seq + 100})
		c.expectClose(CloseInvalidSeq)
		if len(emu.Sessions()) != 0 {
			t.Fatal("session survived an invalid seq")
		}
	})
}

func TestGatewayNormalCloseEndsSession(t *testing.T) {
	emu := startEmu(t, Config{})
	c := dial(t, emu, CompressionNone)
	c.identify(emu.Token(), 0, 1, allTestIntents)
	_ = c.conn.WriteMessage(8, closeMessage(1000))
	ctx := ctxTimeout(t)
	if err := emu.waitFor(ctx, func() bool { return len(emu.sessions) == 0 }); err != nil {
		t.Fatal("session still resumable after a 1000 close")
	}
}

func TestGatewayVoiceStateUpdate(t *testing.T) {
	emu := startEmu(t, Config{Shards: 2, VoiceEndpoint: "127.0.0.1:9"})
	mine := addWorld(t, emu, SnowflakeForShard(0, 2))
	other := addWorld(t, emu, SnowflakeForShard(1, 2))
	c := dial(t, emu, CompressionZlib)
	r, _ := c.identify(emu.Token(), 0, 2, allTestIntents)
	if len(r.Guilds) != 1 || r.Guilds[0].ID != mine.guild {
		t.Fatalf("shard 0 got guilds %+v", r.Guilds)
	}
	c.expectDispatch("GUILD_CREATE")

	// Wrong shard: recorded and ignored.
	c.send(opVoiceState, map[string]any{"guild_id": other.guild, "channel_id": other.voice, "self_mute": false, "self_deaf": true})
	ctx := ctxTimeout(t)
	if _, err := emu.WaitError(ctx, ErrWrongShard); err != nil {
		t.Fatal(err)
	}
	if ws := emu.WrongShard(); len(ws) != 1 || ws[0].GuildID != other.guild || ws[0].Shard != 0 {
		t.Fatalf("wrong shard errors: %+v", ws)
	}

	c.send(opVoiceState, map[string]any{"guild_id": mine.guild, "channel_id": mine.voice, "self_mute": false, "self_deaf": true})
	vsu := c.expectDispatch("VOICE_STATE_UPDATE")
	var vs struct {
		GuildID   Snowflake `json:"guild_id"`
		ChannelID Snowflake `json:"channel_id"`
		UserID    Snowflake `json:"user_id"`
		SessionID string    `json:"session_id"`
		SelfDeaf  bool      `json:"self_deaf"`
		Member    struct {
			User struct {
				ID Snowflake `json:"id"`
			} `json:"user"`
		} `json:"member"`
	}
	_ = json.Unmarshal(vsu.D, &vs)
	if vs.UserID != emu.BotUserID() || vs.ChannelID != mine.voice || vs.SessionID != r.SessionID || !vs.SelfDeaf || vs.Member.User.ID != emu.BotUserID() || vs.GuildID != mine.guild {
		t.Fatalf("VOICE_STATE_UPDATE = %s", vsu.D)
	}
	srv := c.expectDispatch("VOICE_SERVER_UPDATE")
	var su struct {
		Token    string    `json:"token"`
		GuildID  Snowflake `json:"guild_id"`
		Endpoint string    `json:"endpoint"`
	}
	_ = json.Unmarshal(srv.D, &su)
	if su.Token == "" || su.GuildID != mine.guild || su.Endpoint != "127.0.0.1:9" {
		t.Fatalf("VOICE_SERVER_UPDATE = %s", srv.D)
	}
	if bv, ok := emu.BotVoiceState(mine.guild); !ok || bv.ChannelID != mine.voice {
		t.Fatalf("bot voice state = %+v %v", bv, ok)
	}

	// Leaving: a state update with a null channel and no server update.
	c.send(opVoiceState, map[string]any{"guild_id": mine.guild, "channel_id": nil, "self_mute": false, "self_deaf": false})
	leave := c.expectDispatch("VOICE_STATE_UPDATE")
	var lv struct {
		ChannelID *Snowflake `json:"channel_id"`
	}
	_ = json.Unmarshal(leave.D, &lv)
	if lv.ChannelID != nil {
		t.Fatalf("leave = %s", leave.D)
	}
	c.send(opHeartbeat, 1)
	if m := c.next(); m.Op != opHeartbeatACK {
		t.Fatalf("after leaving got op %d t %s (a server update?)", m.Op, m.T)
	}
	if _, ok := emu.BotVoiceState(mine.guild); ok {
		t.Fatal("bot still in voice")
	}

	// A text channel is not a voice target.
	c.send(opVoiceState, map[string]any{"guild_id": mine.guild, "channel_id": mine.text})
	if _, err := emu.WaitError(ctx, ErrUnknownChannel); err != nil {
		t.Fatal(err)
	}
}

func TestGatewayIdentifyConcurrency(t *testing.T) {
	for _, tc := range []struct {
		maxConcurrency int
		violations     int
	}{{1, 1}, {2, 0}} {
		t.Run(fmt.Sprint("max_concurrency=", tc.maxConcurrency), func(t *testing.T) {
			emu := startEmu(t, Config{Shards: 2, MaxConcurrency: tc.maxConcurrency})
			a := dial(t, emu, CompressionNone)
			a.identify(emu.Token(), 0, 2, 1)
			b := dial(t, emu, CompressionNone)
			b.identify(emu.Token(), 1, 2, 1)
			if got := len(emu.IdentifyViolations()); got != tc.violations {
				t.Fatalf("violations = %d (%v), want %d", got, emu.IdentifyViolations(), tc.violations)
			}
		})
	}
}

func TestGatewayFaultInjectionOpcodes(t *testing.T) {
	emu := startEmu(t, Config{})
	c := dial(t, emu, CompressionZstd)
	r, _ := c.identify(emu.Token(), 0, 1, allTestIntents)

	if err := emu.Reconnect(0); err != nil {
		t.Fatal(err)
	}
	if m := c.nextNonAck(); m.Op != opReconnect {
		t.Fatalf("got op %d", m.Op)
	}
	if err := emu.InvalidateSession(0, true); err != nil {
		t.Fatal(err)
	}
	if m := c.nextNonAck(); m.Op != opInvalidSession || string(m.D) != "true" {
		t.Fatalf("got op %d d %s", m.Op, m.D)
	}
	if s := emu.Sessions(); len(s) != 1 || s[0].ID != r.SessionID {
		t.Fatal("resumable invalidation dropped the session")
	}
	if err := emu.InvalidateSession(0, false); err != nil {
		t.Fatal(err)
	}
	if m := c.nextNonAck(); m.Op != opInvalidSession || string(m.D) != "false" {
		t.Fatalf("got op %d d %s", m.Op, m.D)
	}
	if len(emu.Sessions()) != 0 {
		t.Fatal("non-resumable invalidation kept the session")
	}

	c2 := dial(t, emu, CompressionNone)
	c2.identify(emu.Token(), 0, 1, allTestIntents)
	if err := emu.CloseShard(0, CloseUnknownError); err != nil {
		t.Fatal(err)
	}
	c2.expectClose(CloseUnknownError)
	if err := emu.Reconnect(5); err == nil {
		t.Fatal("Reconnect of an unconnected shard succeeded")
	}
}

// TestGatewayConcurrentTraffic drives the emulator from many goroutines at once (world
// changes, interactions, REST callbacks, heartbeats) so -race checks the emulator's locking.
func TestGatewayConcurrentTraffic(t *testing.T) {
	emu := startEmu(t, Config{Shards: 2, MaxConcurrency: 2})
	w0 := addWorld(t, emu, SnowflakeForShard(0, 2))
	w1 := addWorld(t, emu, SnowflakeForShard(1, 2))
	registerCommands(t, emu, `[{"name":"play","description":"Play","options":[{"type":3,"name":"query","description":"q","required":true}]}]`)
	clients := []*wsClient{dial(t, emu, CompressionZstd), dial(t, emu, CompressionZlib)}
	clients[0].identify(emu.Token(), 0, 2, allTestIntents)
	clients[1].identify(emu.Token(), 1, 2, allTestIntents)

	const n = 40
	var wg sync.WaitGroup
	answered := make(chan Snowflake, 2*n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			for got < n {
				select {
				case m := <-c.msgs:
					if m.T != "INTERACTION_CREATE" {
						continue
					}
					got++
					var d struct {
						ID    Snowflake `json:"id"`
						Token string    `json:"token"`
					}
					_ = json.Unmarshal(m.D, &d)
					go func() {
						if st, body := post(t, emu, fmt.Sprintf("/interactions/%s/%s/callback", d.ID, d.Token), "", `{"type":4,"data":{"content":"ok"}}`); st != 204 {
							t.Errorf("callback status %d %s", st, body)
						}
						answered <- d.ID
					}()
				case <-time.After(waitLong):
					t.Errorf("client %d: got %d interactions", i, got)
					return
				}
			}
		}()
	}
	var handles sync.Map
	for i := 0; i < n; i++ {
		for _, w := range []testWorld{w0, w1} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = emu.JoinVoice(w.guild, w.bob, w.voice)
				ix, err := emu.InvokeCommand(w.guild, w.alice, w.text, "play", StringOption("query", "x"))
				if err != nil {
					t.Error(err)
					return
				}
				handles.Store(ix.ID, ix)
				_ = emu.Sessions()
				_ = emu.Recorder().Payloads()
			}()
		}
	}
	wg.Wait()
	ctx := ctxTimeout(t)
	count := 0
	handles.Range(func(_, v any) bool {
		ix := v.(*Interaction)
		r, err := ix.Wait(ctx)
		if err != nil || r.Content != "ok" {
			t.Errorf("interaction %s: %+v %v", ix.ID, r, err)
		}
		count++
		return true
	})
	if count != 2*n {
		t.Fatalf("%d handles", count)
	}
}

func TestGatewayGuildLifecycle(t *testing.T) {
	emu := startEmu(t, Config{})
	c := dial(t, emu, CompressionNone)
	c.identify(emu.Token(), 0, 1, allTestIntents|intentGuildMembers)
	w := addWorld(t, emu, SnowflakeForShard(0, 1)) // bot invited while connected
	g := c.expectDispatch("GUILD_CREATE")
	if !strings.Contains(string(g.D), w.guild.String()) {
		t.Fatalf("GUILD_CREATE %s", g.D)
	}
	carol := NewSnowflake()
	if err := emu.AddMember(w.guild, Member{User: User{ID: carol, Username: "carol"}}); err != nil {
		t.Fatal(err)
	}
	if m := c.expectDispatch("GUILD_MEMBER_ADD"); !strings.Contains(string(m.D), `"carol"`) {
		t.Fatalf("GUILD_MEMBER_ADD %s", m.D)
	}
	if err := emu.JoinVoice(w.guild, carol, w.voice); err != nil {
		t.Fatal(err)
	}
	c.expectDispatch("VOICE_STATE_UPDATE")
	if err := emu.RemoveGuild(w.guild); err != nil {
		t.Fatal(err)
	}
	d := c.expectDispatch("GUILD_DELETE")
	if strings.Contains(string(d.D), "unavailable") {
		t.Fatalf("a removal must not say unavailable: %s", d.D)
	}
	if err := emu.JoinVoice(w.guild, carol, w.voice); !errors.Is(err, ErrNoGuild) {
		t.Fatalf("voice in a removed guild: %v", err)
	}
	if err := emu.AddGuild(Guild{ID: 5}); !errors.Is(err, ErrNotSnowflake) {
		t.Fatalf("non-snowflake guild ID accepted: %v", err)
	}
}
