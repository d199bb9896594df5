//go:build !race

// Tests that drive the emulator with the real disgolink v3.1.0 client. They
// are excluded from -race builds because disgolink races with itself: run
// under -race (temporarily), every report had both accesses inside the
// library (paths relative to disgolink/v3@v3.1.0/disgolink/):
//   - node.go:274 (Close writes n.conn without connMu), called by
//     Client.Close (client.go:244), against the same write from the reader's
//     own Close (node.go:330, reader started at node.go:254) and against the
//     reader's locked read at node.go:318;
//   - player.go:133 (Update reads p.paused) against player.go:211 (OnEvent
//     writes it) in the goroutine Update starts at player.go:143;
//   - node.go:115 (SessionID, read by Player.Update at player.go:120) against
//     node.go:235 (open writes sessionID on reconnect, node.go:306 -> 294);
//   - node.go:111 (Stats) against node.go:360 (the reader writes stats).
// The emulator's own concurrency is covered by the -race tests that use plain
// net/http and gorilla clients (rest_test.go, ws_test.go, clock_test.go,
// faults_test.go), including TestConcurrentClientsAndFaults.

package lavalinkemu

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
)

// Conformance: the real disgolink v3 client against the emulator.

func TestConformanceConnect(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)

	s := onlySession(t, e)
	if !s.Connected || s.UserID != 123456789012345678 || !strings.HasPrefix(s.ClientName, "disgolink/") {
		t.Fatalf("session %+v", s)
	}
	// StatsTask fires at once on a new session.
	st := waitMsg[lavalink.StatsMessage](d, nil)
	if st.Players != 0 || st.CPU.Cores == 0 || st.FrameStats != nil {
		t.Fatalf("first stats %+v", st)
	}

	ctx := ctxT(t)
	v, err := d.node.Version(ctx)
	if err != nil || v != DefaultVersion {
		t.Fatalf("Version = %q, %v", v, err)
	}
	info, err := d.node.Info(ctx)
	if err != nil || info.Version.Major != 4 || info.Version.Minor != 2 || info.Version.Semver != DefaultVersion || len(info.SourceManagers) == 0 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	rs, err := d.node.Rest().Stats(ctx)
	if err != nil || rs.FrameStats != nil {
		t.Fatalf("REST stats = %+v, %v (frameStats must be null over REST)", rs, err)
	}

	hs := e.RequestsTo("GET", "/v4/websocket")
	if len(hs) != 1 {
		t.Fatalf("handshakes = %d", len(hs))
	}
	if got := hs[0].Header.Get("Authorization"); got != Redacted {
		t.Errorf("recorded Authorization %q, want it redacted", got)
	}
	if hs[0].Header.Get("User-Id") != testUserID || hs[0].Header.Get("Session-Id") != "" {
		t.Errorf("handshake headers %v", hs[0].Header)
	}
}

