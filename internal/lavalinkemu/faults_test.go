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
			case <-c.done:
				// DropWebsockets, below, may close the socket before its
				// ready message (seen under a CPU burner): one of the faults
				// under test, not a failure.
				return
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
	// A waiter that is never satisfied keeps reading the log while it grows.
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() {
		_, err := e.WaitPlayerEvent(waitCtx, 0, func(r PlayerEventRecord) bool { return r.Type == "never" })
		waited <- err
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; k < 10; k++ {
			e.FailWhenPlayed(tracks[k%3].Info.Identifier, int64(k*100), "x")
			e.StickWhenPlayed(tracks[(k+1)%3].Info.Identifier, int64(k*50))
			_ = e.PlayerEvents(0)
			if k%4 == 3 {
				e.ClearTrackFaults()
			}
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
	stopWaiting()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: %v", err)
	}
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

// TestFaultFailWhenPlayed: every play of the track fails when the clock gets
// to the rule's position, at any speed; nothing reports a position past it
// first; a play that starts past it is not affected; ClearTrackFaults ends it.
func TestFaultFailWhenPlayed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		speed       float64
		atMs, start int64
		wantPos     int64
		wantReason  string
	}{
		{"load failure", 1000, 0, 0, 0, EndLoadFailed},
		{"load failure of a play started later", 1000, 0, 5000, 5000, EndFinished},
		{"mid-track", 1000, 30000, 0, 30000, EndFinished},
		{"mid-track at an uneven speed", 333.3, 20000, 0, 20000, EndFinished},
		{"mid-track from a later start", 1000, 30000, 10000, 30000, EndFinished},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmu(t, Config{Speed: tc.speed, PlayerUpdateInterval: 2 * time.Millisecond})
			tr := loadOne(t, e, "ytsearch:fails when played")
			e.FailWhenPlayed(tr.Info.Identifier, tc.atMs, "Video returned by YouTube isn't what was requested")
			c, ready := connectWS(t, e, "")
			patch(t, e, ready.SessionID, "1", map[string]any{"voice": fullVoice}, 200)
			for play := 0; play < 2; play++ {
				patch(t, e, ready.SessionID, "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}, "position": tc.start}, 200)
				ex, before := c.waitFor(func(m wsMsg) bool { return m.is("event", "TrackExceptionEvent") })
				for _, m := range before {
					if m.Op == "playerUpdate" && m.State.Position > tc.wantPos {
						t.Fatalf("play %d: position %d reported before the failure at %d", play, m.State.Position, tc.wantPos)
					}
				}
				x := ex.Exception
				if ex.Track.Info.Position != tc.wantPos || x.Severity != "fault" || x.Message != "Video returned by YouTube isn't what was requested" ||
					!strings.Contains(x.Cause, x.Message) || !strings.Contains(x.CauseStackTrace, x.Message) {
					t.Fatalf("play %d: exception at %d: %+v", play, ex.Track.Info.Position, x)
				}
				if end := c.waitEvent("TrackEndEvent"); end.Reason != tc.wantReason || end.Track.Info.Position != tc.wantPos {
					t.Fatalf("play %d: end %s at %d", play, end.Reason, end.Track.Info.Position)
				}
			}
			e.ClearTrackFaults()
			patch(t, e, ready.SessionID, "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}, "position": tr.Info.Length - 5000}, 200)
			end, before := c.waitFor(func(m wsMsg) bool { return m.is("event", "TrackEndEvent") })
			for _, m := range before {
				if m.is("event", "TrackExceptionEvent") {
					t.Fatal("a cleared rule still failed the track")
				}
			}
			if end.Reason != EndFinished || end.Track.Info.Position != tr.Info.Length {
				t.Fatalf("after ClearTrackFaults: end %s at %d", end.Reason, end.Track.Info.Position)
			}
		})
	}
}

