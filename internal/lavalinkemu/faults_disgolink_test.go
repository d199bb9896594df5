//go:build !race

// What the real disgolink v3.1.0 client sees for each fault. Excluded from
// -race builds for the upstream races listed in conformance_test.go.

package lavalinkemu

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
)

func TestDisgolinkSeesHang(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	e.Hang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := d.node.LoadTracks(ctx, "ytsearch:hang")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LoadTracks on a hung node: %v", err)
	}
	e.Hang(false)
	if _, err := d.node.LoadTracks(ctxT(t), "ytsearch:hang"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestDisgolinkSeesFailREST(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	e.FailREST(1, 503)
	_, err := d.node.LoadTracks(ctx, "ytsearch:x")
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 503 || le.Message != "lavalinkemu: injected failure" {
		t.Fatalf("LoadTracks during failure: %v", err)
	}
	// A failed player update leaves disgolink's player untouched and is an
	// error to the caller.
	e.FailREST(1, 500)
	p := d.client.Player(5001)
	if err := p.Update(ctx, lavalink.WithVolume(42)); !errors.As(err, &le) || le.Status != 500 {
		t.Fatalf("Update during failure: %v", err)
	}
	if p.Volume() != 100 {
		t.Fatalf("volume %d after a failed update", p.Volume())
	}
	if err := p.Update(ctx, lavalink.WithVolume(42)); err != nil || p.Volume() != 42 {
		t.Fatalf("Update after failures: %v, volume %d", err, p.Volume())
	}
}

func TestDisgolinkSeesFrozenPlayer(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(5002)
	r, _ := d.node.LoadTracks(ctx, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
	d.connectVoice(g)
	if err := d.client.Player(g).Update(ctx, lavalink.WithTrack(r.Data.(lavalink.Track))); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.TrackStartEvent](d, nil)
	if err := e.FreezePlayer(uint64(g)); err != nil {
		t.Fatal(err)
	}
	stuck := waitMsg[lavalink.TrackStuckEvent](d, nil)
	if stuck.Threshold != 10*lavalink.Second || stuck.GuildID() != g || stuck.Track.Info.Identifier != "dQw4w9WgXcQ" {
		t.Fatalf("stuck %+v", stuck)
	}
}

// TestDisgolinkSeesKillRestart: the client reconnects on its own (its first
// retry has no delay, later ones back off by 2 s each), offers its old
// session ID, gets resumed:false and carries on with a new, empty session;
// the old session is gone.
func TestDisgolinkSeesKillRestart(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	if err := d.node.Update(ctx, lavalink.SessionUpdate{Resuming: ptr(true), Timeout: ptr(60)}); err != nil {
		t.Fatal(err)
	}
	old := onlySession(t, e).ID
	g := snowflake.ID(5003)
	if err := d.client.Player(g).Update(ctx, lavalink.WithVolume(10)); err != nil {
		t.Fatal(err)
	}

	e.Kill()
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the client reconnects", func() bool {
		ss := e.Sessions()
		return len(ss) == 1 && ss[0].Connected
	})
	if s := onlySession(t, e); s.ID == old {
		t.Fatal("restarted node resumed a session")
	}
	hs := e.RequestsTo("GET", "/v4/websocket")
	if last := hs[len(hs)-1]; last.Header.Get("Session-Id") != old {
		t.Fatalf("reconnect offered Session-Id %q, want %q", last.Header.Get("Session-Id"), old)
	}
	var le lavalink.Error
	if _, err := d.node.Rest().Player(ctx, old, g); !errors.As(err, &le) || le.Status != 404 {
		t.Fatalf("old session after restart: %v", err)
	}
	// disgolink still has its player object; the next update silently
	// creates a fresh player on the new session.
	if err := d.client.Player(g).Update(ctx, lavalink.WithVolume(20)); err != nil {
		t.Fatal(err)
	}
	if pl := playerOf(t, e, g); pl.SessionID == old || pl.Volume != 20 || pl.Connected {
		t.Fatalf("player after restart %+v", pl)
	}
}

func TestDisgolinkSeesVoiceClose(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	g := snowflake.ID(5004)
	d.connectVoice(g)
	if err := e.CloseVoice(uint64(g), 4006, "Session is no longer valid.", true); err != nil {
		t.Fatal(err)
	}
	ev := waitMsg[lavalink.WebSocketClosedEvent](d, nil)
	if ev.Code != 4006 || !ev.ByRemote || ev.Reason != "Session is no longer valid." || ev.GuildID() != g {
		t.Fatalf("closed event %+v", ev)
	}
}

func TestDisgolinkSeesFailedTrack(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(5005)
	r, _ := d.node.LoadTracks(ctx, "ytsearch:fails")
	if err := d.client.Player(g).Update(ctx, lavalink.WithTrack(r.Data.(lavalink.Search)[0])); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.TrackStartEvent](d, nil)
	if err := e.FailTrack(uint64(g), "Sign in to confirm your age"); err != nil {
		t.Fatal(err)
	}
	ex := waitMsg[lavalink.TrackExceptionEvent](d, nil)
	if ex.Exception.Severity != lavalink.SeverityFault || ex.Exception.Message != "Sign in to confirm your age" || ex.Exception.CauseStackTrace == "" {
		t.Fatalf("exception %+v", ex.Exception)
	}
	end := waitMsg[lavalink.TrackEndEvent](d, nil)
	if end.Reason != lavalink.TrackEndReasonLoadFailed || !end.Reason.MayStartNext() {
		t.Fatalf("end %+v", end)
	}
}

// TestDisgolinkSeesTrackFaults: what a client sees of the persistent track
// faults: a track that fails mid-play, and one that gets stuck again each
// time the client plays it.
func TestDisgolinkSeesTrackFaults(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(5006)
	r, _ := d.node.LoadTracks(ctx, "ytsearch:faulty queue")
	tracks := r.Data.(lavalink.Search)
	fails, sticks := tracks[0], tracks[1]
	e.FailWhenPlayed(fails.Info.Identifier, 15000, "Something broke when playing the track.")
	e.StickWhenPlayed(sticks.Info.Identifier, 25000)
	d.connectVoice(g)
	p := d.client.Player(g)

	if err := p.Update(ctx, lavalink.WithTrack(fails)); err != nil {
		t.Fatal(err)
	}
	ex := waitMsg[lavalink.TrackExceptionEvent](d, nil)
	if ex.Exception.Severity != lavalink.SeverityFault || ex.Exception.CauseStackTrace == "" || ex.Track.Info.Position != 15*lavalink.Second {
		t.Fatalf("exception %+v at %v", ex.Exception, ex.Track.Info.Position)
	}
	if end := waitMsg[lavalink.TrackEndEvent](d, nil); end.Reason != lavalink.TrackEndReasonFinished || !end.Reason.MayStartNext() {
		t.Fatalf("end %+v", end)
	}

	for i := 0; i < 2; i++ {
		if err := p.Update(ctx, lavalink.WithTrack(sticks)); err != nil {
			t.Fatal(err)
		}
		stuck := waitMsg[lavalink.TrackStuckEvent](d, nil)
		if stuck.Track.Info.Identifier != sticks.Info.Identifier || stuck.Track.Info.Position != 25*lavalink.Second || stuck.Threshold != 10*lavalink.Second {
			t.Fatalf("play %d: stuck %+v", i, stuck)
		}
	}
}
