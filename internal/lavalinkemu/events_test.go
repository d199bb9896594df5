package lavalinkemu

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPlayerEventsLog: the log holds exactly the events clients received, in
// the order they received them, with the track's identity, position and
// userData at the time, per guild or for all.
func TestPlayerEventsLog(t *testing.T) {
	e := startEmu(t, Config{})
	a, b := loadOne(t, e, "ytsearch:log a"), loadOne(t, e, "ytsearch:log b")
	c, ready := connectWS(t, e, "")
	sid := ready.SessionID
	patch(t, e, sid, "1", map[string]any{"voice": fullVoice, "paused": true,
		"track": map[string]any{"encoded": a.Encoded, "userData": map[string]any{"play": 1}}}, 200)
	patch(t, e, sid, "1", map[string]any{"track": map[string]any{"encoded": b.Encoded}, "position": 5000, "paused": true}, 200)
	if err := e.CloseVoice(1, 4014, "Disconnected.", false); err != nil {
		t.Fatal(err)
	}
	if err := e.FailTrack(1, "log me"); err != nil {
		t.Fatal(err)
	}
	patch(t, e, sid, "2", map[string]any{"track": map[string]any{"encoded": a.Encoded}, "paused": true}, 200)
	if code, _ := doREST(t, e, "DELETE", "/v4/sessions/"+sid+"/players/2", nil, nil); code != 204 {
		t.Fatalf("DELETE %d", code)
	}

	type want struct {
		guild           uint64
		typ, reason, id string
		pos             int64
		userData        string
	}
	wants := []want{
		{1, "TrackStartEvent", "", a.Info.Identifier, 0, `{"play":1}`},
		{1, "TrackEndEvent", EndReplaced, a.Info.Identifier, 0, `{"play":1}`},
		{1, "TrackStartEvent", "", b.Info.Identifier, 5000, `{}`},
		{1, "WebSocketClosedEvent", "", "", 0, ""},
		{1, "TrackExceptionEvent", "", b.Info.Identifier, 5000, `{}`},
		{1, "TrackEndEvent", EndFinished, b.Info.Identifier, 5000, `{}`},
		{2, "TrackStartEvent", "", a.Info.Identifier, 0, `{}`},
		{2, "TrackEndEvent", EndStopped, a.Info.Identifier, 0, `{}`},
	}
	all := e.PlayerEvents(0)
	if len(all) != len(wants) {
		t.Fatalf("%d events logged, want %d: %+v", len(all), len(wants), all)
	}
	for i, r := range all {
		w := wants[i]
		got := want{r.GuildID, r.Type, r.Reason, r.Identifier, r.Position, string(r.UserData)}
		if got != w || r.SessionID != sid || (i > 0 && (r.Seq <= all[i-1].Seq || r.Time.Before(all[i-1].Time))) {
			t.Errorf("event %d: %+v, want %+v", i, r, w)
		}
		if r.Identifier == a.Info.Identifier && r.Title != a.Info.Title {
			t.Errorf("event %d: title %q", i, r.Title)
		}
	}
	// The client received the same events in the same order.
	for i := range wants {
		m, _ := c.waitFor(func(m wsMsg) bool { return m.Op == "event" })
		if m.Type != all[i].Type || (m.Type == "TrackEndEvent" && m.Reason != all[i].Reason) || m.GuildID != fmt.Sprint(all[i].GuildID) {
			t.Fatalf("received event %d %s/%s for %s; logged %+v", i, m.Type, m.Reason, m.GuildID, all[i])
		}
	}
	if g2 := e.PlayerEvents(2); len(g2) != 2 || g2[0].Seq != all[6].Seq || g2[1].Seq != all[7].Seq {
		t.Fatalf("guild 2's events %+v", g2)
	}
	if none := e.PlayerEvents(3); len(none) != 0 {
		t.Fatalf("guild 3's events %+v", none)
	}
}

func TestWaitPlayerEvent(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000})
	tr := loadOne(t, e, "ytsearch:wait for it")
	_, sid := playingPlayer(t, e, "1", tr)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// Already logged.
	start, err := e.WaitPlayerEvent(ctx, 1, func(r PlayerEventRecord) bool { return r.Type == "TrackStartEvent" })
	if err != nil || start.Identifier != tr.Info.Identifier {
		t.Fatalf("TrackStart: %+v %v", start, err)
	}
	// Produced while waiting (or before: either way it is found). cond runs
	// without the log's lock, so it may read the log itself.
	done := make(chan PlayerEventRecord, 1)
	go func() {
		r, err := e.WaitPlayerEvent(ctx, 1, func(r PlayerEventRecord) bool {
			return r.Type == "TrackEndEvent" && len(e.PlayerEvents(1)) > 0
		})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	patch(t, e, sid, "1", map[string]any{"position": tr.Info.Length - 1000}, 200)
	if end := <-done; end.Reason != EndFinished || end.Position != tr.Info.Length || end.Seq <= start.Seq {
		t.Fatalf("TrackEnd %+v", end)
	}

	// Another guild's events do not count; the context ends the wait.
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	if r, err := e.WaitPlayerEvent(short, 2, func(PlayerEventRecord) bool { return true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for guild 2: %+v %v", r, err)
	}
}

// TestPlayerEventsBound: MaxRecordedEvents keeps the newest events, a
// negative value logs nothing, and the log survives a restart.
func TestPlayerEventsBound(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{0, []string{"TrackStartEvent", "TrackExceptionEvent", "TrackEndEvent"}},
		{2, []string{"TrackExceptionEvent", "TrackEndEvent"}},
		{-1, nil},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			e := startEmu(t, Config{MaxRecordedEvents: tc.max})
			tr := loadOne(t, e, "ytsearch:bounded")
			_, sid := playingPlayer(t, e, "1", tr)
			patch(t, e, sid, "1", map[string]any{"paused": true}, 200)
			if err := e.FailTrack(1, "x"); err != nil {
				t.Fatal(err)
			}
			if err := e.Restart(); err != nil {
				t.Fatal(err)
			}
			evs := e.PlayerEvents(0)
			var got []string
			for _, r := range evs {
				got = append(got, r.Type)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || (len(evs) > 0 && evs[len(evs)-1].Seq != 3) {
				t.Fatalf("logged %+v, want %v", evs, tc.want)
			}
		})
	}
}
