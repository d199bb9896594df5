package lavalinkemu

import (
	"testing"
	"time"
)

// Playback clock tests: every wait is for an event; speeds make the waits
// short, and no test asserts how long anything took.

func TestClockPauseFreezesPosition(t *testing.T) {
	e := startEmu(t, Config{PlayerUpdateInterval: 10 * time.Millisecond})
	tr := loadOne(t, e, "ytsearch:pause")
	c, sid := playingPlayer(t, e, "1", tr)
	c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" && m.State.Position > 0 })

	p := patch(t, e, sid, "1", map[string]any{"paused": true}, 200)
	// Updates sent before the pause may still be queued; skip to the first
	// one from after it.
	c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" && m.State.Position == p.State.Position })
	for i := 0; i < 5; i++ {
		u, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" })
		if u.State.Position != p.State.Position {
			t.Fatalf("paused player moved from %d to %d", p.State.Position, u.State.Position)
		}
	}
	p2 := patch(t, e, sid, "1", map[string]any{"paused": false}, 200)
	if p2.Paused || p2.State.Position != p.State.Position {
		t.Fatalf("unpause changed position: %+v then %+v", p, p2)
	}
	c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" && m.State.Position > p.State.Position })
}

func TestClockSeekPastEndFinishes(t *testing.T) {
	e := startEmu(t, Config{})
	tr := loadOne(t, e, "ytsearch:seek")
	c, sid := playingPlayer(t, e, "1", tr)
	patch(t, e, sid, "1", map[string]any{"position": tr.Info.Length + 5000}, 200)
	end := c.waitEvent("TrackEndEvent")
	if end.Reason != EndFinished || end.Track.Info.Position != tr.Info.Length {
		t.Fatalf("end %+v", end)
	}
	if ps := e.Players(sid); ps[0].Track != nil {
		t.Fatalf("track left after finishing: %+v", ps[0])
	}
}

func TestClockSeekReportsPosition(t *testing.T) {
	e := startEmu(t, Config{})
	tr := loadOne(t, e, "ytsearch:seek report")
	c, sid := playingPlayer(t, e, "1", tr)
	patch(t, e, sid, "1", map[string]any{"paused": true}, 200)
	patch(t, e, sid, "1", map[string]any{"position": 30000}, 200)
	u, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" && m.State.Position == 30000 })
	if !u.State.Connected {
		t.Fatalf("update %+v", u)
	}
}

// TestClockEndReportsExactLength pins TrackEnd's position to the exact length
// at speeds whose wall times do not divide evenly. (Timer latency usually
// hides rounding; the snap in schedule makes it exact regardless.)
func TestClockEndReportsExactLength(t *testing.T) {
	for _, speed := range []float64{3, 7, 333.3} {
		e := startEmu(t, Config{Speed: speed})
		tr := loadOne(t, e, "ytsearch:exact")
		c, ready := connectWS(t, e, "")
		patch(t, e, ready.SessionID, "1", map[string]any{"voice": fullVoice, "track": map[string]any{"encoded": tr.Encoded}, "position": tr.Info.Length - 1000}, 200)
		if end := c.waitEvent("TrackEndEvent"); end.Track.Info.Position != tr.Info.Length {
			t.Fatalf("speed %v: ended at %d, want %d", speed, end.Track.Info.Position, tr.Info.Length)
		}
	}
}

func TestClockEndTimeFinishes(t *testing.T) {
	e := startEmu(t, Config{Speed: 100})
	tr := loadOne(t, e, "ytsearch:endtime")
	c, ready := connectWS(t, e, "")
	patch(t, e, ready.SessionID, "1", map[string]any{"voice": fullVoice, "track": map[string]any{"encoded": tr.Encoded}, "position": 1000, "endTime": 3000}, 200)
	start := c.waitEvent("TrackStartEvent")
	if start.Track.Info.Position != 1000 {
		t.Fatalf("start %+v", start.Track.Info)
	}
	end := c.waitEvent("TrackEndEvent")
	if end.Reason != EndFinished || end.Track.Info.Position != 3000 {
		t.Fatalf("end %+v at %d", end, end.Track.Info.Position)
	}
}

