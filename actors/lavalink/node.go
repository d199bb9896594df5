package lavalink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// link is one node's disgolink client and node. Each node has a client of
// its own: disgolink routes a websocket message to the player of its guild
// in the client, whatever node that player lives on, so with one shared
// client an old node's late events would be taken for the new node's.
// The node actor creates it; the Client uses it for REST calls (disgolink
// clients are safe for concurrent use apart from the races the Makefile
// lists).
type link struct {
	name string
	api  lavalinkAPI
	// lastMsg is the unix-nano time of the last websocket message: a
	// reader killed by a malformed message leaves the status CONNECTED and
	// only silence gives it away.
	lastMsg atomic.Int64
	// tracks is how many of this member's players on the node have a
	// track (set by the watchdog): they make Lavalink send playerUpdates,
	// so silence is suspicious much sooner.
	tracks atomic.Int32
	// closed is set by closeLink.
	closed atomic.Bool
}

func (l *link) sessionID() string { return l.api.SessionID() }

// lavalinkAPI is what the pool uses of one node's disgolink client and
// node. dgAPI is the real one; tests put a fake behind it, so the node
// actor, the Client, the watchdog and the sweeps run under -race without
// disgolink (which races internally).
type lavalinkAPI interface {
	SessionID() string
	// Open reconnects the websocket (nil if it is already connected).
	Open(ctx context.Context) error
	// Track makes the client deliver the guild's events; Untrack stops
	// it.
	Track(gid snowflake.ID)
	Untrack(gid snowflake.ID)
	UpdatePlayer(ctx context.Context, gid snowflake.ID, u lavalink.PlayerUpdate) (*lavalink.Player, error)
	DestroyPlayer(ctx context.Context, gid snowflake.ID) error
	// SessionPlayer and DestroySessionPlayer address the guild's player
	// in another session on the node, not only this link's: Lavalink takes
	// the ID of any connected session with the node's password (not of one
	// waiting for a resume: 404 "Session not found"). They are how a new
	// activation takes over the player of a previous one
	// (Client.TakeOver).
	SessionPlayer(ctx context.Context, sessionID string, gid snowflake.ID) (*lavalink.Player, error)
	DestroySessionPlayer(ctx context.Context, sessionID string, gid snowflake.ID) error
	Stats(ctx context.Context) (*lavalink.Stats, error)
	LoadTracks(ctx context.Context, identifier string) (*lavalink.LoadResult, error)
	UpdateSession(ctx context.Context, u lavalink.SessionUpdate) error
	// CloseSocket drops the websocket (our reconnection takes over);
	// Close closes the client for good.
	CloseSocket()
	Close()
}

type dgAPI struct {
	dl   disgolink.Client
	node disgolink.Node
}

func (d dgAPI) SessionID() string { return d.node.SessionID() }
func (d dgAPI) Open(ctx context.Context) error {
	if err := d.node.Open(ctx); err != nil && !errors.Is(err, disgolink.ErrNodeAlreadyConnected) {
		return err
	}
	return nil
}

// Track: disgolink delivers a guild's events only if its client has a
// player for the guild; the player object is otherwise unused (REST calls
// go through the node, which avoids the player's unlocked field writes).
func (d dgAPI) Track(gid snowflake.ID)   { d.dl.PlayerOnNode(d.node, gid) }
func (d dgAPI) Untrack(gid snowflake.ID) { d.dl.RemovePlayer(gid) }
func (d dgAPI) UpdatePlayer(ctx context.Context, gid snowflake.ID, u lavalink.PlayerUpdate) (*lavalink.Player, error) {
	return d.node.Rest().UpdatePlayer(ctx, d.node.SessionID(), gid, u)
}
func (d dgAPI) DestroyPlayer(ctx context.Context, gid snowflake.ID) error {
	return d.node.Rest().DestroyPlayer(ctx, d.node.SessionID(), gid)
}
func (d dgAPI) SessionPlayer(ctx context.Context, sessionID string, gid snowflake.ID) (*lavalink.Player, error) {
	return d.node.Rest().Player(ctx, sessionID, gid)
}
func (d dgAPI) DestroySessionPlayer(ctx context.Context, sessionID string, gid snowflake.ID) error {
	return d.node.Rest().DestroyPlayer(ctx, sessionID, gid)
}
func (d dgAPI) Stats(ctx context.Context) (*lavalink.Stats, error) { return d.node.Rest().Stats(ctx) }
func (d dgAPI) LoadTracks(ctx context.Context, id string) (*lavalink.LoadResult, error) {
	return d.node.LoadTracks(ctx, id)
}
func (d dgAPI) UpdateSession(ctx context.Context, u lavalink.SessionUpdate) error {
	return d.node.Update(ctx, u)
}
func (d dgAPI) CloseSocket() { d.node.Close() }
func (d dgAPI) Close()       { d.dl.Close() }

