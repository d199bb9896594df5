package lavalinkemu

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRESTStrictness checks each rejection the real server makes, with a
// plain HTTP client so that the emulator is judged on its own.
func TestRESTStrictness(t *testing.T) {
	const broken = "https://example.com/broken.mp3"
	e := startEmu(t, Config{BrokenIdentifier: broken})
	_, ready := connectWS(t, e, "")
	sid := ready.SessionID
	tr := loadOne(t, e, "ytsearch:strict")
	players := "/v4/sessions/" + sid + "/players/"

	for _, tc := range []struct {
		name    string
		method  string
		path    string
		body    any
		hdr     map[string]string
		status  int
		message string // substring of the error message; "" for bodiless
	}{
		{"missing password", "GET", "/v4/info", nil, map[string]string{"Authorization": noAuth}, 401, ""},
		{"wrong password", "GET", "/v4/info", nil, map[string]string{"Authorization": "nope"}, 403, ""},
		{"wrong password on /version", "GET", "/version", nil, map[string]string{"Authorization": "nope"}, 403, ""},
		{"unknown session", "GET", "/v4/sessions/nosuchsession000/players", nil, nil, 404, "Session not found"},
		{"unknown session patch", "PATCH", "/v4/sessions/nosuchsession000/players/1", map[string]any{"volume": 5}, nil, 404, "Session not found"},
		{"unknown player", "GET", players + "1", nil, nil, 404, "Player not found"},
		{"guild not a number", "GET", players + "abc", nil, nil, 400, "long"},
		{"partial voice: no endpoint", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "t", "sessionId": "s"}}, nil, 400, "Partial Lavalink voice state"},
		{"partial voice: empty token", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "", "endpoint": "e", "sessionId": "s"}}, nil, 400, "Partial Lavalink voice state"},
		{"partial voice: no session", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e", "channelId": "1"}}, nil, 400, "Partial Lavalink voice state"},
		{"partial voice: no channel", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e", "sessionId": "s"}}, nil, 400, "Partial Lavalink voice state: VoiceState(token=t, endpoint=e, sessionId=s, channelId=null)"},
		{"partial voice: null channel", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e", "sessionId": "s", "channelId": nil}}, nil, 400, "channelId=null"},
		{"partial voice: empty channel", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e", "sessionId": "s", "channelId": ""}}, nil, 400, "channelId=)"},
		{"userData a string", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded, "userData": "x"}}, nil, 400, "userData must be an object"},
		{"userData a number", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded, "userData": 7}}, nil, 400, "userData must be an object"},
		{"userData an array", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded, "userData": []int{1}}}, nil, 400, "userData must be an object"},
		{"userData null", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded, "userData": nil}}, nil, 400, "userData must be an object"},
		{"userData null without track", "PATCH", players + "1", map[string]any{"track": map[string]any{"userData": nil}}, nil, 400, "userData must be an object"},
		{"encoded and identifier", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded, "identifier": "x"}}, nil, 400, "Cannot specify both encodedTrack and identifier"},
		{"track and encodedTrack", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}, "encodedTrack": tr.Encoded}, nil, 400, "Cannot specify both track and encodedTrack/identifier"},
		{"end time zero", "PATCH", players + "1", map[string]any{"endTime": 0}, nil, 400, "End time must be greater than 0"},
		{"bad json", "PATCH", players + "1", `{"volume":`, nil, 400, "JSON parse error"},
		{"filters not an object", "PATCH", players + "1", map[string]any{"filters": []int{1}}, nil, 400, "filters"},
		{"bad noReplace", "PATCH", players + "1?noReplace=maybe", map[string]any{"volume": 5}, nil, 400, "boolean"},
		{"playlist identifier", "PATCH", players + "2", map[string]any{"track": map[string]any{"identifier": "ytsearch:x"}}, nil, 400, "Cannot play a playlist or search result"},
		{"no match identifier", "PATCH", players + "2", map[string]any{"track": map[string]any{"identifier": "nothing"}}, nil, 400, "No matches found for identifier"},
		{"identifier fails to load", "PATCH", players + "2", map[string]any{"track": map[string]any{"identifier": broken}}, nil, 400, "This video is unavailable"},
		{"forged encoded track", "PATCH", players + "2", map[string]any{"track": map[string]any{"encoded": "QAAAAQM="}}, nil, 500, "Failed to decode track"},
		{"negative resume timeout", "PATCH", "/v4/sessions/" + sid, map[string]any{"timeout": -1}, nil, 400, "Timeout must be greater than or equal to 0"},
		{"decodetrack without track", "GET", "/v4/decodetrack", nil, nil, 400, "No track to decode provided"},
		{"decodetrack garbage", "GET", "/v4/decodetrack?encodedTrack=AAAA", nil, nil, 500, "Failed to decode track"},
		{"decodetracks empty", "POST", "/v4/decodetracks", []string{}, nil, 400, "No tracks to decode provided"},
		{"decodetracks one bad", "POST", "/v4/decodetracks", []string{tr.Encoded, "AAAA"}, nil, 500, "Failed to decode track"},
		{"loadtracks without identifier", "GET", "/v4/loadtracks", nil, nil, 400, "identifier"},
		{"unknown route", "GET", "/v4/nope", nil, nil, 404, ""},
		{"wrong method", "PUT", "/v4/info", nil, nil, 405, "not supported"},
		{"wrong method with params", "POST", players + "1", nil, nil, 405, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := doREST(t, e, tc.method, tc.path, tc.body, tc.hdr)
			if code != tc.status {
				t.Fatalf("status %d (%s), want %d", code, raw, tc.status)
			}
			if tc.status == 401 || tc.status == 403 {
				// Lavalink's auth filter answers with a bare status.
				if len(raw) != 0 {
					t.Fatalf("auth failure has a body: %s", raw)
				}
				return
			}
			eb := mustJSON[ErrorBody](t, raw)
			wantPath, _, _ := strings.Cut(tc.path, "?")
			if eb.Status != tc.status || eb.Error != http.StatusText(tc.status) || eb.Path != wantPath || eb.Timestamp == 0 || eb.Trace != "" {
				t.Fatalf("error body %+v", eb)
			}
			if !strings.Contains(eb.Message, tc.message) {
				t.Fatalf("message %q does not contain %q", eb.Message, tc.message)
			}
		})
	}
	// Validation failures happen before the player is created; track load
	// failures after (guild 2), as in PlayerRestHandler.
	if ps := e.Players(sid); len(ps) != 1 || ps[0].GuildID != 2 || ps[0].Track != nil {
		t.Fatalf("players after rejected requests: %+v", ps)
	}
}

