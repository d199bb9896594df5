package lavalink

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// fakeServer is a Lavalink server as the pool sees it through
// lavalinkAPI: one session, its players, and the calls it got. With
// fakeAPI and fakeDial the real node actors, Client, watchdog and sweeps
// run under -race, without disgolink.
type fakeServer struct {
	mu       sync.Mutex
	session  string
	down     bool
	noResume bool                    // answers enabling resuming with 404, as NodeLink does
	hold     chan struct{}           // non-nil: dials wait for it
	players  map[snowflake.ID]string // guild → last update's track JSON
	updates  map[snowflake.ID]int
	destroys map[snowflake.ID]int
	// foreign holds the players of other sessions on the server (another
	// member's, or a dead process's waiting for a resume), which only
	// SessionPlayer and DestroySessionPlayer reach. foreignCalls counts
	// their calls ("GET sid" or "DELETE sid"); failForeign answers them
	// with that status instead.
	foreign      map[string]map[snowflake.ID]lavalink.Player
	foreignCalls []string
	failForeign  int
	// waiting lists the foreign sessions waiting for a resume (their
	// member died): REST does not reach them (404 "Session not found")
	// until a claim resumes them; resumes counts the claims that did.
	waiting map[string]bool
	resumes int
	// dropAfterRead makes a session wait for a resume right after a read
	// of one of its players: its member closed its websocket between a
	// takeover's read and destroy.
	dropAfterRead map[string]bool
	// heldElsewhere counts the next claims of a session that find it held
	// by another member's claim (answered with a new session) which ends
	// right after, leaving it waiting; claims counts every claim.
	heldElsewhere map[string]int
	claims        int
	// sessionUpdates records the UpdateSession calls; updateErr, when set,
	// answers them (after recording).
	sessionUpdates []lavalink.SessionUpdate
	updateErr      error
	// sessions counts the sessions a server without resuming started
	// after the first (each reconnection starts one).
	sessions int
}

func newFakeServer(name string) *fakeServer {
	return &fakeServer{session: name + "-s1", players: map[snowflake.ID]string{},
		updates: map[snowflake.ID]int{}, destroys: map[snowflake.ID]int{},
		foreign: map[string]map[snowflake.ID]lavalink.Player{}, waiting: map[string]bool{}}
}

// resume is Client.resume against the fake: a waiting session is resumed
// (connected to the claim until it closes), any other answered with a new
// session.
func (s *fakeServer) resume(sid string) (func(), bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, false, err
	}
	s.claims++
	if s.heldElsewhere[sid] > 0 {
		s.heldElsewhere[sid]--
		return func() {}, false, nil
	}
	if !s.waiting[sid] {
		return func() {}, false, nil
	}
	s.waiting[sid] = false
	s.resumes++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.waiting[sid] = true
		})
	}, true, nil
}

// isWaiting reports whether session sid waits for a resume (no claim
// holds it), and how many claims resumed sessions.
func (s *fakeServer) isWaiting(sid string) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting[sid], s.resumes
}

// addForeign puts a player of session sid on the server.
func (s *fakeServer) addForeign(sid string, p lavalink.Player) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.foreign[sid] == nil {
		s.foreign[sid] = map[snowflake.ID]lavalink.Player{}
	}
	s.foreign[sid][p.GuildID] = p
}

func (s *fakeServer) hasForeign(sid string, g snowflake.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.foreign[sid][g]
	return ok
}

func (s *fakeServer) foreignLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.foreignCalls...)
}

// notFoundErr is Lavalink's 404 body as disgolink returns it.
func notFoundErr(path, msg string) error {
	return lavalink.Error{Status: 404, StatusError: "Not Found", Message: msg, Path: path}
}

var errRefused = errors.New("dial tcp: connection refused")

func (s *fakeServer) setDown(d bool) { s.mu.Lock(); s.down = d; s.mu.Unlock() }

func (s *fakeServer) check() error {
	if s.down {
		return errRefused
	}
	return nil
}