// Messages of the node actor.
type (
	nodeTick    struct{}
	connectDone struct {
		// box identifies the node actor instance (and its attempt)
		// that started the dial: a result for another instance (the
		// actor was restarted meanwhile) is not adopted.
		box       *dialBox
		link      *link
		sessionID string
		resumed   bool
		grace     bool
		// noResume is the server's answer when it refused to enable
		// session resuming (some Lavalink-compatible servers have no
		// such endpoint); nil when resuming is on.
		noResume error
		err      error
	}
	wsClosed   struct{}
	wsOpened   struct{}
	outcome    struct{ err error }
	healthDone struct {
		stats *lavalink.Stats
		err   error
	}
	// liveDone: the answer to the liveness call made on link l.
	liveDone struct {
		l   *link
		err error
	}
	probe     struct{ token uint64 }
	probeDone struct {
		token uint64
		err   error
	}
	wsStats   struct{ s lavalink.Stats }
	sweep     struct{ guilds []string }
	sweepDone struct{}
)

// Messages from a node actor to the pool.
type (
	nodeUp struct {
		name string
		link *link
		// playersLost: the node answered with a new session, so the
		// players this member had there are gone.
		playersLost bool
	}
	nodeDown struct{ name string } // websocket lost; a resume is being tried
	// nodeLost: the resume failed, or cannot be tried: its players must
	// move. gone: they are known to be gone (a node without resuming
	// ends them with the websocket), so even the same node must get them
	// anew.
	nodeLost struct {
		name string
		gone bool
	}
	nodeLoad struct {
		name string
		load Load
	}
	nodeOK      struct{ name string } // one successful interaction
	probeResult struct {              // the answer to the breaker's probe
		name  string
		token uint64
		err   error
	}
)

// dialBox hands connection results from dial goroutines to one node actor
// instance. A link a dial produced is either taken by the actor
// (connectDone) or closed: by shutdown if it is still in the box then, or
// by the dial goroutine itself if it finishes after shutdown. Without it,
// a result that arrives after a restart or a stop would leave a second
// disgolink client (and its websocket) open for good.
type dialBox struct {
	mu      sync.Mutex
	closed  bool
	pending map[*link]bool
}

// put offers a dial's link; false when the actor has shut down (the
// caller closes the link).
func (b *dialBox) put(l *link) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.pending[l] = true
	return true
}

// take claims l for the actor; false if shutdown already closed it.
func (b *dialBox) take(l *link) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.pending[l] {
		return false
	}
	delete(b.pending, l)
	return true
}

// shut closes every offered link the actor has not taken, except keep,
// and refuses later ones.
func (b *dialBox) shut(keep *link) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for l := range b.pending {
		if l != keep {
			closeLink(l)
		}
	}
	b.pending = nil
}

// closeLink closes a link's disgolink client (idempotent).
//
// Known limitation (disgolink v3.1.0, node.go:305-309 and 332): when a
// node's read loop fails, disgolink starts its own reconnect loop in a
// goroutine with context.Background() and a fixed 2 s × attempt delay
// (capped at 30 s), no jitter. Close does not stop it: a node that is
// down when we close keeps a goroutine retrying for ever (a leak per
// closed link), every member reconnects in lockstep, and when it gets
// through it sends the old Session-Id and may resume a session we have
// given up. We cannot cancel it from outside; our own reconnection
// (node actor backoff) is what we rely on.
func closeLink(l *link) {
	if l == nil {
		return
	}
	l.closed.Store(true)
	if l.api != nil {
		l.api.Close()
	}
}

