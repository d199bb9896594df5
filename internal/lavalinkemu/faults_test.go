package lavalinkemu

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault injection as a plain HTTP/websocket client sees it. The disgolink
// view of the same faults is in faults_disgolink_test.go.

func TestFaultDropWebsockets(t *testing.T) {
	e := startEmu(t, Config{})
	c1, r1 := connectWS(t, e, "")
	_, r2 := connectWS(t, e, "")
	doREST(t, e, "PATCH", "/v4/sessions/"+r1.SessionID, map[string]any{"resuming": true}, nil)
	patch(t, e, r1.SessionID, "1", map[string]any{"volume": 1}, 200)
	patch(t, e, r2.SessionID, "1", map[string]any{"volume": 1}, 200)

	if n := e.DropWebsockets(); n != 2 {
		t.Fatalf("dropped %d", n)
	}
	ss := e.Sessions()
	if len(ss) != 1 || ss[0].ID != r1.SessionID || !ss[0].Resumable || ss[0].Players != 1 {
		t.Fatalf("after drop: %+v (the resuming session waits, the other is gone)", ss)
	}
	select {
	case <-c1.done:
	case <-time.After(waitTimeout):
		t.Fatal("client connection still open after DropWebsockets")
	}
}

func TestFaultHangREST(t *testing.T) {
	e := startEmu(t, Config{})
	e.Hang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL()+"/v4/info", nil)
	req.Header.Set("Authorization", testPassword)
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request to a hung node: %v, want the client's deadline", err)
	}
	if len(e.RequestsTo("GET", "/v4/info")) != 1 {
		t.Fatal("hung request not recorded")
	}
	// A request in flight when the node recovers is answered.
	done := make(chan int, 1)
	go func() {
		code, _ := doREST(t, e, "GET", "/v4/info", nil, nil)
		done <- code
	}()
	waitUntil(t, "the second request arrives", func() bool { return len(e.RequestsTo("GET", "/v4/info")) == 2 })
	e.Hang(false)
	if code := <-done; code != 200 {
		t.Fatalf("after release: %d", code)
	}
}

func TestFaultHangForReleasesItself(t *testing.T) {
	e := startEmu(t, Config{})
	e.HangFor(50 * time.Millisecond)
	if code, _ := doREST(t, e, "GET", "/v4/stats", nil, nil); code != 200 {
		t.Fatalf("after HangFor: %d", code)
	}
}

func TestFaultHangHoldsWebsocketMessages(t *testing.T) {
	e := startEmu(t, Config{})
	tr := loadOne(t, e, "ytsearch:hang ws")
	c, _ := playingPlayer(t, e, "1", tr)
	e.Hang(true)
	if err := e.FailTrack(1, "held back"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.drain(100 * time.Millisecond) {
		if m.Op == "event" {
			t.Fatalf("event delivered while hung: %+v", m)
		}
	}
	e.Hang(false)
	if m := c.waitEvent("TrackExceptionEvent"); m.Exception.Message != "held back" {
		t.Fatalf("exception %+v", m)
	}
	c.waitEvent("TrackEndEvent")
}

func TestFaultFailREST(t *testing.T) {
	e := startEmu(t, Config{})
	e.FailREST(2, 503)
	for i := 0; i < 2; i++ {
		code, raw := doREST(t, e, "GET", "/v4/loadtracks?identifier=ytsearch:x", nil, nil)
		eb := mustJSON[ErrorBody](t, raw)
		if code != 503 || eb.Status != 503 || eb.Error != "Service Unavailable" || eb.Path != "/v4/loadtracks" {
			t.Fatalf("failure %d: %d %s", i, code, raw)
		}
	}
	if code, _ := doREST(t, e, "GET", "/v4/loadtracks?identifier=ytsearch:x", nil, nil); code != 200 {
		t.Fatalf("third request: %d", code)
	}
	// Handshakes are not REST and are not failed.
	e.FailREST(1, 500)
	connectWS(t, e, "")
	if code, _ := doREST(t, e, "GET", "/v4/stats", nil, nil); code != 500 {
		t.Fatalf("the pending failure was consumed by the handshake: %d", code)
	}
}

func TestFaultFreezePlayer(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000, PlayerUpdateInterval: 5 * time.Millisecond})
	tr := loadOne(t, e, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
	c, sid := playingPlayer(t, e, "1", tr)
	if err := e.FreezePlayer(1); err != nil {
		t.Fatal(err)
	}
	frozenAt := e.Players(sid)[0].Position
	stuck := c.waitEvent("TrackStuckEvent")
	if stuck.ThresholdMs != 10000 || stuck.Track == nil || stuck.Track.Info.Identifier != tr.Info.Identifier {
		t.Fatalf("stuck %+v", stuck)
	}
	// Still frozen: more updates, same position, no second stuck event, no end.
	for i := 0; i < 5; i++ {
		m, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" || m.Op == "event" })
		if m.Op == "event" {
			t.Fatalf("event while frozen: %+v", m)
		}
		if m.State.Position != frozenAt {
			t.Fatalf("frozen player moved from %d to %d", frozenAt, m.State.Position)
		}
	}
	if err := e.UnfreezePlayer(1); err != nil {
		t.Fatal(err)
	}
	if end := c.waitEvent("TrackEndEvent"); end.Reason != EndFinished {
		t.Fatalf("end after unfreeze %+v", end)
	}
	if err := e.FreezePlayer(99); err == nil {
		t.Fatal("freezing a guild without a player succeeded")
	}
}