func TestConformanceLoadTypes(t *testing.T) {
	e := startEmu(t, Config{BrokenIdentifier: "https://www.youtube.com/watch?v=brokenbroke"})
	d := mustDL(t, e)
	ctx := ctxT(t)

	for _, tc := range []struct {
		identifier string
		check      func(t *testing.T, r *lavalink.LoadResult)
	}{
		{"ytsearch:lofi beats", func(t *testing.T, r *lavalink.LoadResult) {
			s := r.Data.(lavalink.Search)
			if len(s) != 5 || s[0].Info.SourceName != "youtube" || !strings.Contains(s[0].Info.Title, "lofi beats") {
				t.Errorf("search = %+v", s)
			}
			for _, tr := range s {
				if l := tr.Info.Length; l < lavalink.Minute || l > 6*lavalink.Minute {
					t.Errorf("length %v outside 1..6 min", l)
				}
			}
		}},
		{"scsearch:lofi beats", func(t *testing.T, r *lavalink.LoadResult) {
			s := r.Data.(lavalink.Search)
			if len(s) != 5 || s[0].Info.SourceName != "soundcloud" {
				t.Errorf("search = %+v", s)
			}
		}},
		{"https://www.youtube.com/watch?v=dQw4w9WgXcQ", func(t *testing.T, r *lavalink.LoadResult) {
			tr := r.Data.(lavalink.Track)
			if tr.Info.Identifier != "dQw4w9WgXcQ" || tr.Info.URI == nil || tr.Info.ArtworkURL == nil {
				t.Errorf("track = %+v", tr)
			}
		}},
		{"https://example.com/track/song.mp3", func(t *testing.T, r *lavalink.LoadResult) {
			if tr := r.Data.(lavalink.Track); tr.Info.SourceName != "http" || tr.Info.IsStream {
				t.Errorf("track = %+v", tr)
			}
		}},
		{"https://radio.example.com/live/jazz", func(t *testing.T, r *lavalink.LoadResult) {
			if tr := r.Data.(lavalink.Track); !tr.Info.IsStream {
				t.Errorf("stream = %+v", tr)
			}
		}},
		{"https://www.youtube.com/playlist?list=PL123", func(t *testing.T, r *lavalink.LoadResult) {
			p := r.Data.(lavalink.Playlist)
			if p.Info.SelectedTrack != -1 || len(p.Tracks) < 3 || p.Info.Name == "" {
				t.Errorf("playlist = %+v", p)
			}
		}},
		{"https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL123", func(t *testing.T, r *lavalink.LoadResult) {
			p := r.Data.(lavalink.Playlist)
			if p.Info.SelectedTrack != 0 || p.Tracks[0].Info.Identifier != "dQw4w9WgXcQ" {
				t.Errorf("playlist = %+v", p)
			}
		}},
		// "data" is null (TestRESTLoadEmptyHasNullData); disgolink copes.
		{"never gonna give you up", func(t *testing.T, r *lavalink.LoadResult) {
			if _, ok := r.Data.(lavalink.Empty); !ok {
				t.Errorf("data = %#v", r.Data)
			}
		}},
		{"/etc/passwd", func(t *testing.T, r *lavalink.LoadResult) {
			if _, ok := r.Data.(lavalink.Empty); !ok {
				t.Errorf("a local path must match nothing, got %#v", r.Data)
			}
		}},
		{"https://www.youtube.com/watch?v=brokenbroke", func(t *testing.T, r *lavalink.LoadResult) {
			ex := r.Data.(lavalink.Exception)
			if ex.Severity != lavalink.SeverityCommon || ex.Message == "" {
				t.Errorf("exception = %+v", ex)
			}
		}},
	} {
		t.Run(tc.identifier, func(t *testing.T) {
			r, err := d.node.LoadTracks(ctx, tc.identifier)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
			again, err := d.node.LoadTracks(ctx, tc.identifier)
			if err != nil {
				t.Fatal(err)
			}
			if !sameLoad(r, again) {
				t.Errorf("loading %q twice gave different results", tc.identifier)
			}
		})
	}
}

func sameLoad(a, b *lavalink.LoadResult) bool {
	enc := func(r *lavalink.LoadResult) []string {
		switch d := r.Data.(type) {
		case lavalink.Track:
			return []string{d.Encoded}
		case lavalink.Search:
			var out []string
			for _, t := range d {
				out = append(out, t.Encoded)
			}
			return out
		case lavalink.Playlist:
			var out []string
			for _, t := range d.Tracks {
				out = append(out, t.Encoded)
			}
			return out
		}
		return []string{string(r.LoadType)}
	}
	return strings.Join(enc(a), ",") == strings.Join(enc(b), ",")
}