// nodeActor owns this member's connection to one Lavalink server: it
// connects and reconnects (our jittered exponential backoff, always with a
// deadline, since disgolink's AddNode retries forever), enables session
// resuming, watches for a dead reader, polls stats, runs the breaker's
// probe, and escalates every failure to the pool, whose supervisor
// strategy is the breaker.
type nodeActor struct {
	cfg config.LavalinkNode
	c   *Client

	link        *link
	up          bool
	sessionID   string
	connecting  bool
	graceTry    bool // the next attempt is the quick resume try after a loss
	attempt     int
	nextAttempt time.Time
	lastHealth  time.Time
	healthBusy  bool
	lastLive    time.Time
	liveBusy    bool
	probeBusy   bool
	deficit     int
	stop        chan struct{}
	box         *dialBox
	// incident: a connection loss (silence, closed websocket, failed
	// resume) was escalated and the node has not been up since: the
	// breaker counts one incident once, not once per symptom.
	inIncident bool
	sweeping   bool // a sweep goroutine is running
	// noResume: the server cannot resume sessions, so a websocket loss
	// ends every player on it; warnedNoResume keeps the WARN to one.
	noResume       bool
	warnedNoResume bool
}

func (a *nodeActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.stop = make(chan struct{})
		a.box = &dialBox{pending: map[*link]bool{}}
		go ticker(ctx.ActorSystem(), ctx.Self(), a.c.t.Tick, a.stop, nodeTick{})
		a.connect(ctx)
	case *actor.Stopping, *actor.Restarting:
		a.shutdown()
	case nodeTick:
		a.tick(ctx)
	case connectDone:
		a.connected(ctx, m)
	case wsOpened:
		// disgolink's own reconnect loop got there first: adopt it (the
		// attempt sees ErrNodeAlreadyConnected and checks the session).
		if !a.up && !a.connecting && a.link != nil {
			a.connect(ctx)
		}
	case wsClosed:
		a.closed(ctx)
	case wsStats:
		if m.s.FrameStats != nil {
			a.deficit = m.s.FrameStats.Deficit
		}
		a.load(ctx, m.s)
	case outcome:
		a.report(ctx, m.err, "")
	case liveDone:
		a.liveBusy = false
		a.live(ctx, m)
	case healthDone:
		a.healthBusy = false
		if a.report(ctx, m.err, "") && m.stats != nil {
			a.load(ctx, *m.stats)
		}
	case probe:
		a.runProbe(ctx, m.token)
	case sweep:
		a.sweep(ctx, m.guilds)
	case sweepDone:
		a.sweeping = false
	case probeDone:
		a.probeBusy = false
		a.probeAnswer(ctx, m.token, m.err)
	}
}

// live handles the answer to a liveness call: unanswered within
// LiveTimeout on the link still in use, the node hangs. Other failures
// (refused, 5xx) are the health poll's and the breaker's business.
func (a *nodeActor) live(ctx actor.Context, m liveDone) {
	var ne net.Error
	timedOut := errors.Is(m.err, context.DeadlineExceeded) || errors.As(m.err, &ne) && ne.Timeout()
	if m.l != a.link || !a.up || !timedOut {
		return
	}
	a.log().Warn("lavalink node does not answer; reconnecting", "waited", a.c.t.LiveTimeout)
	a.incident(ctx, "hung", fmt.Errorf("no answer within %v", a.c.t.LiveTimeout))
	a.link.api.CloseSocket() // OnNodeClose → wsClosed: the resume try, then the move
}

// probeAnswer hands the probe's result to the pool, which gives it to the
// breaker with its token.
func (a *nodeActor) probeAnswer(ctx actor.Context, token uint64, err error) {
	if err != nil {
		a.c.m.failures.WithLabelValues(a.cfg.Name, "probe").Inc()
		a.log().Warn("lavalink breaker probe failed", "err", err)
	}
	ctx.Send(ctx.Parent(), probeResult{name: a.cfg.Name, token: token, err: err})
}

// resumeOffTimeout bounds the call that turns resuming off when the client
// leaves for good (within node.shutdown_timeout's default 5 s).
const resumeOffTimeout = 2 * time.Second