func TestFaultKillRestart(t *testing.T) {
	e := startEmu(t, Config{})
	addr := e.Addr()
	c, ready := connectWS(t, e, "")
	doREST(t, e, "PATCH", "/v4/sessions/"+ready.SessionID, map[string]any{"resuming": true}, nil)

	e.Kill()
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		t.Fatal("websocket survived Kill")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v4/stats", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a killed node answered")
	}

	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if e.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", e.Addr(), addr)
	}
	if len(e.Sessions()) != 0 {
		t.Fatal("sessions survived a restart")
	}
	// A restarted node cannot resume anything.
	c2, err := dialWS(t, e, wsHeader(ready.SessionID))
	if err != nil {
		t.Fatal(err)
	}
	if m := c2.next(); m.Resumed || m.SessionID == ready.SessionID {
		t.Fatalf("after restart %+v", m)
	}
	if code, _ := doREST(t, e, "GET", "/v4/sessions/"+ready.SessionID+"/players", nil, nil); code != 404 {
		t.Fatalf("old session after restart: %d", code)
	}
}

func TestFaultCloseVoice(t *testing.T) {
	e := startEmu(t, Config{})
	tr := loadOne(t, e, "ytsearch:voice close")
	c, sid := playingPlayer(t, e, "1", tr)
	if err := e.CloseVoice(1, 4006, "Session is no longer valid.", true); err != nil {
		t.Fatal(err)
	}
	m := c.waitEvent("WebSocketClosedEvent")
	if m.Code != 4006 || m.GuildID != "1" {
		t.Fatalf("closed event %+v", m)
	}
	u, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" })
	if u.State.Connected {
		t.Fatalf("update after voice close %+v", u)
	}
	// A fresh voice state reconnects it.
	if p := patch(t, e, sid, "1", map[string]any{"voice": fullVoice}, 200); !p.State.Connected {
		t.Fatalf("player after new voice %+v", p)
	}
}

func TestFaultFailTrack(t *testing.T) {
	e := startEmu(t, Config{})
	tr := loadOne(t, e, "ytsearch:fail")
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	// Before any audio was produced: loadFailed.
	patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}}, 200)
	c.waitEvent("TrackStartEvent")
	if err := e.FailTrack(1, "boom"); err != nil {
		t.Fatal(err)
	}
	ex := c.waitEvent("TrackExceptionEvent")
	if ex.Exception.Message != "boom" || ex.Exception.Severity != "fault" {
		t.Fatalf("exception %+v", ex.Exception)
	}
	if end := c.waitEvent("TrackEndEvent"); end.Reason != EndLoadFailed {
		t.Fatalf("end %+v", end)
	}
	// Mid-track: finished.
	patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}, "position": 1000}, 200)
	c.waitEvent("TrackStartEvent")
	_ = e.FailTrack(1, "boom again")
	c.waitEvent("TrackExceptionEvent")
	if end := c.waitEvent("TrackEndEvent"); end.Reason != EndFinished {
		t.Fatalf("end %+v", end)
	}
	if err := e.FailTrack(1, "nothing playing"); err == nil {
		t.Fatal("FailTrack without a track succeeded")
	}
}

