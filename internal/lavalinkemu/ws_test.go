package lavalinkemu

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestWSHandshakeRejects(t *testing.T) {
	e := startEmu(t, Config{})
	for _, tc := range []struct {
		name   string
		edit   func(http.Header)
		status int
	}{
		{"wrong password", func(h http.Header) { h.Set("Authorization", "nope") }, 401},
		{"missing password", func(h http.Header) { h.Del("Authorization") }, 401},
		{"missing user id", func(h http.Header) { h.Del("User-Id") }, 400},
		{"zero user id", func(h http.Header) { h.Set("User-Id", "0") }, 400},
		{"non-numeric user id", func(h http.Header) { h.Set("User-Id", "bot") }, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := wsHeader("")
			tc.edit(h)
			c, err := dialWS(t, e, h)
			if err == nil {
				t.Fatal("handshake accepted")
			}
			if c == nil || c.resp.StatusCode != tc.status {
				t.Fatalf("handshake error %v, want status %d", err, tc.status)
			}
			if body, _ := io.ReadAll(c.resp.Body); len(body) != 0 {
				t.Fatalf("rejection has a body %q; Lavalink's interceptor sends none", body)
			}
		})
	}
	if len(e.Sessions()) != 0 {
		t.Fatalf("sessions after rejected handshakes: %+v", e.Sessions())
	}
}

var sessionIDPattern = regexp.MustCompile(`^[a-z0-9]{16}$`)

func TestWSHandshakeHeadersAndFirstMessages(t *testing.T) {
	e := startEmu(t, Config{})
	c, err := dialWS(t, e, wsHeader(""))
	if err != nil {
		t.Fatal(err)
	}
	// Lavalink v4 dropped v3's Lavalink-Major-Version for the header every
	// response carries.
	if c.resp.Header.Get("Session-Resumed") != "false" || c.resp.Header.Values(apiVersionHeader)[0] != "4" ||
		len(c.resp.Header.Values(apiVersionHeader)) != 1 || c.resp.Header.Get("Lavalink-Major-Version") != "" {
		t.Fatalf("response headers %v", c.resp.Header)
	}
	ready := c.next()
	if ready.Op != "ready" || ready.Resumed || !sessionIDPattern.MatchString(ready.SessionID) {
		t.Fatalf("first message %+v", ready)
	}
	if st := c.next(); st.Op != "stats" || st.Players != 0 || st.FrameStats != nil {
		t.Fatalf("second message %+v, want stats without frameStats", st)
	}
	s := onlySession(t, e)
	if s.ID != ready.SessionID || s.ClientName != "lavalinkemu-test/1.0" || s.Resuming || s.Timeout != 60 {
		t.Fatalf("session %+v", s)
	}
}

