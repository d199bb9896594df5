package lavalinkemu

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const (
	testPassword = "youshallnotpass"
	testUserID   = "123456789012345678"
	// waitTimeout bounds every wait for an event. It is generous on purpose:
	// tests assert on what happens, never on how fast.
	waitTimeout = 5 * time.Second
)

func startEmu(t *testing.T, cfg Config) *Emulator {
	t.Helper()
	if cfg.Password == "" {
		cfg.Password = testPassword
	}
	if cfg.CleanupThreshold == 0 {
		// lavaplayer's minute of track time is 60 ms of wall time at
		// 1000x: a busy machine's pause between a test's calls would end
		// a track still waiting for its voice. Tests of the cleanup set it.
		cfg.CleanupThreshold = 10 * time.Hour
	}
	e, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// noAuth as a header value makes doREST omit the header entirely.
const noAuth = "\x00omit"

// doREST sends a request with a plain net/http client and returns status and
// body. Authorization defaults to the right password.
func doREST(t *testing.T, e *Emulator, method, path string, body any, hdr map[string]string) (int, []byte) {
	t.Helper()
	code, _, raw := doRESTHeader(t, e, method, path, body, hdr)
	return code, raw
}

// doRESTHeader is doREST that also returns the response headers.
func doRESTHeader(t *testing.T, e *Emulator, method, path string, body any, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", testPassword)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == noAuth {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

func mustJSON[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

// wsMsg is a superset of every websocket message, for plain-client tests.
type wsMsg struct {
	Op             string         `json:"op"`
	Type           string         `json:"type"`
	GuildID        string         `json:"guildId"`
	SessionID      string         `json:"sessionId"`
	Resumed        bool           `json:"resumed"`
	Reason         string         `json:"reason"`
	Track          *Track         `json:"track"`
	State          *playerState   `json:"state"`
	ThresholdMs    int64          `json:"thresholdMs"`
	Code           int            `json:"code"`
	Exception      *Exception     `json:"exception"`
	Players        int            `json:"players"`
	PlayingPlayers int            `json:"playingPlayers"`
	CPU            cpuStats       `json:"cpu"`
	FrameStats     *frameStats    `json:"frameStats"`
	Extra          map[string]any `json:"-"`
}

func (m wsMsg) is(op, typ string) bool { return m.Op == op && m.Type == typ }

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	resp *http.Response
	msgs chan wsMsg
	done chan struct{}
}

func wsHeader(sessionID string) http.Header {
	h := http.Header{}
	h.Set("Authorization", testPassword)
	h.Set("User-Id", testUserID)
	h.Set("Client-Name", "lavalinkemu-test/1.0")
	if sessionID != "" {
		h.Set("Session-Id", sessionID)
	}
	return h
}

func dialWS(t *testing.T, e *Emulator, h http.Header) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, e.WebsocketURL(), h)
	if err != nil {
		if resp != nil {
			return &wsClient{resp: resp}, err
		}
		return nil, err
	}
	c := &wsClient{t: t, conn: conn, resp: resp, msgs: make(chan wsMsg, 10000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m wsMsg
			if err := json.Unmarshal(data, &m); err != nil {
				t.Errorf("bad websocket message %s: %v", data, err)
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { _ = conn.Close() })
	return c, nil
}

// connectWS dials and returns the client with its ready message consumed.
func connectWS(t *testing.T, e *Emulator, sessionID string) (*wsClient, wsMsg) {
	t.Helper()
	c, err := dialWS(t, e, wsHeader(sessionID))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ready := c.next()
	if ready.Op != "ready" {
		t.Fatalf("first message %+v, want ready", ready)
	}
	return c, ready
}

func (c *wsClient) next() wsMsg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		c.t.Fatalf("no websocket message within %v", waitTimeout)
		return wsMsg{}
	}
}