func TestConformanceDecodeTracks(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	r, err := d.node.LoadTracks(ctx, "ytsearch:decode me")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Data.(lavalink.Search)
	one, err := d.node.DecodeTrack(ctx, s[0].Encoded)
	if err != nil || !reflect.DeepEqual(one.Info, s[0].Info) {
		t.Fatalf("DecodeTrack = %+v, %v; want %+v", one, err, s[0].Info)
	}
	many, err := d.node.DecodeTracks(ctx, []string{s[1].Encoded, s[2].Encoded})
	if err != nil || len(many) != 2 || !reflect.DeepEqual(many[0].Info, s[1].Info) || !reflect.DeepEqual(many[1].Info, s[2].Info) {
		t.Fatalf("DecodeTracks = %+v, %v", many, err)
	}
	// A track the node never issued (here: one field edited) is refused.
	forged := s[0].Info
	forged.Title = "edited"
	enc, err := EncodeTrack(TrackInfo{Identifier: forged.Identifier, Author: forged.Author, Length: int64(forged.Length),
		Title: forged.Title, URI: forged.URI, ArtworkURL: forged.ArtworkURL, SourceName: forged.SourceName, IsSeekable: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.node.DecodeTrack(ctx, enc)
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 500 {
		t.Fatalf("decoding a forged track: err = %v, want a lavalink.Error with status 500", err)
	}
}

// TestConformancePlayback plays, pauses, seeks, changes volume, replaces,
// stops and finishes tracks, checking every event disgolink decodes.
func TestConformancePlayback(t *testing.T) {
	e := startEmu(t, Config{Speed: 20, PlayerUpdateInterval: 20 * time.Millisecond, StatsInterval: 50 * time.Millisecond})
	d := mustDL(t, e)
	ctx := ctxT(t)
	guild := snowflake.ID(1001)

	r, err := d.node.LoadTracks(ctx, "ytsearch:playback")
	if err != nil {
		t.Fatal(err)
	}
	tracks := r.Data.(lavalink.Search)
	a, b := tracks[0], tracks[1]

	p := d.client.Player(guild)
	d.connectVoice(guild)
	if pl := playerOf(t, e, guild); !pl.Connected || pl.Voice.ChannelID != "42" || pl.Voice.SessionID != "vsess" {
		t.Fatalf("after voice events the player is %+v", pl)
	}

	if err := p.Update(ctx, lavalink.WithTrack(a)); err != nil {
		t.Fatal(err)
	}
	start := waitMsg[lavalink.TrackStartEvent](d, nil)
	if start.Track.Encoded != a.Encoded || start.GuildID() != guild {
		t.Fatalf("TrackStart %+v", start)
	}
	// The clock runs: some playerUpdate reports a connected player past 0.
	waitMsg[lavalink.PlayerUpdateMessage](d, func(m lavalink.PlayerUpdateMessage) bool {
		return m.State.Connected && m.State.Position > 0
	})
	st := waitMsg[lavalink.StatsMessage](d, func(s lavalink.StatsMessage) bool { return s.Players == 1 })
	if st.PlayingPlayers != 1 || st.FrameStats == nil || st.FrameStats.Sent == 0 {
		t.Fatalf("stats while playing %+v", st)
	}

	// Pause freezes the position.
	if err := p.Update(ctx, lavalink.WithPaused(true)); err != nil {
		t.Fatal(err)
	}
	frozen := playerOf(t, e, guild).Position
	// Updates sent before the pause may still be queued; skip to the first
	// one from after it.
	waitMsg[lavalink.PlayerUpdateMessage](d, func(m lavalink.PlayerUpdateMessage) bool {
		return m.State.Position == lavalink.Duration(frozen)
	})
	for i := 0; i < 3; i++ {
		u := waitMsg[lavalink.PlayerUpdateMessage](d, nil)
		if u.State.Position != lavalink.Duration(frozen) {
			t.Fatalf("paused position moved from %d to %d", frozen, u.State.Position)
		}
	}
	st = waitMsg[lavalink.StatsMessage](d, func(s lavalink.StatsMessage) bool { return s.PlayingPlayers == 0 })
	if st.Players != 1 {
		t.Fatalf("stats while paused %+v", st)
	}

	// Seek reports the new position at once; volume is echoed.
	seekTo := a.Info.Length - 2*lavalink.Second
	if err := p.Update(ctx, lavalink.WithPosition(seekTo), lavalink.WithVolume(150)); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.PlayerUpdateMessage](d, func(m lavalink.PlayerUpdateMessage) bool { return m.State.Position == seekTo })
	if pl := playerOf(t, e, guild); pl.Volume != 150 || pl.Position != int64(seekTo) {
		t.Fatalf("after seek+volume: %+v", pl)
	}

	// Resuming near the end lets the track finish on its own.
	if err := p.Update(ctx, lavalink.WithPaused(false)); err != nil {
		t.Fatal(err)
	}
	end := waitMsg[lavalink.TrackEndEvent](d, nil)
	if end.Reason != lavalink.TrackEndReasonFinished || end.Track.Info.Identifier != a.Info.Identifier || end.Track.Info.Position != a.Info.Length {
		t.Fatalf("TrackEnd %+v", end)
	}
	if pl := playerOf(t, e, guild); pl.Track != nil {
		t.Fatalf("player still has a track after it finished: %+v", pl.Track)
	}

	// Replace: TrackEnd "replaced" for the old track, then TrackStart.
	if err := p.Update(ctx, lavalink.WithTrack(a)); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.TrackStartEvent](d, nil)
	if err := p.Update(ctx, lavalink.WithTrack(b)); err != nil {
		t.Fatal(err)
	}
	ev1, ev2 := nextEvent(d), nextEvent(d)
	if e1, ok := ev1.(lavalink.TrackEndEvent); !ok || e1.Reason != lavalink.TrackEndReasonReplaced || e1.Track.Info.Identifier != a.Info.Identifier {
		t.Fatalf("first event after replace: %#v", ev1)
	}
	if e2, ok := ev2.(lavalink.TrackStartEvent); !ok || e2.Track.Info.Identifier != b.Info.Identifier {
		t.Fatalf("second event after replace: %#v", ev2)
	}

	// noReplace keeps the current track and emits nothing.
	if err := p.Update(ctx, lavalink.WithTrack(a), lavalink.WithNoReplace(true)); err != nil {
		t.Fatal(err)
	}
	if pl := playerOf(t, e, guild); pl.Track == nil || pl.Track.Info.Identifier != b.Info.Identifier {
		t.Fatalf("noReplace replaced the track: %+v", pl.Track)
	}

	// A null track stops.
	if err := p.Update(ctx, lavalink.WithNullTrack()); err != nil {
		t.Fatal(err)
	}
	stop := nextEvent(d).(lavalink.TrackEndEvent)
	if stop.Reason != lavalink.TrackEndReasonStopped || stop.Track.Info.Identifier != b.Info.Identifier {
		t.Fatalf("stop: %+v", stop)
	}

	// Filters are stored and echoed; endTime ends the track as "finished".
	filters := lavalink.Filters{Timescale: &lavalink.Timescale{Speed: 1.25, Pitch: 1, Rate: 1}}
	if err := p.Update(ctx, lavalink.WithTrack(a), lavalink.WithEndTime(lavalink.Second), lavalink.WithFilters(filters)); err != nil {
		t.Fatal(err)
	}
	if f := p.Filters(); f.Timescale == nil || f.Timescale.Speed != 1.25 {
		t.Fatalf("filters echoed as %+v", f)
	}
	if pl := playerOf(t, e, guild); !strings.Contains(string(pl.Filters), `"timescale":{"speed":1.25`) {
		t.Fatalf("filters stored as %s", pl.Filters)
	}
	byEnd := waitMsg[lavalink.TrackEndEvent](d, nil)
	if byEnd.Reason != lavalink.TrackEndReasonFinished || byEnd.Track.Info.Position != lavalink.Second {
		t.Fatalf("end by endTime %+v", byEnd)
	}

	// Destroy removes the player from the node.
	if err := p.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if ps := e.Players(""); len(ps) != 0 {
		t.Fatalf("players after Destroy: %+v", ps)
	}

	// The recorder saw the client's update with noReplace=true.
	found := false
	for _, req := range e.RequestsTo("PATCH", "/v4/sessions/") {
		if req.Query.Get("noReplace") == "true" {
			found = true
		}
	}
	if !found {
		t.Error("no PATCH with noReplace=true recorded")
	}
}