func TestRESTErrorTrace(t *testing.T) {
	e := startEmu(t, Config{})
	code, raw := doREST(t, e, "GET", "/v4/sessions/none/players?trace=true", nil, nil)
	eb := mustJSON[ErrorBody](t, raw)
	if code != 404 || eb.Trace == "" {
		t.Fatalf("?trace=true: %d %+v", code, eb)
	}
}

// TestRESTVoiceAndConnected: a player is connected only after a full voice
// state, its clock does not run before that, and the stored voice is echoed
// with channelId null when the client sent none (never "").
func TestRESTVoiceAndConnected(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	tr := loadOne(t, e, "ytsearch:voice")

	_, raw := doREST(t, e, "PATCH", "/v4/sessions/"+sid+"/players/7", map[string]any{"track": map[string]any{"encoded": tr.Encoded}}, nil)
	p := mustJSON[playerJSONForTest](t, raw)
	if p.State.Connected || p.State.Ping != -1 || p.Voice["channelId"] != nil || p.Voice["token"] != "" {
		t.Fatalf("player before voice: %+v", p)
	}
	if !strings.Contains(string(raw), `"channelId":null`) {
		t.Fatalf("player before voice %s: channelId must be null", raw)
	}
	c.waitEvent("TrackStartEvent")
	// Without voice nothing pulls audio: after many playerUpdate-worthy
	// changes the position is still 0.
	for i := 0; i < 3; i++ {
		if p = patch(t, e, sid, "7", map[string]any{"volume": 10 + i}, 200); p.State.Position != 0 {
			t.Fatalf("unconnected player advanced to %d", p.State.Position)
		}
	}

	// Lavalink 4.2 refuses a voice state without a channel.
	patch(t, e, sid, "7", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e", "sessionId": "s"}}, 400)
	p = patch(t, e, sid, "7", map[string]any{"voice": fullVoice}, 200)
	if !p.State.Connected || p.Voice["token"] != "tok" || p.Voice["channelId"] != "42" {
		t.Fatalf("player after voice: %+v", p)
	}
	// Connected, the clock runs and the 1000x track ends.
	end := c.waitEvent("TrackEndEvent")
	if end.Reason != EndFinished {
		t.Fatalf("end %+v", end)
	}
}

func TestRESTVolumeClampedLikeLavaplayer(t *testing.T) {
	e := startEmu(t, Config{})
	_, ready := connectWS(t, e, "")
	for in, want := range map[int]int{-5: 0, 0: 0, 200: 200, 1000: 1000, 5000: 1000} {
		if p := patch(t, e, ready.SessionID, "9", map[string]any{"volume": in}, 200); p.Volume != want {
			t.Errorf("volume %d -> %d, want %d", in, p.Volume, want)
		}
	}
}

// TestRESTPatchOrder: like PlayerRestHandler, fields before the track are
// applied even when the track then fails to decode.
func TestRESTPatchOrder(t *testing.T) {
	e := startEmu(t, Config{})
	_, ready := connectWS(t, e, "")
	patch(t, e, ready.SessionID, "9", map[string]any{"volume": 33, "track": map[string]any{"encoded": "AAAA"}}, 500)
	ps := e.Players(ready.SessionID)
	if len(ps) != 1 || ps[0].Volume != 33 || ps[0].Track != nil {
		t.Fatalf("players %+v", ps)
	}
}

func TestRESTPlayersListAndDelete(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	tr := loadOne(t, e, "https://example.com/track/x.mp3")
	patch(t, e, sid, "5", map[string]any{"voice": fullVoice, "track": map[string]any{"encoded": tr.Encoded, "userData": map[string]any{"requester": "u1"}}, "filters": map[string]any{"volume": 0.5}}, 200)
	patch(t, e, sid, "6", map[string]any{"volume": 50}, 200)
	c.waitEvent("TrackStartEvent")

	code, raw := doREST(t, e, "GET", "/v4/sessions/"+sid+"/players", nil, nil)
	list := mustJSON[[]playerJSONForTest](t, raw)
	if code != 200 || len(list) != 2 || list[0].GuildID != "5" || list[1].GuildID != "6" {
		t.Fatalf("players: %d %s", code, raw)
	}
	if string(list[0].Filters) != `{"volume":0.5}` || list[0].Track == nil || string(list[0].Track.UserData) != `{"requester":"u1"}` {
		t.Fatalf("player 5 %s", raw)
	}
	if list[1].Track != nil || string(list[1].Filters) != `{}` {
		t.Fatalf("player 6 %s", raw)
	}

	code, _ = doREST(t, e, "DELETE", "/v4/sessions/"+sid+"/players/5", nil, nil)
	if code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	// lavaplayer's destroy stops the track, and the socket is still open.
	if end := c.waitEvent("TrackEndEvent"); end.Reason != EndStopped || end.GuildID != "5" {
		t.Fatalf("end after DELETE %+v", end)
	}
	if code, _ = doREST(t, e, "GET", "/v4/sessions/"+sid+"/players/5", nil, nil); code != 404 {
		t.Fatalf("GET deleted player: %d", code)
	}
	if code, _ = doREST(t, e, "DELETE", "/v4/sessions/"+sid+"/players/5", nil, nil); code != 204 {
		t.Fatalf("DELETE twice: %d", code)
	}
}

func TestRESTIdentifierTrackAndStats(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	p := patch(t, e, ready.SessionID, "8", map[string]any{"track": map[string]any{"identifier": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"}, "paused": true}, 200)
	if p.Track == nil || p.Track.Info.Identifier != "dQw4w9WgXcQ" || !p.Paused {
		t.Fatalf("player %+v", p)
	}
	c.waitEvent("TrackStartEvent")
	e.SetLoad(0.75, 120)
	code, raw := doREST(t, e, "GET", "/v4/stats", nil, nil)
	st := mustJSON[wsMsg](t, raw)
	if code != 200 || st.Players != 1 || st.PlayingPlayers != 0 || st.CPU.SystemLoad != 0.75 || st.Op != "" {
		t.Fatalf("stats %s", raw)
	}
	// StatsData's frameStats defaults to null and Lavalink omits defaults:
	// the key is absent over REST (the websocket sends it, null or not).
	if strings.Contains(string(raw), "frameStats") {
		t.Fatalf("REST stats %s must not have frameStats", raw)
	}
}

func TestRESTVersionAndInfo(t *testing.T) {
	e := startEmu(t, Config{Version: "4.1.2-rc1"})
	code, raw := doREST(t, e, "GET", "/version", nil, nil)
	if code != 200 || string(raw) != "4.1.2-rc1" {
		t.Fatalf("version %d %q", code, raw)
	}
	code, raw = doREST(t, e, "GET", "/v4/info", nil, nil)
	info := mustJSON[struct {
		Version struct {
			Semver            string
			Major, Minor, Pat int
			PreRelease        *string
		}
		BuildTime int64
	}](t, raw)
	if code != 200 || info.Version.Major != 4 || info.Version.Minor != 1 || info.Version.PreRelease == nil || *info.Version.PreRelease != "rc1" || info.BuildTime == 0 {
		t.Fatalf("info %s", raw)
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if e, err := Start(t.Context(), Config{Addr: addr}); err == nil {
			e.Close()
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
}

// TestRESTLoadEmptyHasNullData: Lavalink's NoMatches serializes its data as
// null, whatever the API documentation's {} says.
func TestRESTLoadEmptyHasNullData(t *testing.T) {
	e := startEmu(t, Config{})
	for _, id := range []string{"plain words", "ytsearch:   ", "https://www.youtube.com/watch?v=short"} {
		code, raw := doREST(t, e, "GET", "/v4/loadtracks?identifier="+url.QueryEscape(id), nil, nil)
		if code != 200 || string(raw) != `{"loadType":"empty","data":null}` {
			t.Errorf("%q: %d %s", id, code, raw)
		}
	}
}

// TestRESTAPIVersionHeader: every HTTP response carries Lavalink-Api-Version,
// bodiless auth failures, errors, injected faults and handshakes included.
func TestRESTAPIVersionHeader(t *testing.T) {
	e := startEmu(t, Config{})
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
	}{
		{"version", "GET", "/version", nil, 200},
		{"info", "GET", "/v4/info", nil, 200},
		{"bad request", "GET", "/v4/loadtracks", nil, 400},
		{"missing password", "GET", "/v4/info", map[string]string{"Authorization": noAuth}, 401},
		{"wrong password", "GET", "/v4/info", map[string]string{"Authorization": "nope"}, 403},
		{"unknown route", "GET", "/v4/nope", nil, 404},
		{"unknown session", "GET", "/v4/sessions/nosuchsession000/players", nil, 404},
		{"wrong method", "PUT", "/v4/info", nil, 405},
		{"handshake without upgrade", "GET", "/v4/websocket", map[string]string{"User-Id": testUserID}, 400},
		{"handshake wrong password", "GET", "/v4/websocket", map[string]string{"Authorization": "nope"}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, raw := doRESTHeader(t, e, tc.method, tc.path, nil, tc.hdr)
			if code != tc.status || h.Values(apiVersionHeader) == nil || h.Values(apiVersionHeader)[0] != "4" || len(h.Values(apiVersionHeader)) != 1 {
				t.Fatalf("%d %v %s", code, h, raw)
			}
		})
	}
	t.Run("injected failure", func(t *testing.T) {
		e.FailREST(1, 503)
		if code, h, _ := doRESTHeader(t, e, "GET", "/v4/stats", nil, nil); code != 503 || h.Get(apiVersionHeader) != "4" {
			t.Fatalf("%d %v", code, h)
		}
	})
	t.Run("handshake", func(t *testing.T) {
		c, err := dialWS(t, e, wsHeader(""))
		if err != nil {
			t.Fatal(err)
		}
		if c.resp.StatusCode != 101 || c.resp.Header.Get(apiVersionHeader) != "4" {
			t.Fatalf("%d %v", c.resp.StatusCode, c.resp.Header)
		}
	})
}

// TestRESTVoiceReconnectOnlyWhenChanged: like Lavalink, an unchanged voice
// state does not reconnect (no playerUpdate from the new connection), and
// any changed field, the channel included, does. A raw marker message after
// each request shows what the request produced, without waiting for time.
func TestRESTVoiceReconnectOnlyWhenChanged(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	with := func(k, v string) map[string]any {
		m := map[string]any{}
		for k, v := range fullVoice {
			m[k] = v
		}
		m[k] = v
		return m
	}
	// A player without a track gets no periodic playerUpdates, so every one
	// seen comes from a connection.
	for i, tc := range []struct {
		name       string
		voice      map[string]any
		reconnects bool
	}{
		{"first voice", fullVoice, true},
		{"same voice", fullVoice, false},
		{"same voice again", with("token", "tok"), false},
		{"new token", with("token", "tok2"), true},
		{"new endpoint", with("endpoint", "voice2.example:443"), true},
		{"new session", with("sessionId", "vsess2"), true},
		{"new channel", with("channelId", "43"), true},
		{"back to the first", fullVoice, true},
	} {
		patch(t, e, sid, "1", map[string]any{"voice": tc.voice}, 200)
		marker := fmt.Sprintf("marker-%d", i)
		if err := e.SendRaw(sid, []byte(`{"op":"`+marker+`"}`)); err != nil {
			t.Fatal(err)
		}
		_, before := c.waitFor(func(m wsMsg) bool { return m.Op == marker })
		updates := 0
		for _, m := range before {
			if m.Op == "playerUpdate" {
				updates++
				if !m.State.Connected {
					t.Errorf("%s: update %+v", tc.name, m.State)
				}
			}
		}
		if want := map[bool]int{true: 1, false: 0}[tc.reconnects]; updates != want {
			t.Errorf("%s: %d playerUpdates from the voice update, want %d", tc.name, updates, want)
		}
	}
	if v := e.Players(sid)[0].Voice; v != (VoiceInfo{"tok", "voice.example:443", "vsess", "42"}) {
		t.Fatalf("stored voice %+v", v)
	}
}

// TestRESTUserData: Lavalink keeps the userData a player update gives and
// echoes it in every event and player response about that track; an update
// with only userData changes the current track's; a track played without it
// has {}.
func TestRESTUserData(t *testing.T) {
	e := startEmu(t, Config{})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	tr := loadOne(t, e, "ytsearch:user data")
	other := loadOne(t, e, "ytsearch:other user data")
	get := func() playerJSONForTest {
		t.Helper()
		code, raw := doREST(t, e, "GET", "/v4/sessions/"+sid+"/players/1", nil, nil)
		if code != 200 {
			t.Fatalf("GET player: %d %s", code, raw)
		}
		return mustJSON[playerJSONForTest](t, raw)
	}

	// Raw, so that the key order is the client's: Lavalink keeps it.
	p := patch(t, e, sid, "1", `{"voice":{"token":"tok","endpoint":"voice.example:443","sessionId":"vsess","channelId":"42"},"paused":true,`+
		`"track":{"encoded":"`+tr.Encoded+`","userData":{"requester":"u1","n":1}}}`, 200)
	if string(p.Track.UserData) != `{"requester":"u1","n":1}` {
		t.Fatalf("PATCH answer userData %s", p.Track.UserData)
	}
	if start := c.waitEvent("TrackStartEvent"); string(start.Track.UserData) != `{"requester":"u1","n":1}` {
		t.Fatalf("TrackStart userData %s", start.Track.UserData)
	}
	// noReplace keeps the current track, userData and all.
	patch(t, e, sid, "1?noReplace=true", map[string]any{"track": map[string]any{"encoded": other.Encoded, "userData": map[string]any{"requester": "nope"}}}, 200)
	if got := get(); got.Track.Info.Identifier != tr.Info.Identifier || string(got.Track.UserData) != `{"requester":"u1","n":1}` {
		t.Fatalf("after noReplace: %+v %s", got.Track.Info, got.Track.UserData)
	}
	p = patch(t, e, sid, "1", map[string]any{"track": map[string]any{"userData": map[string]any{"requester": "u2"}}}, 200)
	if string(p.Track.UserData) != `{"requester":"u2"}` || p.Track.Info.Identifier != tr.Info.Identifier || string(get().Track.UserData) != `{"requester":"u2"}` {
		t.Fatalf("after a userData-only update: %s", p.Track.UserData)
	}
	patch(t, e, sid, "1", map[string]any{"paused": false, "position": tr.Info.Length}, 200)
	if end := c.waitEvent("TrackEndEvent"); end.Reason != EndFinished || string(end.Track.UserData) != `{"requester":"u2"}` {
		t.Fatalf("TrackEnd %s userData %s", end.Reason, end.Track.UserData)
	}
	// Without a track the userData has nowhere to go.
	if p = patch(t, e, sid, "1", map[string]any{"track": map[string]any{"userData": map[string]any{"requester": "u3"}}}, 200); p.Track != nil {
		t.Fatalf("userData-only update without a track: %+v", p.Track)
	}
	patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": other.Encoded}, "paused": true}, 200)
	if start := c.waitEvent("TrackStartEvent"); string(start.Track.UserData) != `{}` {
		t.Fatalf("a track played without userData has %s", start.Track.UserData)
	}
}

// TestRESTNoResume: a server without resuming has no session PATCH, so a
// session cannot become resumable and dies with its socket.
func TestRESTNoResume(t *testing.T) {
	e := startEmu(t, Config{NoResume: true})
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	for _, method := range []string{"PATCH", "GET"} {
		code, raw := doREST(t, e, method, "/v4/sessions/"+sid, map[string]any{"resuming": true, "timeout": 60}, nil)
		eb := mustJSON[ErrorBody](t, raw)
		if code != 404 || eb.Status != 404 || eb.Path != "/v4/sessions/"+sid {
			t.Fatalf("%s session: %d %s", method, code, raw)
		}
	}
	patch(t, e, sid, "1", map[string]any{"volume": 1}, 200)
	if s := onlySession(t, e); s.Resuming || s.Players != 1 {
		t.Fatalf("session %+v", s)
	}
	_ = c.conn.Close()
	waitUntil(t, "the session is destroyed", func() bool { return len(e.Sessions()) == 0 })
	if ps := e.Players(""); len(ps) != 0 {
		t.Fatalf("players outlived their session: %+v", ps)
	}
}
