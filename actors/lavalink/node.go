package lavalink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/config"
)

// link is one node's disgolink client and node. Each node has a client of
// its own: disgolink routes a websocket message to the player of its guild
// in the client, whatever node that player lives on, so with one shared
// client an old node's late events would be taken for the new node's.
// The node actor creates it; the Client uses it for REST calls (disgolink
// clients are safe for concurrent use apart from the races PITFALLS.md
// lists).
type link struct {
	name string
	dl   disgolink.Client
	node disgolink.Node
	// lastMsg is the unix-nano time of the last websocket message: a
	// reader killed by a malformed message leaves the status CONNECTED and
	// only silence gives it away.
	lastMsg atomic.Int64
	// tracks is how many of this member's players on the node have a
	// track (set by the watchdog): they make Lavalink send playerUpdates,
	// so silence is suspicious much sooner.
	tracks atomic.Int32
}

func (l *link) sessionID() string { return l.node.SessionID() }

// Messages of the node actor.
type (
	nodeTick    struct{}
	connectDone struct {
		link      *link
		sessionID string
		resumed   bool
		grace     bool
		err       error
	}
	wsClosed   struct{}
	wsOpened   struct{}
	outcome    struct{ err error }
	healthDone struct {
		stats *lavalink.Stats
		err   error
	}
	probe     struct{}
	probeDone struct{ err error }
	wsStats   struct{ s lavalink.Stats }
	sweep     struct{ guilds []string }
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
	nodeLost struct{ name string } // the resume failed: its players must move
	nodeLoad struct {
		name string
		load Load
	}
	nodeOK struct{ name string } // one successful interaction
)

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
	probeBusy   bool
	deficit     int
	stop        chan struct{}
}

func (a *nodeActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.stop = make(chan struct{})
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
	case healthDone:
		a.healthBusy = false
		if a.report(ctx, m.err, "") && m.stats != nil {
			a.load(ctx, *m.stats)
		}
	case probe:
		a.runProbe(ctx)
	case sweep:
		a.sweep(m.guilds)
	case probeDone:
		a.probeBusy = false
		a.report(ctx, m.err, "probe")
	}
}

func (a *nodeActor) shutdown() {
	if a.stop != nil {
		close(a.stop)
		a.stop = nil
	}
	if a.link == nil {
		return
	}
	if a.up {
		// Leaving on purpose: turn resuming off first, so Lavalink ends
		// the session and its players when the socket closes instead of
		// playing on for ResumeTimeout beside the players our successor
		// creates from the session snapshots.
		ctx, cancel := context.WithTimeout(context.Background(), a.c.t.DestroyTimeout)
		off := false
		if err := a.link.node.Update(ctx, lavalink.SessionUpdate{Resuming: &off}); err != nil {
			a.log().Debug("turn lavalink resuming off", "err", err)
		}
		cancel()
	}
	a.link.dl.Close()
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
	l, prev, cfg, c := a.link, a.sessionID, a.cfg, a.c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res := connectDone{grace: grace}
		res.link, res.err = c.dial(cctx, l, cfg)
		if res.err == nil && c.closing.Load() {
			res.link.dl.Close() // connected after Close: nobody would close it
			return
		}
		if res.err == nil {
			res.sessionID = res.link.sessionID()
			res.resumed = prev != "" && res.sessionID == prev
			// With resuming on, Lavalink keeps our players playing while
			// our websocket is away, and disgolink sends the session ID
			// when it reconnects (it records it from this answer).
			on, secs := true, int(c.t.ResumeTimeout/time.Second)
			if err := res.link.node.Update(cctx, lavalink.SessionUpdate{Resuming: &on, Timeout: &secs}); err != nil {
				res.err = fmt.Errorf("enable resuming: %w", err)
			}
		}
		sys.Root.Send(self, res)
	}()
}

