package lavalink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
)

// fakeNode stands in for a node actor: it reports itself connected on
// start, escalates a failure on fakeFail, and answers the breaker's probe
// with healthy's value. No Lavalink server and no disgolink, so the pool,
// the strategy and the bookkeeping run under -race.
type fakeNode struct {
	cfg     config.LavalinkNode
	healthy *atomic.Bool // nil: probes go unanswered
	link    *link
}

type (
	fakeFail struct{}
	fakeDown struct{} // the websocket is lost and the resume failed
	fakeUp   struct{} // back, same session
	fakePing struct{} // answered: the node handled everything sent before
)

func (f *fakeNode) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		f.link = &link{name: f.cfg.Name}
		ctx.Send(ctx.Parent(), nodeUp{name: f.cfg.Name, link: f.link})
	case fakeDown:
		ctx.Send(ctx.Parent(), nodeLost{name: f.cfg.Name})
	case fakeUp:
		ctx.Send(ctx.Parent(), nodeUp{name: f.cfg.Name, link: f.link})
	case fakePing:
		ctx.Respond(fakePing{})
	case fakeFail:
		supervisor.Escalate(ctx, &supervisor.Failure{Node: f.cfg.Name, Kind: "rest_5xx", Err: errors.New("500")})
	case probe:
		if f.healthy == nil {
			return // the probe is lost
		}
		var err error
		if !f.healthy.Load() {
			err = errors.New("500")
		}
		ctx.Send(ctx.Parent(), probeResult{name: f.cfg.Name, token: m.token, err: err})
	}
}

type recorder struct {
	// block, when set, holds every event delivery until it is closed
	// (a receiver stuck on a full queue).
	block   chan struct{}
	mu      sync.Mutex
	events  []*clusterpb.PlayerEvent
	changes []supervisor.Change
	ready   []int
}

func (r *recorder) event(ev *clusterpb.PlayerEvent) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}
func (r *recorder) change(c supervisor.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}
func (r *recorder) readyFn(up, _ int) { r.mu.Lock(); r.ready = append(r.ready, up); r.mu.Unlock() }

func (r *recorder) lostFor(node string) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, e := range r.events {
		if e.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST && e.GetNode() == node {
			out[e.GetGuildId()] = true
		}
	}
	return out
}