func (a *nodeActor) shutdown() {
	if a.stop != nil {
		close(a.stop)
		a.stop = nil
	}
	if a.box != nil {
		a.box.shut(a.link)
	}
	if a.link == nil {
		return
	}
	if a.up && !a.noResume && !a.c.o.KeepPlayersOnClose {
		// Leaving on purpose with no one to take the players over: turn
		// resuming off first, so Lavalink ends the session and its players
		// when the socket closes instead of playing on for ResumeTimeout.
		// Bounded apart from DestroyTimeout: a busy machine took more
		// than its 500 ms, and the session then played on for the whole
		// resume timeout.
		ctx, cancel := context.WithTimeout(context.Background(), resumeOffTimeout)
		off := false
		if err := a.link.api.UpdateSession(ctx, lavalink.SessionUpdate{Resuming: &off}); err != nil {
			a.log().Warn("could not turn lavalink resuming off; this member's players play on until the resume timeout",
				"err", err, "resume_timeout", a.c.t.ResumeTimeout)
		}
		cancel()
	}
	closeLink(a.link) // see closeLink: disgolink's own reconnect loop outlives this
}

// ticker sends msg to pid every d until stop closes.
func ticker(sys *actor.ActorSystem, pid *actor.PID, d time.Duration, stop <-chan struct{}, msg any) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			sys.Root.Send(pid, msg)
		}
	}
}

func (a *nodeActor) log() *slog.Logger { return a.c.log.With("node", a.cfg.Name) }

// connect starts one connection attempt off the actor's goroutine: a
// dial can block far beyond its context (disgolink holds a mutex while its
// own reconnect loop dials), and the mailbox must keep flowing meanwhile.
func (a *nodeActor) connect(ctx actor.Context) {
	if a.connecting {
		return
	}
	a.connecting = true
	grace := a.graceTry
	a.graceTry = false
	timeout := a.c.t.ConnectTimeout
	if grace {
		timeout = a.c.t.ResumeGrace
	}
	sys, self := ctx.ActorSystem(), ctx.Self()
	l, prev, cfg, c, box := a.link, a.sessionID, a.cfg, a.c, a.box
	started := c.goAsync(func() {
		cctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res := connectDone{grace: grace, box: box}
		res.link, res.err = c.dial(cctx, l, cfg)
		if res.err != nil && res.link != nil && res.link != l {
			closeLink(res.link) // a dialer that returned a link with its error
			res.link = nil
		}
		if res.link != nil && res.link != l && !box.put(res.link) {
			closeLink(res.link) // a new link after the actor stopped: nobody would close it
			return
		}
		if res.err == nil && (box.isClosed() || c.closing.Load()) {
			closeLink(res.link) // reopened after the actor stopped
			return
		}
		if res.err == nil {
			res.sessionID = res.link.sessionID()
			res.resumed = prev != "" && res.sessionID == prev
		}
		// A resumed session keeps its settings (only a session with resuming
		// on can be resumed), so only a new one is told. Asking again on a
		// resume raced disgolink's own reconnect loop: while its resume was
		// under way, Lavalink answered 404 "Session not found", which read as
		// a server without resuming (and shutdown then left the session
		// playing for its resume timeout).
		if res.err == nil && !res.resumed {
			// With resuming on, Lavalink keeps our players playing while
			// our websocket is away, and disgolink sends the session ID
			// when it reconnects (it records it from this answer).
			on, secs := true, int(c.t.ResumeTimeout/time.Second)
			err := res.link.api.UpdateSession(cctx, lavalink.SessionUpdate{Resuming: &on, Timeout: &secs})
			switch {
			case refusedResuming(err):
				// The server answered, without resuming (NodeLink: 404):
				// it is still worth using.
				res.noResume = err
			case err != nil:
				res.err = fmt.Errorf("enable resuming: %w", err)
			}
		}
		sys.Root.Send(self, res)
	})
	if !started {
		a.connecting = false
	}
}

// refusedResuming reports a server that answered the request to enable
// session resuming with a client error: it has no such thing, as opposed
// to failing (5xx, timeouts), which makes the connection attempt fail.
func refusedResuming(err error) bool {
	var le lavalink.Error
	return errors.As(err, &le) && le.Status >= 400 && le.Status < 500
}