// TestWSResume: a client that closes its socket and reconnects with
// Session-Id gets the same session, ready{resumed:true} first, then the
// messages it missed in order (with the track's userData, and in the event
// log when they happened), then a playerUpdate per player.
func TestWSResume(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	code, raw := doREST(t, e, "PATCH", "/v4/sessions/"+sid, map[string]any{"resuming": true, "timeout": 30}, nil)
	if code != 200 || string(raw) != `{"resuming":true,"timeout":30}` {
		t.Fatalf("PATCH session: %d %s", code, raw)
	}
	tr := loadOne(t, e, "ytsearch:resume plain")
	patch(t, e, sid, "11", map[string]any{"voice": fullVoice, "track": map[string]any{"encoded": tr.Encoded, "userData": map[string]any{"q": 1}}, "position": 1000}, 200)
	c.waitEvent("TrackStartEvent")

	_ = c.conn.Close()
	waitUntil(t, "the session waits for a resume", func() bool {
		ss := e.Sessions()
		return len(ss) == 1 && ss[0].Resumable
	})
	// REST does not reach a session waiting for a resume: Lavalink's
	// socketContext looks in `sessions`, which the closed socket's session
	// left for `resumableSessions` (SocketServer.afterConnectionClosed).
	if code, raw := doREST(t, e, "PATCH", "/v4/sessions/"+sid+"/players/11", map[string]any{"volume": 77}, nil); code != 404 || !strings.Contains(string(raw), `"message":"Session not found"`) {
		t.Fatalf("PATCH player of a session waiting for a resume: %d %s, want 404 Session not found", code, raw)
	}
	if code, _ := doREST(t, e, "GET", "/v4/sessions/"+sid+"/players/11", nil, nil); code != 404 {
		t.Fatalf("GET player of a session waiting for a resume: %d, want 404", code)
	}
	if code, _ := doREST(t, e, "PATCH", "/v4/sessions/"+sid, map[string]any{"resuming": false}, nil); code != 404 {
		t.Fatalf("PATCH a session waiting for a resume: %d, want 404", code)
	}
	if err := e.FailTrack(11, "while away"); err != nil {
		t.Fatal(err)
	}
	// Queued for the client, so logged now.
	if evs := e.PlayerEvents(11); len(evs) != 3 || evs[1].Type != "TrackExceptionEvent" || evs[2].Reason != EndFinished || string(evs[2].UserData) != `{"q":1}` {
		t.Fatalf("event log while away: %+v", evs)
	}

	c2, err := dialWS(t, e, wsHeader(sid))
	if err != nil {
		t.Fatal(err)
	}
	if c2.resp.Header.Get("Session-Resumed") != "true" {
		t.Fatalf("Session-Resumed %q", c2.resp.Header.Get("Session-Resumed"))
	}
	if m := c2.next(); m.Op != "ready" || !m.Resumed || m.SessionID != sid {
		t.Fatalf("first message after resume %+v", m)
	}
	var got []string
	for len(got) < 3 {
		m := c2.next()
		if m.Op == "stats" || (m.Op == "playerUpdate" && len(got) < 2) {
			continue // periodic messages may interleave
		}
		got = append(got, m.Op+"/"+m.Type+"/"+m.Reason)
		if m.Op == "event" && string(m.Track.UserData) != `{"q":1}` {
			t.Fatalf("replayed %s has userData %s", m.Type, m.Track.UserData)
		}
	}
	want := []string{"event/TrackExceptionEvent/", "event/TrackEndEvent/" + EndFinished, "playerUpdate//"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after resume got %v, want %v", got, want)
		}
	}
	if s := onlySession(t, e); s.ID != sid || !s.Connected {
		t.Fatalf("session %+v", s)
	}
	// Resumed, the session is addressable again.
	patch(t, e, sid, "11", map[string]any{"volume": 77}, 200)
	if ps := e.Players(sid); len(ps) != 1 || ps[0].Volume != 77 {
		t.Fatalf("players %+v", ps)
	}
}

func TestWSResumeTimeoutDestroys(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	doREST(t, e, "PATCH", "/v4/sessions/"+sid, map[string]any{"resuming": true, "timeout": 0}, nil)
	patch(t, e, sid, "1", map[string]any{"volume": 1}, 200)
	_ = c.conn.Close()
	waitUntil(t, "the session expires", func() bool { return len(e.Sessions()) == 0 })
	if ps := e.Players(""); len(ps) != 0 {
		t.Fatalf("players outlived their session: %+v", ps)
	}
	c2, err := dialWS(t, e, wsHeader(sid))
	if err != nil {
		t.Fatal(err)
	}
	if m := c2.next(); m.Resumed || m.SessionID == sid || c2.resp.Header.Get("Session-Resumed") != "false" {
		t.Fatalf("resume after timeout: %+v", m)
	}
	if code, _ := doREST(t, e, "GET", "/v4/sessions/"+sid+"/players", nil, nil); code != 404 {
		t.Fatalf("expired session answered %d", code)
	}
}

func TestWSCloseWithoutResumingDestroys(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	patch(t, e, ready.SessionID, "1", map[string]any{"volume": 1}, 200)
	_ = c.conn.Close()
	waitUntil(t, "the session is destroyed", func() bool { return len(e.Sessions()) == 0 })
	if ps := e.Players(""); len(ps) != 0 {
		t.Fatalf("players %+v", ps)
	}
}

// A Session-Id only resumes a session that is waiting for one: not an
// unknown ID, and not a session that still has its websocket.
func TestWSSessionIDThatCannotResume(t *testing.T) {
	e := startEmu(t, Config{})
	_, first := connectWS(t, e, "")
	doREST(t, e, "PATCH", "/v4/sessions/"+first.SessionID, map[string]any{"resuming": true}, nil)
	for _, sid := range []string{"unknownsession00", first.SessionID} {
		c, err := dialWS(t, e, wsHeader(sid))
		if err != nil {
			t.Fatal(err)
		}
		if m := c.next(); m.Resumed || m.SessionID == sid {
			t.Fatalf("Session-Id %s: %+v", sid, m)
		}
	}
	if n := len(e.Sessions()); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
}
