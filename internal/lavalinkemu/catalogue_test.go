package lavalinkemu

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestCatalogueLoadTypes(t *testing.T) {
	c := catalogue{broken: "ytsearch:broken", searchResults: 5}
	for id, want := range map[string]string{
		"ytsearch:foo":                           LoadSearch,
		"ytmsearch:foo":                          LoadSearch,
		"scsearch:foo":                           LoadSearch,
		"ytsearch:   ":                           LoadEmpty,
		"ytsearch:broken":                        LoadError,
		"https://youtu.be/dQw4w9WgXcQ":           LoadTrack,
		"https://youtu.be/dQw4w9WgXcQ?list=PLx":  LoadPlaylist,
		"https://www.youtube.com/watch?v=short":  LoadEmpty,
		"https://soundcloud.com/artist/song":     LoadTrack,
		"https://soundcloud.com/artist/sets/mix": LoadPlaylist,
		"https://example.com/track/abc":          LoadTrack,
		"https://example.com/my-playlist":        LoadPlaylist,
		"http://example.com/a.mp3?list=1":        LoadPlaylist,
		"spsearch:foo":                           LoadEmpty,
		"local:/etc/passwd":                      LoadEmpty,
		"file:///etc/passwd":                     LoadEmpty,
		"/etc/passwd":                            LoadEmpty,
		"C:\\Windows\\win.ini":                   LoadEmpty,
		"":                                       LoadEmpty,
		"plain words":                            LoadEmpty,
	} {
		if got := c.load(id).LoadType; got != want {
			t.Errorf("load(%q) = %s, want %s", id, got, want)
		}
	}
}

func TestCatalogueIsPureAndTracksDecode(t *testing.T) {
	a, b := catalogue{}, catalogue{searchResults: 5}
	for _, id := range []string{"ytsearch:x", "scsearch:ünïcödé 😀", "https://www.youtube.com/playlist?list=PL1", "https://example.com/track/a"} {
		ra, rb := a.load(id), b.load(id)
		if !reflect.DeepEqual(ra, rb) {
			t.Fatalf("%q resolved differently twice", id)
		}
		var tracks []Track
		switch d := ra.Data.(type) {
		case Track:
			tracks = []Track{d}
		case []Track:
			tracks = d
		case playlistData:
			tracks = d.Tracks
		}
		for _, tr := range tracks {
			info, err := DecodeTrack(tr.Encoded)
			if err != nil || !reflect.DeepEqual(info, tr.Info) {
				t.Fatalf("%q: track %+v does not decode to itself: %+v %v", id, tr.Info, info, err)
			}
			if tr.Info.Length < 60_000 || tr.Info.Length > 360_000 || tr.Info.Length%1000 != 0 {
				t.Fatalf("length %d", tr.Info.Length)
			}
		}
	}
}

// TestDecodeAcrossNodesAndRestarts: like real Lavalink nodes, any emulator
// decodes tracks another one issued, including across a restart; that is
// what lets a bot move a player to another node.
func TestDecodeAcrossNodesAndRestarts(t *testing.T) {
	a := startEmu(t, Config{})
	b := startEmu(t, Config{})
	tr := loadOne(t, a, "ytsearch:failover")
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Emulator{a, b} {
		code, raw := doREST(t, e, "GET", "/v4/decodetrack?encodedTrack="+url.QueryEscape(tr.Encoded), nil, nil)
		if code != 200 || mustJSON[Track](t, raw).Info.Title != tr.Info.Title {
			t.Fatalf("decode on %s: %d %s", e.Addr(), code, raw)
		}
		// disgolink sends the legacy "track" parameter.
		if code, _ := doREST(t, e, "GET", "/v4/decodetrack?track="+url.QueryEscape(tr.Encoded), nil, nil); code != 200 {
			t.Fatalf("decode with track=: %d", code)
		}
	}
}