func (s *fakeServer) counts(g snowflake.ID) (updates, destroys int, has bool, track string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	track, has = s.players[g]
	return s.updates[g], s.destroys[g], has, track
}

type fakeAPI struct{ s *fakeServer }

func (f fakeAPI) SessionID() string { f.s.mu.Lock(); defer f.s.mu.Unlock(); return f.s.session }
func (f fakeAPI) Open(context.Context) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.check()
}
func (fakeAPI) Track(snowflake.ID)   {}
func (fakeAPI) Untrack(snowflake.ID) {}
func (f fakeAPI) UpdatePlayer(_ context.Context, g snowflake.ID, u lavalink.PlayerUpdate) (*lavalink.Player, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if err := f.s.check(); err != nil {
		return nil, err
	}
	f.s.updates[g]++
	tr, _ := json.Marshal(u.Track)
	if u.Track != nil || f.s.players[g] == "" {
		f.s.players[g] = string(tr)
	}
	return &lavalink.Player{}, nil
}
func (f fakeAPI) DestroyPlayer(_ context.Context, g snowflake.ID) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if err := f.s.check(); err != nil {
		return err
	}
	f.s.destroys[g]++
	delete(f.s.players, g)
	return nil
}

// foreignLocked finds a player of session sid as Lavalink does: an
// unknown session and a session without the player are both 404s.
func (f fakeAPI) foreignLocked(method, sid string, g snowflake.ID) (lavalink.Player, error) {
	f.s.foreignCalls = append(f.s.foreignCalls, method+" "+sid)
	if err := f.s.check(); err != nil {
		return lavalink.Player{}, err
	}
	path := "/v4/sessions/" + sid + "/players/" + g.String()
	if f.s.waiting[sid] {
		return lavalink.Player{}, notFoundErr(path, "Session not found")
	}
	if f.s.failForeign != 0 {
		return lavalink.Player{}, lavalink.Error{Status: f.s.failForeign, Message: "injected", Path: path}
	}
	if sid == f.s.session {
		if _, ok := f.s.players[g]; ok {
			return lavalink.Player{GuildID: g}, nil
		}
		return lavalink.Player{}, notFoundErr(path, "Player not found")
	}
	ps, ok := f.s.foreign[sid]
	if !ok {
		return lavalink.Player{}, notFoundErr(path, "Session not found")
	}
	p, ok := ps[g]
	if !ok {
		return lavalink.Player{}, notFoundErr(path, "Player not found")
	}
	return p, nil
}
func (f fakeAPI) SessionPlayer(_ context.Context, sid string, g snowflake.ID) (*lavalink.Player, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	p, err := f.foreignLocked("GET", sid, g)
	if err != nil {
		return nil, err
	}
	if f.s.dropAfterRead[sid] {
		delete(f.s.dropAfterRead, sid)
		f.s.waiting[sid] = true
	}
	return &p, nil
}
func (f fakeAPI) DestroySessionPlayer(_ context.Context, sid string, g snowflake.ID) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if _, err := f.foreignLocked("DELETE", sid, g); err != nil {
		var le lavalink.Error
		if errors.As(err, &le) && le.Message == "Player not found" {
			return nil // Lavalink's destroy does not care whether the player existed (204)
		}
		return err // an unknown session is a 404
	}
	if sid == f.s.session {
		f.s.destroys[g]++
		delete(f.s.players, g)
		return nil
	}
	delete(f.s.foreign[sid], g)
	return nil
}
func (f fakeAPI) Stats(context.Context) (*lavalink.Stats, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if err := f.s.check(); err != nil {
		return nil, err
	}
	return &lavalink.Stats{}, nil
}
func (fakeAPI) LoadTracks(context.Context, string) (*lavalink.LoadResult, error) {
	return nil, errors.New("not in the fake")
}
func (f fakeAPI) UpdateSession(_ context.Context, u lavalink.SessionUpdate) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.sessionUpdates = append(f.s.sessionUpdates, u)
	if f.s.updateErr != nil {
		return f.s.updateErr
	}
	if f.s.noResume {
		return lavalink.Error{Status: 404, StatusError: "Not Found", Message: "Not Found", Path: "/v4/sessions/" + f.s.session}
	}
	return f.s.check()
}
func (fakeAPI) CloseSocket() {}
func (fakeAPI) Close()       {}