func TestFaultSetLoadInStats(t *testing.T) {
	e := startEmu(t, Config{StatsInterval: 10 * time.Millisecond})
	tr := loadOne(t, e, "ytsearch:load")
	c, _ := playingPlayer(t, e, "1", tr)
	e.SetLoad(0.9, 300)
	st, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "stats" && m.CPU.SystemLoad == 0.9 })
	if st.CPU.LavalinkLoad != 0.9 || st.FrameStats == nil || st.FrameStats.Deficit != 300 || st.FrameStats.Sent != framesPerMinute-300 || st.Players != 1 || st.PlayingPlayers != 1 {
		t.Fatalf("stats %+v frames %+v", st, st.FrameStats)
	}
}

// TestConcurrentClientsAndFaults runs many plain clients against one node
// while faults fire, so that -race sees the emulator's locking under load.
func TestConcurrentClientsAndFaults(t *testing.T) {
	e := startEmu(t, Config{Speed: 2000, PlayerUpdateInterval: 2 * time.Millisecond, StatsInterval: 3 * time.Millisecond})
	tracks := []Track{loadOne(t, e, "ytsearch:c1"), loadOne(t, e, "ytsearch:c2"), loadOne(t, e, "https://radio.example.com/live/x")}
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := dialWS(t, e, wsHeader(""))
			if err != nil {
				t.Error(err)
				return
			}
			var sid string
			select {
			case m := <-c.msgs:
				sid = m.SessionID
			case <-time.After(waitTimeout):
				t.Error("no ready")
				return
			}
			doRESTNoFatal(e, "PATCH", "/v4/sessions/"+sid, `{"resuming":true,"timeout":1}`)
			for j := 0; j < 20; j++ {
				g := []string{"1", "2", "3"}[j%3]
				bodies := []string{
					`{"voice":{"token":"t","endpoint":"e","sessionId":"s","channelId":"1"}}`,
					`{"track":{"encoded":"` + tracks[(i+j)%3].Encoded + `"}}`,
					`{"paused":true}`, `{"paused":false,"position":1000}`, `{"volume":50,"filters":{"volume":1.5}}`,
					`{"track":{"encoded":null}}`, `{"endTime":500}`,
				}
				doRESTNoFatal(e, "PATCH", "/v4/sessions/"+sid+"/players/"+g, bodies[j%len(bodies)])
				doRESTNoFatal(e, "GET", "/v4/sessions/"+sid+"/players", "")
				if j%7 == 0 {
					doRESTNoFatal(e, "DELETE", "/v4/sessions/"+sid+"/players/"+g, "")
				}
			}
		}(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; k < 10; k++ {
			_ = e.FreezePlayer(1)
			e.HangFor(time.Millisecond)
			_ = e.UnfreezePlayer(1)
			_ = e.CloseVoice(2, 4006, "x", true)
			_ = e.FailTrack(3, "x")
			e.SetLoad(float64(k)/10, k)
			_ = e.Sessions()
			_ = e.Players("")
			_ = e.Requests()
			if k == 5 {
				e.DropWebsockets()
			}
		}
	}()
	wg.Wait()
	e.Hang(false)
	if code, _ := doREST(t, e, "GET", "/v4/stats", nil, nil); code != 200 {
		t.Fatalf("node unhealthy after the storm: %d", code)
	}
}

// doRESTNoFatal is for goroutines other than the test's own.
func doRESTNoFatal(e *Emulator, method, path, body string) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, e.URL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", testPassword)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