func (b *dialBox) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// dialDisgolink connects l's node again, or creates the link on the first
// call (Client.dial; tests replace it).
func (c *Client) dialDisgolink(ctx context.Context, l *link, cfg config.LavalinkNode) (*link, error) {
	// disgolink's Open retries a failed dial after 2 s, 4 s, ... until the
	// context ends, so a refused connection would cost the whole deadline.
	// A plain TCP dial first fails fast, and our backoff decides when to
	// try again.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return l, err
	}
	_ = conn.Close()
	if l != nil {
		return l, l.api.Open(ctx)
	}
	nl := &link{name: cfg.Name}
	dl := disgolink.New(c.uid,
		disgolink.WithLogger(libLogger(c.log, cfg.Name)),
		disgolink.WithHTTPClient(c.http),
		disgolink.WithListeners(nodeListener{c: c, l: nl}),
		disgolink.WithPlugins(nodePlugin{c: c, l: nl}),
	)
	n, err := dl.AddNode(ctx, disgolink.NodeConfig{
		Name: cfg.Name, Address: cfg.Address, Password: cfg.Password.Reveal(), Secure: cfg.Secure,
	})
	if err != nil {
		dl.Close()
		return nil, err
	}
	nl.api = dgAPI{dl: dl, node: n}
	nl.lastMsg.Store(time.Now().UnixNano())
	return nl, nil
}

// libLogger is disgolink's logger: never below INFO, since disgolink logs
// REST bodies at DEBUG, and those carry the voice token, endpoint and
// session ID.
func libLogger(base *slog.Logger, node string) *slog.Logger {
	return slog.New(telemetry.WithMinLevel(base.Handler(), slog.LevelInfo)).With("lib", "disgolink", "node", node)
}

func (a *nodeActor) connected(ctx actor.Context, m connectDone) {
	if m.box != a.box {
		// From the attempt of an earlier incarnation of this actor: that
		// incarnation's shutdown closed (or its goroutine will close) the
		// link.
		return
	}
	a.connecting = false
	if m.link != nil && m.link != a.link {
		if !a.box.take(m.link) {
			return // closed by shutdown meanwhile
		}
		if a.link != nil && a.link != m.link {
			closeLink(a.link) // never happens with one attempt at a time; never leak one
		}
		a.link = m.link
	}
	if m.err != nil {
		a.c.m.reconnects.WithLabelValues(a.cfg.Name, "failed").Inc()
		if m.grace {
			// Only the loss counts against the breaker, not each retry
			// while the node is known to be down (it takes no players
			// then anyway): a node that was down for minutes is usable
			// the moment it is back, instead of waiting out a reset
			// timeout its retries would have kept re-arming. The lost
			// websocket was counted already: this is the same incident.
			a.incident(ctx, "connect", m.err)
			// The quick resume try failed: the players there are out of
			// reach, so they move now rather than after the backoff.
			ctx.Send(ctx.Parent(), nodeLost{name: a.cfg.Name})
		}
		rnd := rand.Float64()
		d, _ := a.c.t.Reconnect.Delay(a.attempt, rnd)
		a.attempt++
		a.nextAttempt = time.Now().Add(d)
		a.log().Warn("lavalink node unreachable; retrying", "address", a.cfg.Address, "err", m.err, "in", d)
		return
	}
	lost := a.sessionID != "" && !m.resumed
	switch {
	case a.sessionID == "":
		a.c.m.reconnects.WithLabelValues(a.cfg.Name, "new_session").Inc()
	case m.resumed:
		a.c.m.reconnects.WithLabelValues(a.cfg.Name, "resumed").Inc()
	default:
		a.c.m.reconnects.WithLabelValues(a.cfg.Name, "new_session").Inc()
	}
	// A resumed session is proof that the server resumes; it was not asked.
	a.noResume = !m.resumed && m.noResume != nil
	resuming := 1.0
	if a.noResume {
		resuming = 0
		if !a.warnedNoResume {
			a.warnedNoResume = true
			a.log().Warn("lavalink node cannot resume sessions; using it without: a websocket loss ends its players, which then move",
				"address", a.cfg.Address, "err", m.noResume)
		}
	}
	a.c.m.resuming.WithLabelValues(a.cfg.Name).Set(resuming)
	a.log().Info("lavalink node connected", "address", a.cfg.Address, "session", m.sessionID, "resumed", m.resumed, "resuming", !a.noResume)
	a.up, a.attempt, a.sessionID, a.inIncident = true, 0, m.sessionID, false
	a.link.lastMsg.Store(time.Now().UnixNano())
	a.lastHealth = time.Now()
	ctx.Send(ctx.Parent(), nodeOK{name: a.cfg.Name})
	ctx.Send(ctx.Parent(), nodeUp{name: a.cfg.Name, link: a.link, playersLost: lost})
}