// newFakeLinkClient runs a Client with real node actors over fake
// servers "a" and "b".
func newFakeLinkClient(t *testing.T, br config.Breaker, tm Timing) (*Client, map[string]*fakeServer, *recorder) {
	t.Helper()
	return newFakeLinkClientWith(t, br, tm, nil, nil)
}

// newFakeLinkClientWith also lets the test set up the servers before the
// client connects, and see the client's logs.
func newFakeLinkClientWith(t *testing.T, br config.Breaker, tm Timing, setup func(map[string]*fakeServer), log *slog.Logger) (*Client, map[string]*fakeServer, *recorder) {
	t.Helper()
	servers := map[string]*fakeServer{"a": newFakeServer("a"), "b": newFakeServer("b")}
	if setup != nil {
		setup(servers)
	}
	rec := &recorder{}
	tm.Tick = 10 * time.Millisecond
	tm.Reconnect.Base, tm.Reconnect.Max = 10*time.Millisecond, 20*time.Millisecond
	if tm.StallThreshold == 0 {
		tm.StallThreshold = time.Hour
	}
	if tm.HealthInterval == 0 {
		tm.HealthInterval = time.Hour
	}
	var nodes []config.LavalinkNode
	for _, n := range []string{"a", "b"} {
		nodes = append(nodes, config.LavalinkNode{Name: n, Address: "fake:" + n})
	}
	c, err := New(Options{BotUserID: "123456789012345678", Nodes: nodes, Breaker: br, Log: log,
		Registerer: prometheus.NewRegistry(), OnEvent: rec.event, OnReady: rec.readyFn, OnBreaker: rec.change, Timing: tm})
	if err != nil {
		t.Fatal(err)
	}
	c.dial = func(_ context.Context, l *link, cfg config.LavalinkNode) (*link, error) {
		s := servers[cfg.Name]
		s.mu.Lock()
		err, hold := s.check(), s.hold
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if err != nil {
			return l, err
		}
		if l != nil {
			// A server without resuming ended the session with its socket:
			// the new connection gets a new one.
			s.mu.Lock()
			if s.noResume {
				s.sessions++
				s.session = cfg.Name + "-s" + strconv.Itoa(s.sessions+1)
			}
			s.mu.Unlock()
			return l, nil
		}
		return &link{name: cfg.Name, api: fakeAPI{s: s}}, nil
	}
	c.resume = func(_ context.Context, cfg config.LavalinkNode, sid string) (func(), bool, error) {
		return servers[cfg.Name].resume(sid)
	}
	c.Start(context.Background())
	t.Cleanup(c.Close)
	waitUntil(t, "both nodes usable", func() bool { return c.isUsable("a") && c.isUsable("b") })
	return c, servers, rec
}