// TestConformanceResume: a resuming session survives a websocket drop; the
// client reconnects with Session-Id, gets resumed:true, keeps its players
// (whose clocks kept running) and receives the events that happened while it
// was away.
func TestConformanceResume(t *testing.T) {
	e := startEmu(t, Config{Speed: 10})
	d := mustDL(t, e)
	ctx := ctxT(t)
	if err := d.node.Update(ctx, lavalink.SessionUpdate{Resuming: ptr(true), Timeout: ptr(30)}); err != nil {
		t.Fatal(err)
	}
	sid := onlySession(t, e).ID
	if s := onlySession(t, e); !s.Resuming || s.Timeout != 30 {
		t.Fatalf("session %+v after PATCH", s)
	}

	r, _ := d.node.LoadTracks(ctx, "ytsearch:resume")
	tracks := r.Data.(lavalink.Search)
	ga, gb := snowflake.ID(2001), snowflake.ID(2002)
	for i, g := range []snowflake.ID{ga, gb} {
		d.connectVoice(g)
		// Start past 0 so that FailTrack reports "finished", not "loadFailed".
		if err := d.client.Player(g).Update(ctx, lavalink.WithTrack(tracks[i]), lavalink.WithPosition(lavalink.Second)); err != nil {
			t.Fatal(err)
		}
		waitMsg[lavalink.TrackStartEvent](d, func(ev lavalink.TrackStartEvent) bool { return ev.GuildID() == g })
	}
	before := playerOf(t, e, ga).Position

	// Hold the reconnect in the handshake so something can happen while the
	// client is away.
	e.Hang(true)
	if n := e.DropWebsockets(); n != 1 {
		t.Fatalf("dropped %d websockets", n)
	}
	if s := onlySession(t, e); s.Connected || !s.Resumable || s.Players != 2 {
		t.Fatalf("after drop the session is %+v", s)
	}
	if err := e.FailTrack(uint64(gb), "decoder exploded"); err != nil {
		t.Fatal(err)
	}
	e.Hang(false)

	ex := waitMsg[lavalink.TrackExceptionEvent](d, nil)
	if ex.GuildID() != gb || ex.Exception.Message != "decoder exploded" {
		t.Fatalf("replayed exception %+v", ex)
	}
	end := waitMsg[lavalink.TrackEndEvent](d, nil)
	if end.GuildID() != gb || end.Reason != lavalink.TrackEndReasonFinished {
		t.Fatalf("replayed end %+v", end)
	}
	upd := waitMsg[lavalink.PlayerUpdateMessage](d, func(m lavalink.PlayerUpdateMessage) bool { return m.GuildID == ga })
	if int64(upd.State.Position) <= before {
		t.Fatalf("position after resume %d, before drop %d: the clock must keep running", upd.State.Position, before)
	}
	s := onlySession(t, e)
	if s.ID != sid || !s.Connected {
		t.Fatalf("after resume the session is %+v, want %s connected", s, sid)
	}
	hs := e.RequestsTo("GET", "/v4/websocket")
	if len(hs) != 2 || hs[1].Header.Get("Session-Id") != sid {
		t.Fatalf("handshakes %+v", hs)
	}
	if pl := playerOf(t, e, ga); pl.Track == nil || !pl.Connected {
		t.Fatalf("player after resume %+v", pl)
	}
}