// waitFor skips messages until one matches; the skipped ones are returned too
// so tests can assert on what came before.
func (c *wsClient) waitFor(match func(wsMsg) bool) (wsMsg, []wsMsg) {
	c.t.Helper()
	var skipped []wsMsg
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-c.msgs:
			if match(m) {
				return m, skipped
			}
			skipped = append(skipped, m)
		case <-deadline:
			c.t.Fatalf("no matching websocket message within %v; saw %+v", waitTimeout, skipped)
			return wsMsg{}, nil
		}
	}
}

func (c *wsClient) waitEvent(typ string) wsMsg {
	c.t.Helper()
	m, _ := c.waitFor(func(m wsMsg) bool { return m.is("event", typ) })
	return m
}

// events drains what arrives within d, for asserting that something did NOT
// happen after the state that would cause it was reached.
func (c *wsClient) drain(d time.Duration) []wsMsg {
	var out []wsMsg
	deadline := time.After(d)
	for {
		select {
		case m := <-c.msgs:
			out = append(out, m)
		case <-deadline:
			return out
		}
	}
}

var fullVoice = map[string]any{"token": "tok", "endpoint": "voice.example:443", "sessionId": "vsess", "channelId": "42"}

// loadOne resolves an identifier that yields a single track or a search.
func loadOne(t *testing.T, e *Emulator, identifier string) Track {
	t.Helper()
	code, raw := doREST(t, e, "GET", "/v4/loadtracks?identifier="+url.QueryEscape(identifier), nil, nil)
	if code != 200 {
		t.Fatalf("loadtracks %q: %d %s", identifier, code, raw)
	}
	res := mustJSON[struct {
		LoadType string          `json:"loadType"`
		Data     json.RawMessage `json:"data"`
	}](t, raw)
	switch res.LoadType {
	case LoadTrack:
		return mustJSON[Track](t, res.Data)
	case LoadSearch:
		return mustJSON[[]Track](t, res.Data)[0]
	}
	t.Fatalf("loadtracks %q: loadType %s", identifier, res.LoadType)
	return Track{}
}

// playingPlayer creates a connected player in a fresh session and starts t on
// it; messages up to the playerUpdate after TrackStart are consumed.
func playingPlayer(t *testing.T, e *Emulator, guild string, track Track) (*wsClient, string) {
	t.Helper()
	c, ready := connectWS(t, e, "")
	patch(t, e, ready.SessionID, guild, map[string]any{"voice": fullVoice}, 200)
	patch(t, e, ready.SessionID, guild, map[string]any{"track": map[string]any{"encoded": track.Encoded}}, 200)
	c.waitEvent("TrackStartEvent")
	// LavalinkPlayer.play follows TrackStart with a playerUpdate.
	c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" })
	return c, ready.SessionID
}

func patch(t *testing.T, e *Emulator, sid, guild string, body any, want int) playerJSONForTest {
	t.Helper()
	code, raw := doREST(t, e, "PATCH", "/v4/sessions/"+sid+"/players/"+guild, body, nil)
	if code != want {
		t.Fatalf("PATCH player %v: status %d %s, want %d", body, code, raw, want)
	}
	if code != 200 {
		return playerJSONForTest{}
	}
	return mustJSON[playerJSONForTest](t, raw)
}

type playerJSONForTest struct {
	GuildID string          `json:"guildId"`
	Track   *Track          `json:"track"`
	Volume  int             `json:"volume"`
	Paused  bool            `json:"paused"`
	State   playerState     `json:"state"`
	Voice   map[string]any  `json:"voice"`
	Filters json.RawMessage `json:"filters"`
}

// waitUntil polls cond: used for state that has no event to wait on (the
// emulator's own bookkeeping), never to measure time.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func onlySession(t *testing.T, e *Emulator) SessionInfo {
	t.Helper()
	ss := e.Sessions()
	if len(ss) != 1 {
		t.Fatalf("sessions = %+v, want exactly one", ss)
	}
	return ss[0]
}
