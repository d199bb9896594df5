package discordemu

import (
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/zstd"
)

// This file is a minimal gateway client written for the emulator's own tests: it shares
// no code with disgo, so -race reports here are about the emulator alone.

const waitLong = 10 * time.Second

type gwMsg struct {
	Op int             `json:"op"`
	S  *int            `json:"s"`
	T  string          `json:"t"`
	D  json.RawMessage `json:"d"`
}

type wsClient struct {
	t     *testing.T
	conn  *websocket.Conn
	msgs  chan gwMsg
	close chan int // close code received from the server (or -1 on a non-close error)
}

func startEmu(t *testing.T, cfg Config) *Emulator {
	t.Helper()
	emu, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	return emu
}

func dial(t *testing.T, emu *Emulator, comp Compression) *wsClient {
	t.Helper()
	url := emu.GatewayURL() + "?v=10&encoding=json"
	if comp != CompressionNone {
		url += "&compress=" + string(comp)
	}
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, conn: conn, msgs: make(chan gwMsg, 1024), close: make(chan int, 1)}
	t.Cleanup(func() { _ = conn.Close() })

	// Stream decompression: every binary frame is fed into one pipe, and one JSON decoder
	// reads successive payloads from one decompressor, as a real client must.
	pr, pw := io.Pipe()
	if comp != CompressionNone {
		go func() {
			var r io.Reader
			var err error
			if comp == CompressionZlib {
				r, err = zlib.NewReader(pr)
			} else {
				var d *zstd.Decoder
				d, err = zstd.NewReader(pr, zstd.WithDecoderConcurrency(1))
				r = d
				if d != nil {
					defer d.Close()
				}
			}
			if err != nil {
				return
			}
			dec := json.NewDecoder(r)
			for {
				var m gwMsg
				if dec.Decode(&m) != nil {
					return
				}
				c.msgs <- m
			}
		}()
	}
	go func() {
		defer pw.Close()
		for {
			mt, data, err := conn.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.close <- ce.Code
				} else {
					c.close <- -1
				}
				return
			}
			if comp == CompressionNone {
				if mt != websocket.TextMessage {
					t.Errorf("uncompressed gateway sent message type %d", mt)
				}
				var m gwMsg
				if err := json.Unmarshal(data, &m); err != nil {
					t.Errorf("bad json %q: %v", data, err)
					return
				}
				c.msgs <- m
				continue
			}
			if mt != websocket.BinaryMessage {
				t.Errorf("compressed gateway sent message type %d", mt)
			}
			if comp == CompressionZlib && !isFlushEnd(data) {
				t.Errorf("zlib frame does not end with a sync flush")
			}
			if _, err := pw.Write(data); err != nil {
				return
			}
		}
	}()
	return c
}

func isFlushEnd(b []byte) bool {
	n := len(b)
	return n >= 4 && b[n-4] == 0 && b[n-3] == 0 && b[n-2] == 0xff && b[n-1] == 0xff
}

func (c *wsClient) send(op int, d any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"op": op, "d": d})
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send op %d: %v", op, err)
	}
}

func (c *wsClient) next() gwMsg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case code := <-c.close:
		c.t.Fatalf("connection closed with %d while waiting for a message", code)
	case <-time.After(waitLong):
		c.t.Fatal("timed out waiting for a gateway message")
	}
	return gwMsg{}
}

// nextDispatch skips heartbeat ACKs and returns the next dispatch or control message.
func (c *wsClient) nextNonAck() gwMsg {
	c.t.Helper()
	for {
		m := c.next()
		if m.Op != opHeartbeatACK {
			return m
		}
	}
}

func (c *wsClient) expectDispatch(typ string) gwMsg {
	c.t.Helper()
	m := c.nextNonAck()
	if m.Op != opDispatch || m.T != typ {
		c.t.Fatalf("want dispatch %s, got op %d t %q d %s", typ, m.Op, m.T, m.D)
	}
	return m
}

func (c *wsClient) expectClose(code int) {
	c.t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case <-c.msgs:
		case got := <-c.close:
			if got != code {
				c.t.Fatalf("close code = %d, want %d", got, code)
			}
			return
		case <-deadline:
			c.t.Fatalf("timed out waiting for close %d", code)
		}
	}
}

func (c *wsClient) hello() int {
	c.t.Helper()
	m := c.next()
	if m.Op != opHello {
		c.t.Fatalf("first message op %d, want HELLO", m.Op)
	}
	var d struct {
		HeartbeatInterval int `json:"heartbeat_interval"`
	}
	_ = json.Unmarshal(m.D, &d)
	return d.HeartbeatInterval
}

type readyData struct {
	SessionID        string `json:"session_id"`
	ResumeGatewayURL string `json:"resume_gateway_url"`
	Shard            [2]int `json:"shard"`
	User             struct {
		ID  Snowflake `json:"id"`
		Bot bool      `json:"bot"`
	} `json:"user"`
	Guilds []struct {
		ID          Snowflake `json:"id"`
		Unavailable bool      `json:"unavailable"`
	} `json:"guilds"`
	Application struct {
		ID Snowflake `json:"id"`
	} `json:"application"`
}

// identify performs HELLO → IDENTIFY → READY and returns READY's data and sequence.
func (c *wsClient) identify(token string, shard, count, intents int) (readyData, int) {
	c.t.Helper()
	c.hello()
	c.send(opIdentify, map[string]any{"token": token, "intents": intents, "shard": []int{shard, count},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}})
	m := c.expectDispatch("READY")
	var r readyData
	if err := json.Unmarshal(m.D, &r); err != nil {
		c.t.Fatal(err)
	}
	return r, *m.S
}

const allTestIntents = intentGuilds | intentGuildVoiceStates

// testWorld is one guild with a text channel, two voice channels, a DJ role and two users.
type testWorld struct {
	guild               Snowflake
	text, voice, voice2 Snowflake
	dj                  Snowflake
	alice, bob          Snowflake
}

func addWorld(t *testing.T, emu *Emulator, guildID Snowflake) testWorld {
	t.Helper()
	w := testWorld{guild: guildID, text: NewSnowflake(), voice: NewSnowflake(), voice2: NewSnowflake(),
		dj: NewSnowflake(), alice: NewSnowflake(), bob: NewSnowflake()}
	err := emu.AddGuild(Guild{ID: guildID, Name: "test guild",
		Channels: []Channel{{ID: w.text, Name: "general", Type: ChannelText}, {ID: w.voice, Name: "Music", Type: ChannelVoice}, {ID: w.voice2, Name: "Lounge", Type: ChannelVoice}},
		Roles:    []Role{{ID: w.dj, Name: "DJ", Permissions: PermManageGuild}},
		Members:  []Member{{User: User{ID: w.alice, Username: "alice"}, Roles: []Snowflake{w.dj}}, {User: User{ID: w.bob, Username: "bob"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

var wsDialer = websocket.DefaultDialer

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func closeMessage(code int) []byte { return websocket.FormatCloseMessage(code, "") }