// dial connects l's node again, or creates the link on the first call.
func (c *Client) dial(ctx context.Context, l *link, cfg config.LavalinkNode) (*link, error) {
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
		if err := l.node.Open(ctx); err != nil && !errors.Is(err, disgolink.ErrNodeAlreadyConnected) {
			return l, err
		}
		return l, nil
	}
	nl := &link{name: cfg.Name}
	nl.dl = disgolink.New(c.uid,
		disgolink.WithLogger(c.log.With("lib", "disgolink", "node", cfg.Name)),
		disgolink.WithHTTPClient(c.http),
		disgolink.WithListeners(nodeListener{c: c, l: nl}),
		disgolink.WithPlugins(nodePlugin{c: c, l: nl}),
	)
	n, err := nl.dl.AddNode(ctx, disgolink.NodeConfig{
		Name: cfg.Name, Address: cfg.Address, Password: cfg.Password.Reveal(), Secure: cfg.Secure,
	})
	if err != nil {
		nl.dl.Close()
		return nil, err
	}
	nl.node = n
	nl.lastMsg.Store(time.Now().UnixNano())
	return nl, nil
}

func (a *nodeActor) connected(ctx actor.Context, m connectDone) {
	a.connecting = false
	if m.link != nil {
		a.link = m.link
	}
	if m.err != nil {
		a.c.m.reconnects.WithLabelValues(a.cfg.Name, "failed").Inc()
		if m.grace {
			// Only the loss counts against the breaker, not each retry
			// while the node is known to be down (it takes no players
			// then anyway): a node that was down for minutes is usable
			// the moment it is back, instead of waiting out a reset
			// timeout its retries would have kept re-arming.
			a.escalate(ctx, "connect", m.err)
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
	a.log().Info("lavalink node connected", "address", a.cfg.Address, "session", m.sessionID, "resumed", m.resumed)
	a.up, a.attempt, a.sessionID = true, 0, m.sessionID
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
	a.log().Warn("lavalink websocket lost; trying to resume")
	ctx.Send(ctx.Parent(), nodeDown{name: a.cfg.Name})
	a.escalate(ctx, "websocket", errors.New("websocket closed"))
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
		a.escalate(ctx, "silent", fmt.Errorf("no message for %v", silent.Round(time.Millisecond)))
		a.link.node.Close() // OnNodeClose → wsClosed
		return
	}
	if !a.healthBusy && now.Sub(a.lastHealth) >= a.c.t.HealthInterval {
		a.healthBusy, a.lastHealth = true, now
		sys, self, l, timeout := ctx.ActorSystem(), ctx.Self(), a.link, a.c.t.RequestTimeout
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			st, err := l.node.Rest().Stats(cctx)
			sys.Root.Send(self, healthDone{stats: st, err: err})
		}()
	}
}

func (a *nodeActor) runProbe(ctx actor.Context) {
	if a.probeBusy {
		return
	}
	if a.link == nil {
		// Never connected: the probe is a connection attempt's result.
		a.escalate(ctx, "probe", errors.New("not connected"))
		return
	}
	a.probeBusy = true
	sys, self, l, timeout := ctx.ActorSystem(), ctx.Self(), a.link, a.c.t.RequestTimeout
	go func() {
		cctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := l.node.Rest().Stats(cctx)
		sys.Root.Send(self, probeDone{err: err})
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
func (p nodePlugin) OnNodeOpen(disgolink.Node) {
	p.l.lastMsg.Store(time.Now().UnixNano())
	p.c.sendNode(p.l.name, wsOpened{})
}
func (p nodePlugin) OnNodeClose(disgolink.Node) { p.c.sendNode(p.l.name, wsClosed{}) }
func (p nodePlugin) OnNodeMessageIn(disgolink.Node, []byte) {
	p.l.lastMsg.Store(time.Now().UnixNano())
}
func (nodePlugin) OnNewPlayer(disgolink.Player)     {}
func (nodePlugin) OnDestroyPlayer(disgolink.Player) {}

var _ disgolink.PluginEventHandler = nodePlugin{}

// sweep destroys players left on this node by guilds that moved away
// while it was unreachable (best effort, each with a short deadline).
func (a *nodeActor) sweep(guilds []string) {
	if a.link == nil || !a.up {
		return
	}
	l, c := a.link, a.c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for _, g := range guilds {
			gid, err := snowflake.Parse(g)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.t.DestroyTimeout)
			err = l.node.Rest().DestroyPlayer(ctx, l.sessionID(), gid)
			cancel()
			if err != nil {
				c.log.Debug("sweep stray player", "node", l.name, "guild", g, "err", err)
			}
		}
	}()
}