// realTrack is a track as the Lavalink emulator's catalogue issues it
// (lavaplayer's encoding, not a placeholder).
func realTrack(t testing.TB) music.Track {
	t.Helper()
	res := lavalinkemu.Resolve("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
	tr, ok := res.Data.(lavalinkemu.Track)
	if !ok {
		t.Fatalf("the catalogue loads %s for a video URL", res.LoadType)
	}
	return music.Track{Encoded: tr.Encoded, Identifier: tr.Info.Identifier, Title: tr.Info.Title, Author: tr.Info.Author,
		Length: time.Duration(tr.Info.Length) * time.Millisecond, SourceName: tr.Info.SourceName}
}

// playNode is the node of a Play's holder.
func playNode(h audio.Holder, err error) (string, error) { return h.Node, err }

func playReq(t testing.TB) audio.PlayRequest {
	return audio.PlayRequest{Track: realTrack(t), Volume: 80,
		Voice: audio.Voice{ChannelID: "800000000000000001", SessionID: "vs", Token: "tok", Endpoint: "ep"}}
}

// TestFakeLinkMoveOffOpenBreaker (findings 2, 1, 10 under -race): a node
// whose breaker opens while its link is up: the guild is told to move,
// moves, and its old player is destroyed on the old node.
func TestFakeLinkMoveOffOpenBreaker(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 0.5, MinRequests: 3, ResetTimeout: time.Hour}
	c, servers, rec := newFakeLinkClient(t, br, Timing{})
	ctx := context.Background()
	g := "900000000000000001"
	gid := snowflake.MustParse(g)
	from, err := playNode(c.Play(ctx, g, playReq(t)))
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		c.report(from, lavalink.Error{Status: 500})
	}
	waitUntil(t, "NODE_LOST", func() bool { return rec.lostFor(from)[g] })
	to, err := playNode(c.Play(ctx, g, playReq(t)))
	if err != nil || to == from {
		t.Fatalf("moved to %q (%v)", to, err)
	}
	waitUntil(t, "old player destroyed", func() bool {
		_, d, has, _ := servers[from].counts(gid)
		return d == 1 && !has
	})
	if _, _, has, _ := servers[to].counts(gid); !has {
		t.Fatal("no player on the new node")
	}
}

// TestFakeLinkSweepAfterOutage (finding 3 under -race): a player that
// left a node while it was down is destroyed there once it is back with
// the same session; a sweep that cannot run keeps its list.
func TestFakeLinkSweepAfterOutage(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, rec := newFakeLinkClient(t, br, Timing{})
	ctx := context.Background()
	g := "900000000000000002"
	gid := snowflake.MustParse(g)
	from, err := playNode(c.Play(ctx, g, playReq(t)))
	if err != nil {
		t.Fatal(err)
	}
	servers[from].setDown(true)
	c.sendNode(from, wsClosed{})
	waitUntil(t, "NODE_LOST", func() bool { return rec.lostFor(from)[g] })
	to, err := playNode(c.Play(ctx, g, playReq(t)))
	if err != nil || to == from {
		t.Fatalf("moved to %q (%v)", to, err)
	}
	// The outage goes on: the node actor keeps retrying (each failed
	// attempt is a later message through it), and no sweep or destroy
	// reaches the old player meanwhile.
	waitUntil(t, "several failed reconnection attempts", func() bool {
		return counterValue(t, c.m.reconnects.WithLabelValues(from, "failed")) >= 3
	})
	if _, _, has, _ := servers[from].counts(gid); !has {
		t.Fatal("the old player vanished while its node was down")
	}
	servers[from].setDown(false) // back, same session: the old player plays on
	waitUntil(t, "stray destroyed", func() bool {
		_, d, has, _ := servers[from].counts(gid)
		return d == 1 && !has
	})
	waitUntil(t, "strays forgotten", func() bool {
		r, err := c.ask(ctx, leftReq{})
		return err == nil && r.(int) == 0
	})
	if _, _, has, _ := servers[to].counts(gid); !has {
		t.Fatal("the new player was destroyed")
	}
}