func TestRecorder(t *testing.T) {
	e := startEmu(t, Config{})
	_, ready := connectWS(t, e, "")
	patch(t, e, ready.SessionID, "1", map[string]any{"volume": 5}, 200)
	doREST(t, e, "GET", "/v4/loadtracks?identifier=ytsearch:rec", nil, map[string]string{"Authorization": "wrong"})

	reqs := e.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	ws, p, lt := reqs[0], reqs[1], reqs[2]
	if ws.Path != "/v4/websocket" || ws.Header.Get("User-Id") != testUserID || ws.Header.Get("Authorization") != Redacted {
		t.Fatalf("handshake %+v", ws)
	}
	if p.Method != "PATCH" || string(p.Body) != `{"volume":5}` || p.Time.Before(ws.Time) {
		t.Fatalf("patch %+v", p)
	}
	// Rejected requests are recorded too, with the wrong password redacted.
	if lt.Query.Get("identifier") != "ytsearch:rec" || lt.Header.Get("Authorization") != Redacted {
		t.Fatalf("loadtracks %+v", lt)
	}
	for _, r := range reqs {
		for _, v := range r.Header.Values("Authorization") {
			if strings.Contains(v, testPassword) || strings.Contains(v, "wrong") {
				t.Fatal("a password leaked into the recording")
			}
		}
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if len(e.Requests()) != 3 {
		t.Fatal("recordings lost on restart")
	}
	e.ResetRequests()
	if len(e.Requests()) != 0 {
		t.Fatal("ResetRequests kept requests")
	}
}

func TestLoadMatchesREST(t *testing.T) {
	e := startEmu(t, Config{BrokenIdentifier: "x:broken"})
	for _, id := range []string{"ytsearch:same", "x:broken", "https://soundcloud.com/a/sets/b", "nothing"} {
		want, _ := json.Marshal(e.Load(id))
		_, got := doREST(t, e, "GET", "/v4/loadtracks?identifier="+url.QueryEscape(id), nil, nil)
		if string(got) != string(want) {
			t.Fatalf("%q: REST %s, Load %s", id, got, want)
		}
	}
}

// TestResolveMatchesDefaultEmulator: Resolve is a default emulator's
// loadtracks, byte for byte, for every kind of answer.
func TestResolveMatchesDefaultEmulator(t *testing.T) {
	e := startEmu(t, Config{})
	for _, id := range []string{"ytsearch:resolve", "scsearch:resolve", "https://youtu.be/dQw4w9WgXcQ",
		"https://www.youtube.com/playlist?list=PLr", "https://example.com/a.mp3", "nothing at all"} {
		want, _ := json.Marshal(Resolve(id))
		_, got := doREST(t, e, "GET", "/v4/loadtracks?identifier="+url.QueryEscape(id), nil, nil)
		if string(got) != string(want) {
			t.Fatalf("%q: REST %s, Resolve %s", id, got, want)
		}
	}
	if n := len(Resolve("ytsearch:five").Data.([]Track)); n != 5 {
		t.Fatalf("a default search has %d results", n)
	}
}

func TestRecorderBound(t *testing.T) {
	e := startEmu(t, Config{MaxRecordedRequests: 2})
	for _, p := range []string{"/v4/info", "/v4/stats", "/version"} {
		doREST(t, e, "GET", p, nil, nil)
	}
	if r := e.Requests(); len(r) != 2 || r[0].Path != "/v4/stats" || r[1].Path != "/version" {
		t.Fatalf("bounded recorder kept %+v", r)
	}
	off := startEmu(t, Config{MaxRecordedRequests: -1})
	doREST(t, off, "GET", "/v4/info", nil, nil)
	if len(off.Requests()) != 0 {
		t.Fatal("disabled recorder recorded")
	}
}

// FuzzPlayerUpdateBody: no PATCH body makes the node panic or answer outside
// Lavalink's statuses, and every error is a Lavalink error object.
func FuzzPlayerUpdateBody(f *testing.F) {
	tr := catalogue{}.load("ytsearch:fuzz").Data.([]Track)[0]
	for _, s := range []string{
		`{}`, `{"volume":50}`, `{"track":{"encoded":"` + tr.Encoded + `"},"position":5}`,
		`{"track":{"encoded":null}}`, `{"voice":{"token":"t","endpoint":"e","sessionId":"s","channelId":"1"}}`,
		`{"encodedTrack":"x","identifier":"y"}`, `{"filters":{"timescale":{"speed":2}}}`, `{"endTime":null}`,
		`{"track":{"identifier":"https://example.com/x.mp3","userData":{"a":1}},"paused":true}`, `null`, `[]`,
	} {
		f.Add(s, false)
	}
	e, err := Start(context.Background(), Config{Password: testPassword})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(e.Close)
	e.mu.Lock()
	s := e.newSessionLocked(1, "fuzz")
	e.mu.Unlock()
	h := e.handler()
	f.Fuzz(func(t *testing.T, body string, noReplace bool) {
		path := "/v4/sessions/" + s.id + "/players/1"
		if noReplace {
			path += "?noReplace=true"
		}
		req := httptest.NewRequest("PATCH", path, strings.NewReader(body))
		req.Header.Set("Authorization", testPassword)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var p playerJSONForTest
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.GuildID != "1" {
				t.Fatalf("200 with body %s", rec.Body)
			}
		case http.StatusBadRequest, http.StatusInternalServerError:
			var eb ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Status != rec.Code || eb.Message == "" {
				t.Fatalf("%d with body %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