func ptr[T any](v T) *T { return &v }

// TestConformanceNoResumeDestroysPlayers: without resuming, a dropped
// websocket destroys the session and its players; the client reconnects into
// a new, empty session and the old one answers 404.
func TestConformanceNoResumeDestroysPlayers(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	old := onlySession(t, e).ID
	guild := snowflake.ID(3001)
	r, _ := d.node.LoadTracks(ctx, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
	d.connectVoice(guild)
	if err := d.client.Player(guild).Update(ctx, lavalink.WithTrack(r.Data.(lavalink.Track))); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.TrackStartEvent](d, nil)

	e.DropWebsockets()
	if len(e.Players("")) != 0 {
		t.Fatalf("players survived a non-resumable drop: %+v", e.Players(""))
	}
	waitUntil(t, "the client reconnects", func() bool {
		ss := e.Sessions()
		return len(ss) == 1 && ss[0].ID != old && ss[0].Connected
	})
	_, err := d.node.Rest().Players(ctx, old)
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 404 || le.Message != "Session not found" {
		t.Fatalf("old session: err = %v, want 404 Session not found", err)
	}
	players, err := d.node.Rest().Players(ctx, onlySession(t, e).ID)
	if err != nil || len(players) != 0 {
		t.Fatalf("new session players = %+v, %v", players, err)
	}
}