// TestFaultFailWhenPlayedFollowsTheClock: the rule waits for the clock, so a
// paused play does not fail until resumed, a play that seeks past the
// position does not fail, and a rule given mid-play applies to that play.
func TestFaultFailWhenPlayedFollowsTheClock(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000})
	tr := loadOne(t, e, "ytsearch:follows the clock")
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	patch(t, e, sid, "1", map[string]any{"voice": fullVoice, "track": map[string]any{"encoded": tr.Encoded}, "paused": true}, 200)
	c.waitEvent("TrackStartEvent")

	e.FailWhenPlayed(tr.Info.Identifier, 0, "paused")
	// A request round trip later the paused track is still there (were the
	// rule armed, its zero-length timer would have fired by now).
	if p := patch(t, e, sid, "1", map[string]any{"volume": 50}, 200); p.Track == nil {
		t.Fatal("the rule failed a paused track")
	}
	patch(t, e, sid, "1", map[string]any{"paused": false}, 200)
	if ex := c.waitEvent("TrackExceptionEvent"); ex.Exception.Message != "paused" {
		t.Fatalf("exception %+v", ex.Exception)
	}
	if end := c.waitEvent("TrackEndEvent"); end.Reason != EndLoadFailed {
		t.Fatalf("end %s", end.Reason)
	}

	e.FailWhenPlayed(tr.Info.Identifier, 30000, "skipped over")
	patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}, "paused": true}, 200)
	patch(t, e, sid, "1", map[string]any{"position": 40000, "paused": false}, 200)
	end, before := c.waitFor(func(m wsMsg) bool { return m.is("event", "TrackEndEvent") })
	for _, m := range before {
		if m.is("event", "TrackExceptionEvent") {
			t.Fatalf("failed at %d after seeking past the rule", m.Track.Info.Position)
		}
	}
	if end.Reason != EndFinished || end.Track.Info.Position != tr.Info.Length {
		t.Fatalf("end %s at %d", end.Reason, end.Track.Info.Position)
	}
}

// TestFaultStickWhenPlayed: each play of the track stalls at the position
// (one TrackStuckEvent per stall, position frozen); re-sending the track
// stalls again; another track plays normally; UnfreezePlayer ends a stall.
func TestFaultStickWhenPlayed(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000, PlayerUpdateInterval: 2 * time.Millisecond})
	stuck, other := loadOne(t, e, "ytsearch:sticks"), loadOne(t, e, "ytsearch:does not stick")
	e.StickWhenPlayed(stuck.Info.Identifier, 20000)
	c, sid := playingPlayer(t, e, "1", stuck)

	for play := 0; play < 2; play++ {
		ev, before := c.waitFor(func(m wsMsg) bool { return m.is("event", "TrackStuckEvent") })
		for _, m := range before {
			if m.Op == "event" || (m.Op == "playerUpdate" && m.State.Position > 20000) {
				t.Fatalf("play %d: %+v before TrackStuckEvent", play, m)
			}
		}
		if ev.Track.Info.Position != 20000 || ev.ThresholdMs != 10000 || ev.Track.Info.Identifier != stuck.Info.Identifier {
			t.Fatalf("play %d: stuck %+v at %d", play, ev, ev.Track.Info.Position)
		}
		if p := e.Players(sid)[0]; !p.Frozen || p.Position != 20000 {
			t.Fatalf("play %d: player %+v", play, p)
		}
		// Still stalled: more updates at the same position, no more events.
		for i := 0; i < 5; i++ {
			m, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" || m.Op == "event" })
			if m.Op == "event" || m.State.Position != 20000 {
				t.Fatalf("play %d: %+v while stalled", play, m)
			}
		}
		if play == 0 {
			// What a client does about a stuck track: play it again.
			patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": stuck.Encoded}}, 200)
			if end := c.waitEvent("TrackEndEvent"); end.Reason != EndReplaced || end.Track.Info.Position != 20000 {
				t.Fatalf("replace: %s at %d", end.Reason, end.Track.Info.Position)
			}
			c.waitEvent("TrackStartEvent")
		}
	}

	if err := e.UnfreezePlayer(1); err != nil {
		t.Fatal(err)
	}
	end, before := c.waitFor(func(m wsMsg) bool { return m.is("event", "TrackEndEvent") })
	for _, m := range before {
		if m.Op == "event" {
			t.Fatalf("%+v after UnfreezePlayer", m)
		}
	}
	if end.Reason != EndFinished || end.Track.Info.Position != stuck.Info.Length {
		t.Fatalf("end after unfreeze: %s at %d", end.Reason, end.Track.Info.Position)
	}

	// The stall was the track's, not the player's.
	patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": other.Encoded}}, 200)
	end, before = c.waitFor(func(m wsMsg) bool { return m.is("event", "TrackEndEvent") })
	for _, m := range before {
		if m.is("event", "TrackStuckEvent") {
			t.Fatal("another track got stuck")
		}
	}
	if end.Reason != EndFinished || end.Track.Info.Identifier != other.Info.Identifier {
		t.Fatalf("other track: %+v", end)
	}
}
