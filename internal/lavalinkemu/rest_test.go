package lavalinkemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRESTStrictness checks each rejection the real server makes, with a
// plain HTTP client so that the emulator is judged on its own.
func TestRESTStrictness(t *testing.T) {
	e := startEmu(t, Config{})
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
		{"partial voice: no session", "PATCH", players + "1", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e"}}, nil, 400, "Partial Lavalink voice state"},
		{"encoded and identifier", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded, "identifier": "x"}}, nil, 400, "Cannot specify both encodedTrack and identifier"},
		{"track and encodedTrack", "PATCH", players + "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}, "encodedTrack": tr.Encoded}, nil, 400, "Cannot specify both track and encodedTrack/identifier"},
		{"end time zero", "PATCH", players + "1", map[string]any{"endTime": 0}, nil, 400, "End time must be greater than 0"},
		{"bad json", "PATCH", players + "1", `{"volume":`, nil, 400, "JSON parse error"},
		{"filters not an object", "PATCH", players + "1", map[string]any{"filters": []int{1}}, nil, 400, "filters"},
		{"bad noReplace", "PATCH", players + "1?noReplace=maybe", map[string]any{"volume": 5}, nil, 400, "boolean"},
		{"playlist identifier", "PATCH", players + "2", map[string]any{"track": map[string]any{"identifier": "ytsearch:x"}}, nil, 400, "Cannot play a playlist or search result"},
		{"no match identifier", "PATCH", players + "2", map[string]any{"track": map[string]any{"identifier": "nothing"}}, nil, 400, "No matches found for identifier"},
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

	p := patch(t, e, sid, "7", map[string]any{"track": map[string]any{"encoded": tr.Encoded}}, 200)
	if p.State.Connected || p.State.Ping != -1 || p.Voice["channelId"] != nil || p.Voice["token"] != "" {
		t.Fatalf("player before voice: %+v", p)
	}
	c.waitEvent("TrackStartEvent")
	// Without voice nothing pulls audio: after many playerUpdate-worthy
	// changes the position is still 0.
	for i := 0; i < 3; i++ {
		if p = patch(t, e, sid, "7", map[string]any{"volume": 10 + i}, 200); p.State.Position != 0 {
			t.Fatalf("unconnected player advanced to %d", p.State.Position)
		}
	}

	p = patch(t, e, sid, "7", map[string]any{"voice": map[string]any{"token": "t", "endpoint": "e", "sessionId": "s"}}, 200)
	if !p.State.Connected || p.Voice["token"] != "t" || p.Voice["channelId"] != nil {
		t.Fatalf("player after voice without channel: %+v", p)
	}
	raw, _ := json.Marshal(p.Voice)
	if !strings.Contains(string(raw), `"channelId":null`) {
		t.Fatalf("voice echo %s: channelId must be null", raw)
	}
	p = patch(t, e, sid, "7", map[string]any{"voice": fullVoice}, 200)
	if p.Voice["channelId"] != "42" {
		t.Fatalf("voice echo %+v", p.Voice)
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
	if code != 200 || st.Players != 1 || st.PlayingPlayers != 0 || st.CPU.SystemLoad != 0.75 || st.FrameStats != nil || st.Op != "" {
		t.Fatalf("stats %s", raw)
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