func (a *nodeActor) closed(ctx actor.Context) {
	if !a.up {
		return
	}
	a.up = false
	if a.noResume {
		// Nothing to resume: the server ended our session and its
		// players with the socket.
		a.log().Warn("lavalink websocket lost; the node cannot resume, so its players are gone and move now")
		ctx.Send(ctx.Parent(), nodeLost{name: a.cfg.Name, gone: true})
		a.incident(ctx, "websocket", errors.New("websocket closed"))
		a.connect(ctx)
		return
	}
	a.log().Warn("lavalink websocket lost; trying to resume")
	ctx.Send(ctx.Parent(), nodeDown{name: a.cfg.Name})
	a.incident(ctx, "websocket", errors.New("websocket closed"))
	a.graceTry = true
	a.connect(ctx)
}

func (a *nodeActor) tick(ctx actor.Context) {
	now := time.Now()
	if !a.up {
		if !a.connecting && !now.Before(a.nextAttempt) {
			a.connect(ctx)
		}
		return
	}
	limit := a.c.t.StatsSilence
	if a.link.tracks.Load() > 0 {
		limit = a.c.t.UpdateSilence
	}
	if silent := now.Sub(time.Unix(0, a.link.lastMsg.Load())); silent > limit {
		// Status still says CONNECTED, but nothing arrives: disgolink's
		// reader is dead (a malformed message ends it silently). Close
		// to reconnect; our players resume on the same session.
		a.log().Warn("lavalink websocket silent; reconnecting", "silent", silent)
		a.incident(ctx, "silent", fmt.Errorf("no message for %v", silent.Round(time.Millisecond)))
		a.link.api.CloseSocket() // OnNodeClose → wsClosed
		return
	}
	if a.link.tracks.Load() > 0 && !a.liveBusy && now.Sub(a.lastLive) >= a.c.t.LiveInterval {
		a.liveBusy, a.lastLive = true, now
		sys, self, l, timeout := ctx.ActorSystem(), ctx.Self(), a.link, a.c.t.LiveTimeout
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := l.api.Stats(cctx)
			sys.Root.Send(self, liveDone{l: l, err: err})
		}()
	}
	if !a.healthBusy && now.Sub(a.lastHealth) >= a.c.t.HealthInterval {
		a.healthBusy, a.lastHealth = true, now
		sys, self, l, timeout := ctx.ActorSystem(), ctx.Self(), a.link, a.c.t.RequestTimeout
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			st, err := l.api.Stats(cctx)
			sys.Root.Send(self, healthDone{stats: st, err: err})
		}()
	}
}

func (a *nodeActor) runProbe(ctx actor.Context, token uint64) {
	if a.probeBusy {
		return // the breaker times this probe out
	}
	if a.link == nil {
		// Never connected: the probe is a connection attempt's result.
		a.probeAnswer(ctx, token, errors.New("not connected"))
		return
	}
	a.probeBusy = true
	sys, self, l, timeout := ctx.ActorSystem(), ctx.Self(), a.link, a.c.t.RequestTimeout
	go func() {
		cctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := l.api.Stats(cctx)
		sys.Root.Send(self, probeDone{token: token, err: err})
	}()
}

func (a *nodeActor) load(ctx actor.Context, s lavalink.Stats) {
	ctx.Send(ctx.Parent(), nodeLoad{name: a.cfg.Name, load: Load{
		PlayingPlayers: s.PlayingPlayers, SystemLoad: s.CPU.SystemLoad, Deficit: a.deficit,
	}})
}

