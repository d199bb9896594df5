package lavalink

import (
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// Messages to the pool.
type (
	poolTick struct{}
	placeReq struct{ guild string }
	placeRes struct {
		node, prev string
		link       *link
		ok         bool
	}
	pickReq    struct{}
	releaseReq struct {
		guild string
		// destroyed: the player was destroyed on its node (else it may
		// still be there and is swept).
		destroyed bool
	}
	// strayGone: guild's old player on node is confirmed gone (destroyed,
	// or the node did not have it).
	strayGone struct{ node, guild string }
	avoidReq  struct {
		guild, node string
		// quiet: only the next placement avoids the node (a failed
		// play, which the session retries by itself); otherwise the
		// session is also sent NODE_LOST (the watchdog's move).
		quiet bool
	}
	statusReq struct{}
	leftReq   struct{} // how many strays are listed (diagnostics, tests)
)

// NodeStatus is one node as the pool sees it.
type NodeStatus struct {
	Name    string
	Up      bool
	Breaker supervisor.State
	Score   float64
	Players int // this member's players placed there
}

// pool is the member's Lavalink pool actor: parent of one node actor per
// configured server, supervising them with the breaker strategy. It owns
// the selection table, turns breaker openings and lost websockets into
// NODE_LOST events for the guilds placed on the node, and runs the
// breaker's reset timer and probe.
type pool struct {
	c        *Client
	strategy *supervisor.BreakerStrategy
	t        *table
	pids     map[string]*actor.PID
	stop     chan struct{}
	ready    int
	self     *actor.PID
	// dirty: a node was lost or selectability changed, so flushLost has
	// work to look at.
	dirty bool
	ticks int
}

type sweepNow struct{ node string }

// sweepEvery is how many pool ticks pass between sweeps of the nodes that
// still have strays (a destroy that failed is tried again).
const sweepEvery = 25

// sweep has node destroy the old players of guilds that moved away from
// it. The guilds stay in the table's strays until the node actor confirms
// each destroy (strayGone).
func (p *pool) sweep(ctx actor.Context, node string) {
	if n := p.t.nodes[node]; n == nil || !n.live() {
		return
	}
	if g := p.t.strays(node); len(g) > 0 {
		ctx.Send(p.pids[node], sweep{guilds: g})
	}
}

func (p *pool) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.started(ctx)
	case *actor.Stopping:
		if p.stop != nil {
			close(p.stop)
			p.stop = nil
		}
	case poolTick:
		p.strategy.Tick()
		for _, name := range p.t.order {
			if p.strategy.State(name) != supervisor.HalfOpen {
				continue
			}
			if tok, ok := p.strategy.TryProbe(name); ok {
				ctx.Send(p.pids[name], probe{token: tok})
			}
		}
		if p.ticks++; p.ticks%sweepEvery == 0 {
			for node := range p.t.left {
				p.sweep(ctx, node)
			}
		}
	case supervisor.Change:
		p.changed(m)
	case sweepNow:
		p.sweep(ctx, m.node)
	case strayGone:
		p.t.forget(m.node, m.guild)
	case nodeOK:
		p.strategy.Record(m.name, true)
	case probeResult:
		p.strategy.RecordProbe(m.name, m.token, m.err == nil)
	case nodeUp:
		n := p.t.nodes[m.name]
		// A new link (the node actor was restarted) is a new session too.
		lost := m.playersLost || (n.link != nil && n.link != m.link)
		n.up, n.link = true, m.link
		p.sync(m.name)
		p.c.m.nodeUp.WithLabelValues(m.name).Set(1)
		if lost {
			// The old session's players ended with it: nothing to sweep.
			p.t.clearLeft(m.name)
			p.lose(m.name, "new Lavalink session", true)
		} else {
			p.sweep(ctx, m.name)
		}
	case nodeDown:
		p.t.nodes[m.name].up = false
		p.sync(m.name)
		p.c.m.nodeUp.WithLabelValues(m.name).Set(0)
	case nodeLost:
		p.t.nodes[m.name].up = false
		p.sync(m.name)
		p.c.m.nodeUp.WithLabelValues(m.name).Set(0)
		p.lose(m.name, "websocket lost", m.gone)
	case nodeLoad:
		p.t.setLoad(m.name, m.load)
		p.c.m.loadScore.WithLabelValues(m.name).Set(p.t.nodes[m.name].score())
	case placeReq:
		node, prev, ok := p.t.place(m.guild)
		res := placeRes{node: node, prev: prev, ok: ok}
		if ok {
			res.link = p.t.nodes[node].link
			p.c.m.loadScore.WithLabelValues(node).Set(p.t.nodes[node].score())
		}
		ctx.Respond(res)
	case pickReq:
		res := placeRes{}
		var best *nodeInfo
		for _, name := range p.t.order {
			if n := p.t.nodes[name]; n.selectable() && (best == nil || n.score() < best.score()) {
				best = n
			}
		}
		if best != nil {
			res = placeRes{node: best.name, link: best.link, ok: true}
		}
		ctx.Respond(res)
	case releaseReq:
		p.t.release(m.guild, m.destroyed)
	case avoidReq:
		if p.t.guilds[m.guild] == m.node {
			p.t.avoid[m.guild] = m.node
			if !m.quiet {
				p.emitLost(m.guild, m.node)
			}
		}
	case leftReq:
		n := 0
		for _, set := range p.t.left {
			n += len(set)
		}
		ctx.Respond(n)
	case statusReq:
		var out []NodeStatus
		for _, name := range p.t.order {
			n := p.t.nodes[name]
			out = append(out, NodeStatus{Name: name, Up: n.up, Breaker: n.breaker, Score: n.score(), Players: n.placed})
		}
		ctx.Respond(out)
	}
	p.flushLost()
	p.readiness()
}