func (r *recorder) transitions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.changes {
		out = append(out, c.Node+":"+c.From.String()+"->"+c.To.String())
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pingNode returns once the fake node actor pid has handled every message
// sent to it before.
func pingNode(t *testing.T, c *Client, pid *actor.PID) {
	t.Helper()
	if _, err := c.sys.Root.RequestFuture(pid, fakePing{}, 10*time.Second).Result(); err != nil {
		t.Fatalf("ping %s: %v", pid.Id, err)
	}
}

func newFakeClient(t *testing.T, healthy map[string]*atomic.Bool, br config.Breaker) (*Client, *recorder, *prometheus.Registry) {
	return newFakeClientRec(t, healthy, br, &recorder{}, Timing{})
}

func newFakeClientRec(t *testing.T, healthy map[string]*atomic.Bool, br config.Breaker, rec *recorder, tm Timing) (*Client, *recorder, *prometheus.Registry) {
	t.Helper()
	tm.Tick, tm.StallThreshold = 10*time.Millisecond, time.Hour
	reg := prometheus.NewRegistry()
	var nodes []config.LavalinkNode
	for _, n := range []string{"a", "b"} {
		nodes = append(nodes, config.LavalinkNode{Name: n, Address: "127.0.0.1:1"})
	}
	c, err := New(Options{BotUserID: "123456789012345678", Nodes: nodes, Breaker: br, Registerer: reg,
		OnEvent: rec.event, OnReady: rec.readyFn, OnBreaker: rec.change, Timing: tm})
	if err != nil {
		t.Fatal(err)
	}
	c.newNode = func(cfg config.LavalinkNode) actor.Actor {
		f := &fakeNode{cfg: cfg}
		if h := healthy[cfg.Name]; h != nil {
			f.healthy = h
		}
		return f
	}
	c.Start(context.Background())
	t.Cleanup(c.Close)
	waitUntil(t, "both nodes usable", func() bool { return c.isUsable("a") && c.isUsable("b") })
	return c, rec, reg
}

// TestPoolBreakerLifecycle drives the breaker through the real pool actor
// and strategy: failures escalated by a node actor open it after the
// configured count, the node's guilds get NODE_LOST and new placements
// avoid it, the jittered reset lets one probe through, a failed probe
// re-opens it, a good one closes it; each step is published and counted.
func TestPoolBreakerLifecycle(t *testing.T) {
	healthy := map[string]*atomic.Bool{"a": {}, "b": {}}
	healthy["b"].Store(true)
	br := config.Breaker{Window: time.Minute, FailureRatio: 0.5, MinRequests: 3, ResetTimeout: 150 * time.Millisecond}
	c, rec, reg := newFakeClient(t, healthy, br)
	ctx := context.Background()

	onA := map[string]bool{}
	for i := range 6 {
		g := fmt.Sprint(1000 + i)
		res, err := c.place(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if res.node == "a" {
			onA[g] = true
		}
	}
	if len(onA) != 3 {
		t.Fatalf("placement uneven: %d of 6 on a", len(onA))
	}
	pids := *c.pids.Load()
	// Two failures: below MinRequests, still closed.
	c.sys.Root.Send(pids["a"], fakeFail{})
	c.sys.Root.Send(pids["a"], fakeFail{})
	// An escalated failure suspends the node's mailbox until the pool's
	// strategy has counted it and resumed the node: once the node answers
	// a later ping, both failures were counted.
	pingNode(t, c, pids["a"])
	if st := c.strategyState(t, "a"); st != supervisor.Closed {
		t.Fatalf("opened early: %v", st)
	}
	c.sys.Root.Send(pids["a"], fakeFail{})
	waitUntil(t, "a open", func() bool { return !c.isUsable("a") })
	if got := metricValue(t, reg, "ensemble_lavalink_breaker_state", "node", "a"); got != float64(supervisor.Open) {
		t.Fatalf("breaker gauge %v", got)
	}
	waitUntil(t, "NODE_LOST for a's guilds", func() bool { return len(rec.lostFor("a")) == len(onA) })
	for g := range rec.lostFor("a") {
		if !onA[g] {
			t.Fatalf("NODE_LOST for %s, which was not on a", g)
		}
		res, err := c.place(ctx, g)
		if err != nil || res.node != "b" {
			t.Fatalf("moved %s to %q (%v)", g, res.node, err)
		}
	}
	if res, _ := c.place(ctx, "2000"); res.node != "b" {
		t.Fatalf("new guild placed on %q while a is open", res.node)
	}
	// Half-open, the probe fails: open again; then it heals: closed.
	waitUntil(t, "probe failed once", func() bool {
		return len(rec.transitions()) >= 3
	})
	healthy["a"].Store(true)
	// The node becomes usable before the pool's subscribers hear of the
	// transition: wait for the transition itself.
	waitUntil(t, "a closed", func() bool {
		got := rec.transitions()
		return c.isUsable("a") && len(got) > 0 && got[len(got)-1] == "a:half-open->closed"
	})
	// A machine that stalls past the reset timeout before the node heals
	// lets one more probe fail: more open/half-open rounds in the middle.
	got := rec.transitions()
	want := []string{"a:closed->open", "a:open->half-open", "a:half-open->open", "a:open->half-open", "a:half-open->closed"}
	ok := len(got) >= len(want) && (len(got)-len(want))%2 == 0 &&
		fmt.Sprint(got[:3]) == fmt.Sprint(want[:3]) && fmt.Sprint(got[len(got)-2:]) == fmt.Sprint(want[3:])
	for i := 3; ok && i < len(got)-2; i += 2 {
		ok = got[i] == "a:open->half-open" && got[i+1] == "a:half-open->open"
	}
	if !ok {
		t.Fatalf("transitions %v; want %v (with any more failed probes in the middle)", got, want)
	}
	for _, tr := range [][2]string{{"closed", "open"}, {"open", "half-open"}, {"half-open", "open"}, {"half-open", "closed"}} {
		if v := metricValue(t, reg, "ensemble_lavalink_breaker_transitions_total", "node", "a", "from", tr[0], "to", tr[1]); v < 1 {
			t.Fatalf("transition metric %v = %v", tr, v)
		}
	}
	if got := metricValue(t, reg, "ensemble_lavalink_breaker_state", "node", "a"); got != float64(supervisor.Closed) {
		t.Fatalf("breaker gauge %v", got)
	}
	// Moved guilds stay on b (no flapping); a new one may use a again.
	for g := range onA {
		if res, _ := c.place(ctx, g); res.node != "b" {
			t.Fatalf("%s flapped back to %s", g, res.node)
		}
	}
	if v := metricValue(t, reg, "ensemble_lavalink_breaker_state", "node", "b"); v != float64(supervisor.Closed) {
		t.Fatalf("b's breaker gauge %v", v)
	}
}

// TestPoolNoNode: with every node open, Play and Load fail with
// audio.ErrNoNode and readiness reports zero usable nodes.
func TestPoolNoNode(t *testing.T) {
	healthy := map[string]*atomic.Bool{"a": {}, "b": {}}
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: time.Hour}
	c, rec, _ := newFakeClient(t, healthy, br)
	pids := *c.pids.Load()
	c.sys.Root.Send(pids["a"], fakeFail{})
	c.sys.Root.Send(pids["b"], fakeFail{})
	waitUntil(t, "both open", func() bool { return !c.isUsable("a") && !c.isUsable("b") })
	ctx := context.Background()
	if _, err := c.Play(ctx, "42", audio.PlayRequest{}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Play: %v", err)
	}
	if _, err := c.Load(ctx, "ytsearch:x"); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("Load: %v", err)
	}
	waitUntil(t, "readiness 0", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.ready) > 0 && rec.ready[len(rec.ready)-1] == 0
	})
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Breaker != supervisor.Open {
		t.Fatalf("Nodes: %+v %v", nodes, err)
	}
}

func (c *Client) strategyState(t *testing.T, node string) supervisor.State {
	t.Helper()
	nodes, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == node {
			return n.Breaker
		}
	}
	t.Fatalf("no node %s", node)
	return 0
}

// metricValue reads one series (gauge or counter) from reg; -1 if absent.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return -1
}