// report counts one interaction's result; it reports whether it was a
// success. kind overrides the failure's kind (the probe).
func (a *nodeActor) report(ctx actor.Context, err error, kind string) bool {
	k, failed := classify(err)
	switch {
	case failed:
		if kind != "" {
			k = kind
		}
		a.escalate(ctx, k, err)
		return false
	case err == nil:
		ctx.Send(ctx.Parent(), nodeOK{name: a.cfg.Name})
		return true
	}
	return false // not the node's fault (a 4xx, a caller that gave up)
}

// incident escalates a connection loss once: its later symptoms (the
// websocket closing after silence, the failed resume after a close) are
// the same incident, until the node is up again.
func (a *nodeActor) incident(ctx actor.Context, kind string, err error) {
	if a.inIncident {
		a.log().Debug("same lavalink incident", "kind", kind, "err", err)
		return
	}
	a.inIncident = true
	a.escalate(ctx, kind, err)
}

func (a *nodeActor) escalate(ctx actor.Context, kind string, err error) {
	a.c.m.failures.WithLabelValues(a.cfg.Name, kind).Inc()
	supervisor.Escalate(ctx, &supervisor.Failure{Node: a.cfg.Name, Kind: kind, Err: err})
}

// classify says whether err is the node's failure, and its kind: 5xx,
// timeouts and transport errors are; a 4xx is the request's fault, and a
// canceled context the caller's.
func classify(err error) (kind string, failure bool) {
	if err == nil || errors.Is(err, context.Canceled) {
		return "", false
	}
	var le lavalink.Error
	if errors.As(err, &le) {
		if le.Status >= http.StatusInternalServerError {
			return "rest_5xx", true
		}
		return "", false
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout", true
	}
	return "transport", true
}

// nodePlugin turns disgolink's node hooks into node actor messages and
// stamps every websocket message for the silence check.
type nodePlugin struct {
	c *Client
	l *link
}

func (nodePlugin) Name() string    { return "ensemble-node-watch" }
func (nodePlugin) Version() string { return "1" }
func (p nodePlugin) OnNodeOpen(n disgolink.Node) {
	if p.l.closed.Load() {
		// disgolink's own reconnect loop, which outlives closeLink (see
		// there), got through on a link we gave up: close it at once, or
		// it would hold a Lavalink session (a resumed one, players and
		// all) that nobody uses. Its reader then exits without another
		// reconnect (the socket is no longer the node's).
		n.Close()
		return
	}
	p.l.lastMsg.Store(time.Now().UnixNano())
	p.c.sendNode(p.l.name, wsOpened{})
}

func (p nodePlugin) OnNodeClose(disgolink.Node) {
	if p.l.closed.Load() {
		return // closeLink's own close, or a leftover socket's: the actor knows
	}
	p.c.sendNode(p.l.name, wsClosed{})
}
func (p nodePlugin) OnNodeMessageIn(disgolink.Node, []byte) {
	p.l.lastMsg.Store(time.Now().UnixNano())
}
func (nodePlugin) OnNewPlayer(disgolink.Player)     {}
func (nodePlugin) OnDestroyPlayer(disgolink.Player) {}

var _ disgolink.PluginEventHandler = nodePlugin{}

// sweep destroys players left on this node by guilds that moved away
// while it was unreachable (best effort, each with a short deadline). Each
// destroy runs under the guild's op lock and is skipped if the guild is
// now placed on this node (its player there is the fresh one); the pool
// forgets a guild only once its destroy is confirmed (strayGone).
func (a *nodeActor) sweep(ctx actor.Context, guilds []string) {
	if a.link == nil || !a.up || a.sweeping {
		return // the pool keeps the list and sweeps again later
	}
	c, name := a.c, a.cfg.Name
	sys, parent, self := ctx.ActorSystem(), ctx.Parent(), ctx.Self()
	a.sweeping = c.goAsync(func() {
		defer sys.Root.Send(self, sweepDone{})
		for _, g := range guilds {
			if c.closing.Load() {
				return
			}
			if c.destroyStray(name, g) {
				sys.Root.Send(parent, strayGone{node: name, guild: g})
			}
		}
	})
}