func (p *pool) started(ctx actor.Context) {
	sys, self := ctx.ActorSystem(), ctx.Self()
	p.self = self
	p.pids = map[string]*actor.PID{}
	for _, cfg := range p.c.o.Nodes {
		cfg := cfg
		props := actor.PropsFromProducer(func() actor.Actor { return p.c.newNode(cfg) })
		pid, err := ctx.SpawnNamed(props, "node-"+cfg.Name)
		if err != nil {
			p.c.log.Error("spawn lavalink node actor", "node", cfg.Name, "err", err)
			continue
		}
		p.pids[cfg.Name] = pid
		p.strategy.Register(pid, cfg.Name)
		pids := make(map[string]*actor.PID, len(p.pids))
		for k, v := range p.pids {
			pids[k] = v
		}
		p.c.pids.Store(&pids)
		p.c.m.breakerState.WithLabelValues(cfg.Name).Set(float64(supervisor.Closed))
		p.c.m.nodeUp.WithLabelValues(cfg.Name).Set(0)
	}
	p.stop = make(chan struct{})
	go ticker(sys, self, p.c.t.Tick, p.stop, poolTick{})
}

// changed applies a breaker transition: metrics, the published state, and
// for an opening, the move of every player on that node.
func (p *pool) changed(ch supervisor.Change) {
	n := p.t.nodes[ch.Node]
	if n == nil {
		return
	}
	n.breaker = ch.To
	p.sync(ch.Node)
	p.c.m.breakerState.WithLabelValues(ch.Node).Set(float64(ch.To))
	p.c.m.breakerTransitions.WithLabelValues(ch.Node, ch.From.String(), ch.To.String()).Inc()
	p.c.log.Warn("lavalink breaker", "node", ch.Node, "from", ch.From, "to", ch.To,
		"failures", ch.Failures, "requests", ch.Requests)
	p.c.publish(ch)
	switch ch.To {
	case supervisor.Open:
		p.lose(ch.Node, "breaker open", false)
	case supervisor.Closed:
		// changed runs outside Receive (in HandleFailure or from Record):
		// sweep from the mailbox, where a context is at hand.
		p.c.sys.Root.Send(p.self, sweepNow{node: ch.Node})
	}
	p.dirty = true
	p.flushLost() // HandleFailure reaches here without passing Receive
	p.readiness()
}

// sync mirrors a node's state into the client: whether its websocket is
// up (player updates and destroys go there) and whether it is selectable
// (connected and its breaker closed).
func (p *pool) sync(name string) {
	n := p.t.nodes[name]
	p.c.setNode(name, n.link, n.live(), n.selectable())
	p.dirty = true
}

// lose marks node lost: its guilds must move (gone: their players are
// gone, so even to this node again). They are told (NODE_LOST) only once
// some node can take them: with none, a degraded node that still plays
// is better than silence, and a Play would only fail.
func (p *pool) lose(node, why string, gone bool) {
	n := p.t.nodes[node]
	if n == nil {
		return
	}
	n.lost = true
	n.gone = n.gone || gone
	p.dirty = true
	p.c.log.Warn("lavalink node lost", "node", node, "reason", why)
	p.flushLost()
}

// flushLost sends NODE_LOST for the guilds of lost nodes, once a node can
// take them. A lost node that became selectable again with its players
// (a resumed session, a breaker that closed) keeps them.
func (p *pool) flushLost() {
	if !p.dirty {
		return
	}
	p.dirty = false
	if p.t.selectable() == 0 {
		return
	}
	for _, name := range p.t.order {
		n := p.t.nodes[name]
		if !n.lost {
			continue
		}
		if n.selectable() && !n.gone {
			n.lost = false
			continue
		}
		guilds := p.t.lose(name)
		n.gone = false
		if n.selectable() {
			n.lost = false
		}
		if len(guilds) == 0 {
			continue
		}
		p.c.log.Warn("moving players off lavalink node", "node", name, "players", len(guilds))
		for _, g := range guilds {
			p.emitLost(g, name)
		}
	}
}

// emitLost hands a NODE_LOST to the client's forwarder: the pool actor
// never waits for the receiver.
func (p *pool) emitLost(guild, node string) {
	p.c.markLost(guild, time.Now())
	p.c.fwd.push(&clusterpb.PlayerEvent{GuildId: guild, Kind: clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST, Node: node})
}

func (p *pool) readiness() {
	if r := p.t.selectable(); r != p.ready {
		p.ready = r
		p.c.onReady(r, len(p.t.order))
	}
}

// newPool builds the pool and its strategy. The strategy's callbacks run
// on the pool's mailbox goroutine (protoactor handles a child's failure
// there, and Record and Tick are called from Receive), so a transition is
// applied synchronously, in order with everything else the pool does.
func newPool(c *Client) *pool {
	p := &pool{c: c, t: newTable(nodeNames(c.o.Nodes)), ready: -1}
	b := c.o.Breaker
	p.strategy = supervisor.NewBreakerStrategy(supervisor.BreakerConfig{
		Window: b.Window, FailureRatio: b.FailureRatio, MinRequests: b.MinRequests,
		ResetTimeout: b.ResetTimeout, ResetJitter: c.t.ResetJitter,
		// The probe is one stats request bounded by RequestTimeout; an
		// answer that has not arrived a second later was dropped.
		ProbeTimeout: c.t.RequestTimeout + time.Second,
	}, time.Now, rand.Float64, p.changed)
	return p
}