func TestConformanceWrongPasswordRejected(t *testing.T) {
	e := startEmu(t, Config{})
	_, err := newDL(t, e, "wrong", time.Second)
	// disgolink retries a refused handshake until the context ends.
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AddNode with a wrong password: %v", err)
	}
	if len(e.Sessions()) != 0 {
		t.Fatal("a session was created with a wrong password")
	}
	if len(e.RequestsTo("GET", "/v4/websocket")) < 1 {
		t.Fatal("no handshake recorded")
	}
}

func TestConformancePartialVoiceStateRejected(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	err := d.client.Player(4001).Update(ctxT(t), lavalink.WithVoice(lavalink.VoiceState{Token: "tok", SessionID: "vsess", ChannelID: 42}))
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 400 || !strings.Contains(le.Message, "Partial Lavalink voice state") {
		t.Fatalf("partial voice: err = %v", err)
	}
	if len(e.Players("")) != 0 {
		t.Fatal("a rejected update created a player")
	}
}

// TestConformanceUserData: the userData a track is played with comes back in
// its events and in the player, as on Lavalink; the TrackEnd of a finished
// track carries an encoding with the final position, so it differs from the
// one sent (clients must not compare encodings).
func TestConformanceUserData(t *testing.T) {
	e := startEmu(t, Config{Speed: 1000})
	d := mustDL(t, e)
	ctx := ctxT(t)
	g := snowflake.ID(7001)
	r, err := d.node.LoadTracks(ctx, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.Data.(lavalink.Track).WithUserData(map[string]any{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	d.connectVoice(g)
	p := d.client.Player(g)
	if err := p.Update(ctx, lavalink.WithTrack(tr), lavalink.WithPaused(true)); err != nil {
		t.Fatal(err)
	}
	start := waitMsg[lavalink.TrackStartEvent](d, nil)
	if string(start.Track.UserData) != `{"k":"v"}` || start.Track.Encoded != tr.Encoded {
		t.Fatalf("TrackStart userData %s, encoded sent back unchanged: %v", start.Track.UserData, start.Track.Encoded == tr.Encoded)
	}
	pl, err := d.node.Rest().Player(ctx, d.node.SessionID(), g)
	if err != nil || pl.Track == nil || string(pl.Track.UserData) != `{"k":"v"}` {
		t.Fatalf("GET player: %+v %v", pl, err)
	}

	if err := p.Update(ctx, lavalink.WithPosition(tr.Info.Length-lavalink.Second), lavalink.WithPaused(false)); err != nil {
		t.Fatal(err)
	}
	end := waitMsg[lavalink.TrackEndEvent](d, nil)
	if end.Reason != lavalink.TrackEndReasonFinished || string(end.Track.UserData) != `{"k":"v"}` || end.Track.Info.Identifier != tr.Info.Identifier {
		t.Fatalf("TrackEnd %s userData %s", end.Reason, end.Track.UserData)
	}
	if end.Track.Encoded == tr.Encoded {
		t.Fatal("the finished track's encoding is the one sent; Lavalink's carries the end position")
	}
	decoded, err := d.node.DecodeTrack(ctx, end.Track.Encoded)
	if err != nil || decoded.Info.Position != tr.Info.Length || decoded.Info.Identifier != tr.Info.Identifier {
		t.Fatalf("decoding the finished track: %+v %v", decoded, err)
	}
	if log := e.PlayerEvents(uint64(g)); len(log) != 2 || string(log[1].UserData) != `{"k":"v"}` {
		t.Fatalf("event log %+v", log)
	}
}

// TestConformanceTrackWithoutUserDataRejected: disgolink's WithTrack sends the
// track's userData as is, so a Track built by hand (nil UserData) goes out as
// "userData": null, which Lavalink's PlayerUpdateTrack (Omissible<JsonObject>)
// refuses. Tracks that came from the node have {} and are fine.
func TestConformanceTrackWithoutUserDataRejected(t *testing.T) {
	e := startEmu(t, Config{})
	d := mustDL(t, e)
	ctx := ctxT(t)
	r, _ := d.node.LoadTracks(ctx, "ytsearch:by hand")
	loaded := r.Data.(lavalink.Search)[0]
	p := d.client.Player(7002)
	err := p.Update(ctx, lavalink.WithTrack(lavalink.Track{Encoded: loaded.Encoded}))
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 400 || !strings.Contains(le.Message, "userData") {
		t.Fatalf("a track with nil UserData: %v", err)
	}
	if !strings.Contains(string(e.RequestsTo("PATCH", "/v4/sessions/")[0].Body), `"userData":null`) {
		t.Fatalf("request %s", e.RequestsTo("PATCH", "/v4/sessions/")[0].Body)
	}
	if err := p.Update(ctx, lavalink.WithTrack(loaded)); err != nil {
		t.Fatalf("a loaded track: %v", err)
	}
	if err := p.Update(ctx, lavalink.WithEncodedTrack(loaded.Encoded)); err != nil {
		t.Fatalf("an encoded track alone: %v", err)
	}
}

// TestConformanceLoadFailureInUpdate: a track identifier that fails to load
// fails the update with 400 and the load exception's message.
func TestConformanceLoadFailureInUpdate(t *testing.T) {
	const broken = "https://www.youtube.com/watch?v=brokenbroke"
	e := startEmu(t, Config{BrokenIdentifier: broken})
	d := mustDL(t, e)
	err := d.client.Player(7003).Update(ctxT(t), lavalink.WithTrackIdentifier(broken))
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 400 || le.Message != "This video is unavailable" {
		t.Fatalf("update with a broken identifier: %v", err)
	}
}

// TestConformanceNoResume: against a server without resuming, enabling it
// fails with 404, and a dropped socket loses the session and its players.
func TestConformanceNoResume(t *testing.T) {
	e := startEmu(t, Config{NoResume: true})
	d := mustDL(t, e)
	ctx := ctxT(t)
	old := onlySession(t, e).ID
	err := d.node.Update(ctx, lavalink.SessionUpdate{Resuming: ptr(true), Timeout: ptr(60)})
	var le lavalink.Error
	if !errors.As(err, &le) || le.Status != 404 {
		t.Fatalf("enabling resuming: %v, want a lavalink.Error with status 404", err)
	}
	g := snowflake.ID(7004)
	r, _ := d.node.LoadTracks(ctx, "ytsearch:no resume")
	d.connectVoice(g)
	if err := d.client.Player(g).Update(ctx, lavalink.WithTrack(r.Data.(lavalink.Search)[0])); err != nil {
		t.Fatal(err)
	}
	waitMsg[lavalink.TrackStartEvent](d, nil)

	e.DropWebsockets()
	if ps := e.Players(""); len(ps) != 0 {
		t.Fatalf("players survived the drop: %+v", ps)
	}
	waitUntil(t, "the client reconnects", func() bool {
		ss := e.Sessions()
		return len(ss) == 1 && ss[0].ID != old && ss[0].Connected
	})
	if _, err := d.node.Rest().Player(ctx, old, g); !errors.As(err, &le) || le.Status != 404 {
		t.Fatalf("old session: %v", err)
	}
}