func TestClockStreamNeverFinishes(t *testing.T) {
	e := startEmu(t, Config{Speed: 1e6, PlayerUpdateInterval: 5 * time.Millisecond})
	tr := loadOne(t, e, "https://radio.example.com/live/news")
	if !tr.Info.IsStream || tr.Info.Length != StreamLength {
		t.Fatalf("not a stream: %+v", tr.Info)
	}
	c, _ := playingPlayer(t, e, "1", tr)
	// Far past the length of any finite catalogue track, still no TrackEnd.
	_, skipped := c.waitFor(func(m wsMsg) bool { return m.Op == "playerUpdate" && m.State.Position > 100*360_000 })
	for _, m := range skipped {
		if m.Op == "event" {
			t.Fatalf("stream produced %+v", m)
		}
	}
}

// TestClockCleanupWithoutVoice: lavaplayer ends a track nobody pulls audio
// from after trackCleanupThreshold, with reason "cleanup".
func TestClockCleanupWithoutVoice(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000, CleanupThreshold: time.Minute})
	tr := loadOne(t, e, "ytsearch:cleanup")
	c, ready := connectWS(t, e, "")
	patch(t, e, ready.SessionID, "1", map[string]any{"track": map[string]any{"encoded": tr.Encoded}}, 200)
	c.waitEvent("TrackStartEvent")
	end := c.waitEvent("TrackEndEvent")
	if end.Reason != EndCleanup || end.Track.Info.Position != 0 {
		t.Fatalf("end %+v", end)
	}
}

func TestClockReplaceOrderAndUnpause(t *testing.T) {
	e := startEmu(t, Config{})
	a, b := loadOne(t, e, "ytsearch:a"), loadOne(t, e, "ytsearch:b")
	c, sid := playingPlayer(t, e, "1", a)
	patch(t, e, sid, "1", map[string]any{"paused": true}, 200)
	// A new track without "paused" unpauses, as PlayerRestHandler does.
	p := patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": b.Encoded}}, 200)
	if p.Paused || p.Track.Info.Identifier != b.Info.Identifier {
		t.Fatalf("player %+v", p)
	}
	var order []string
	for len(order) < 3 {
		m := c.next()
		if m.Op == "stats" {
			continue
		}
		id := ""
		if m.Track != nil {
			id = m.Track.Info.Identifier
		}
		order = append(order, m.Op+"/"+m.Type+"/"+m.Reason+"/"+id)
	}
	want := []string{
		"event/TrackEndEvent/replaced/" + a.Info.Identifier,
		"event/TrackStartEvent//" + b.Info.Identifier,
		"playerUpdate///",
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
}

// TestClockEncodedTrackCarriesPosition: like lavaplayer, the encoding of a
// playing track includes its position, and playing that encoding resumes
// from there unless a position is given.
func TestClockEncodedTrackCarriesPosition(t *testing.T) {
	e := startEmu(t, Config{})
	tr := loadOne(t, e, "ytsearch:carry")
	_, sid := playingPlayer(t, e, "1", tr)
	patch(t, e, sid, "1", map[string]any{"paused": true, "position": 42000}, 200)
	p := patch(t, e, sid, "1", map[string]any{}, 200)
	if p.Track.Encoded == tr.Encoded || p.Track.Info.Position != 42000 {
		t.Fatalf("mid-play track %+v", p.Track.Info)
	}
	info, err := DecodeTrack(p.Track.Encoded)
	if err != nil || info.Position != 42000 {
		t.Fatalf("decode mid-play encoding: %+v %v", info, err)
	}
	p2 := patch(t, e, sid, "2", map[string]any{"track": map[string]any{"encoded": p.Track.Encoded}, "paused": true}, 200)
	if p2.State.Position != 42000 {
		t.Fatalf("resent encoding started at %d", p2.State.Position)
	}
	p3 := patch(t, e, sid, "3", map[string]any{"track": map[string]any{"encoded": p.Track.Encoded}, "position": 5, "paused": true}, 200)
	if p3.State.Position != 5 {
		t.Fatalf("explicit position ignored: %d", p3.State.Position)
	}
}