// TestFakeLinkWatchdog (findings 4, 5 under -race): a stalled player is
// nudged on its node; after Stop, no nudge restarts it.
func TestFakeLinkWatchdog(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, rec := newFakeLinkClient(t, br, Timing{StallThreshold: 60 * time.Millisecond})
	ctx := context.Background()
	g := "900000000000000003"
	gid := snowflake.MustParse(g)
	node, err := playNode(c.Play(ctx, g, playReq(t)))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	feeding := make(chan struct{})
	go func() { // a frozen player keeps reporting one position
		defer close(feeding)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			c.playerMessage(node, g, lavalink.PlayerUpdateMessage{GuildID: gid,
				State: lavalink.PlayerState{Position: 5000, Connected: true, Time: lavalink.Timestamp{Time: time.Now()}}}, time.Now())
		}
	}()
	defer func() { close(stop); <-feeding }()
	waitUntil(t, "a nudge", func() bool { u, _, _, _ := servers[node].counts(gid); return u >= 2 })
	if err := c.Stop(ctx, g); err != nil {
		t.Fatal(err)
	}
	// A TrackStuck now (no track) goes to the session.
	c.playerMessage(node, g, lavalink.TrackStuckEvent{}, time.Now())
	waitUntil(t, "TrackStuck forwarded", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, e := range rec.events {
			if e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK {
				return true
			}
		}
		return false
	})
	// A check as late as several thresholds after the Stop (what later
	// sweeps would make) must not nudge the stopped player either.
	c.checkPlayers(time.Now().Add(10 * 60 * time.Millisecond))
	// Close waits for the watchdog and every nudge it started (before or
	// after the Stop): none of them re-sent the stopped track. Close does
	// not touch the players on the nodes.
	c.Close()
	if _, _, _, tr := servers[node].counts(gid); !strings.Contains(tr, "null") {
		t.Fatalf("the stopped track was re-sent: %s", tr)
	}
}

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestFakeLinkCloseWhileDialling (findings 8, 9 under -race): Close while
// a node is being re-dialled waits for the dial, and the link is closed.
func TestFakeLinkCloseWhileDialling(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, _ := newFakeLinkClient(t, br, Timing{ResumeGrace: 5 * time.Second})
	release := make(chan struct{})
	servers["a"].mu.Lock()
	servers["a"].hold = release
	servers["a"].mu.Unlock()
	c.mu.Lock()
	l := c.links["a"]
	c.mu.Unlock()
	c.sendNode("a", wsClosed{}) // the resume try blocks in dial
	waitUntil(t, "a down", func() bool { _, up := c.liveLink("a"); return !up })
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	waitUntil(t, "Close begun", c.closing.Load)
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if !l.closed.Load() {
		t.Fatal("the link re-dialled during Close was left open")
	}
	if _, err := c.Play(context.Background(), "1", playReq(t)); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Play after Close: %v", err)
	}
}

// TestFakeLinkResumeKeepsResuming: a resumed session is not asked to resume
// again. It was asked, and while disgolink's own reconnect loop was
// resuming the session Lavalink answered 404 "Session not found": the node
// then passed for one without resuming, and Close left its session playing
// for the resume timeout instead of turning resuming off.
func TestFakeLinkResumeKeepsResuming(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, _ := newFakeLinkClient(t, br, Timing{})
	a := servers["a"]
	a.mu.Lock()
	if len(a.sessionUpdates) != 1 || a.sessionUpdates[0].Resuming == nil || !*a.sessionUpdates[0].Resuming {
		a.mu.Unlock()
		t.Fatalf("session updates at connect: %+v, want resuming turned on", a.sessionUpdates)
	}
	a.sessionUpdates = nil
	a.updateErr = lavalink.Error{Status: 404, StatusError: "Not Found", Message: "Session not found", Path: "/v4/sessions/" + a.session}
	a.mu.Unlock()

	c.sendNode("a", wsClosed{})
	waitUntil(t, "a resumed", func() bool { return counterValue(t, c.m.reconnects.WithLabelValues("a", "resumed")) >= 1 })
	var m dto.Metric
	if err := c.m.resuming.WithLabelValues("a").Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.GetGauge().GetValue() != 1 {
		t.Fatalf("ensemble_lavalink_node_resuming{node=a} = %v after a resume, want 1", m.GetGauge().GetValue())
	}
	a.mu.Lock()
	asked := len(a.sessionUpdates)
	a.updateErr = nil
	a.mu.Unlock()
	if asked != 0 {
		t.Fatalf("%d session updates on a resume, want none", asked)
	}

	c.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.sessionUpdates); n != 1 || a.sessionUpdates[0].Resuming == nil || *a.sessionUpdates[0].Resuming {
		t.Fatalf("session updates at Close: %+v, want resuming turned off", a.sessionUpdates)
	}
}
