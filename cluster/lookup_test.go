package cluster

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name, kind, identity string
		ok                   bool
	}{
		{"Guild/123$1", "Guild", "123", true},
		{"Session/a/b$c/d$2z", "Session", "a/b$c/d", true}, // identities may hold / and $
		{"Guild/$7", "Guild", "", true},
		{"partition-activator", "", "", false},
		{"Guild$1/x", "", "", false},
	} {
		kind, identity, ok := parseName(tc.name)
		if kind != tc.kind || identity != tc.identity || ok != tc.ok {
			t.Errorf("parseName(%q) = %q, %q, %v; want %q, %q, %v", tc.name, kind, identity, ok, tc.kind, tc.identity, tc.ok)
		}
	}
}

// lifeGrain answers each StringValue with its cluster identity, and
// reports its stop.
type lifeGrain struct {
	identity string
	lean     bool
	stopped  chan<- string
}

func (g *lifeGrain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		if g.lean || g.identity != "" {
			panic("a second ClusterInit, or one for a lean kind")
		}
		g.identity = msg.Identity.Kind + "/" + msg.Identity.Identity
		if pcluster.GetClusterIdentity(ctx).Identity != msg.Identity.Identity {
			panic("context and ClusterInit disagree on the identity")
		}
	case *actor.ReceiveTimeout:
		ctx.Poison(ctx.Self()) // as the generated grains do
	case *wrapperspb.StringValue:
		ctx.Respond(wrapperspb.String(g.identity))
	case *actor.Stopped:
		g.stopped <- ctx.Self().Id
	}
}

// leanLifeGrain is lifeGrain in a lean kind: it learns its identity from
// Activated, never from ClusterInit.
type leanLifeGrain struct{ lifeGrain }

func (g *leanLifeGrain) Activated(identity string, c *pcluster.Cluster) {
	if g.identity != "" || c == nil {
		panic("Activated twice, or without the cluster")
	}
	g.identity = "life/" + identity
}

// startLifeMember starts a single member hosting "life", idle after idle,
// made by NewKind when lean, else by protoactor's cluster.NewKind.
func startLifeMember(t *testing.T, lean bool, idle time.Duration) (*Member, <-chan string) {
	t.Helper()
	stopped := make(chan string, 64)
	props := actor.PropsFromProducer(func() actor.Actor { return &lifeGrain{lean: lean, stopped: stopped} })
	kind := pcluster.NewKind("life", props)
	if lean {
		kind = NewKind("life", func() LeanGrain { return &leanLifeGrain{lifeGrain{lean: true, stopped: stopped}} })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Start(ctx, testConfig(), Options{
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Kinds:        []*pcluster.Kind{kind},
		IdleTimeouts: map[string]time.Duration{"life": idle},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m, stopped
}

func ask(t *testing.T, m *Member, identity string) *actor.PID {
	t.Helper()
	res, err := m.Cluster.Request(identity, "life", wrapperspb.String("?"))
	if err != nil {
		t.Fatalf("call life/%s: %v", identity, err)
	}
	if got := res.(*wrapperspb.StringValue).Value; got != "life/"+identity {
		t.Fatalf("life/%s answered as %q", identity, got)
	}
	pid, ok := m.Cluster.PidCache.Get(identity, "life")
	if !ok {
		t.Fatalf("life/%s answered but is not in the PID cache", identity)
	}
	return pid
}

// waitStopped waits until each of ids has stopped (others may stop too).
func waitStopped(t *testing.T, stopped <-chan string, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case got := <-stopped:
			delete(want, got)
		case <-timeout:
			t.Fatalf("%v did not stop", want)
		}
	}
}

// bothKinds runs test for a kind made by protoactor's cluster.NewKind and
// for a lean one (NewKind).
func bothKinds(t *testing.T, test func(*testing.T, bool)) {
	t.Run("protoactor kind", func(t *testing.T) { test(t, false) })
	t.Run("lean kind", func(t *testing.T) { test(t, true) })
}

func activeCount(l *lookup, kind string) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.kinds[kind].active)
}

// waitActive waits until the lookup's table holds want activations of
// kind. An activation leaves it on its own goroutine just after the
// grain's Stopped, which is what the tests see, and no later message of
// that activation can tell them it has; so this one wait polls, bounded.
func waitActive(t *testing.T, l *lookup, kind string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for activeCount(l, kind) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d activations in the table, want %d", activeCount(l, kind), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestActivationsAreNeverRenamed: an identity's next activation has a new
// name, so a message for the stopped one goes to dead letters instead of
// reaching its successor; the grain knows its identity from the name.
func TestActivationsAreNeverRenamed(t *testing.T) { bothKinds(t, testActivationsAreNeverRenamed) }

func testActivationsAreNeverRenamed(t *testing.T, lean bool) {
	m, stopped := startLifeMember(t, lean, 0)
	first := ask(t, m, "g/1$x") // an identity with the separators in it
	if again := ask(t, m, "g/1$x"); again.Id != first.Id {
		t.Fatalf("second call reached %s, want the activation %s", again.Id, first.Id)
	}
	m.System.Root.Poison(first)
	waitStopped(t, stopped, first.Id)
	// Until the lookup forgets the stopped activation (just after its
	// Stopped), calls get its PID, answered as dead, and protoactor's
	// retries may run out, as with disthash, which forgets even later.
	waitActive(t, m.lookup, "life", 0)
	// Dropped before the grain's Stopped: the cluster middleware or, for
	// a lean kind, the lookup's own.
	if pid, ok := m.Cluster.PidCache.Get("g/1$x", "life"); ok {
		t.Fatalf("the stopped activation %s is still in the PID cache", pid.Id)
	}
	second := ask(t, m, "g/1$x")
	if second.Id == first.Id {
		t.Fatalf("the next activation reuses the name %s", first.Id)
	}
	if _, err := m.System.Root.RequestFuture(first, wrapperspb.String("?"), 5*time.Second).Result(); err == nil {
		t.Fatal("the stopped activation's PID still answers")
	}
	waitActive(t, m.lookup, "life", 1)
}

// TestIdleActivationsPassivate drives the sweep by hand (the real one runs
// every hour here): an activation stops after a timeout's worth of sweeps
// without a message, and any message starts the count again. The sweeps'
// ticks go through the activation's mailbox, so a call answered after
// them has seen them.
func TestIdleActivationsPassivate(t *testing.T) { bothKinds(t, testIdleActivationsPassivate) }

func testIdleActivationsPassivate(t *testing.T, lean bool) {
	m, stopped := startLifeMember(t, lean, 4*time.Hour) // a sweep each hour, 4 to passivate
	l := m.lookup
	pid := ask(t, m, "a")
	other := ask(t, m, "b")
	for range 3 {
		l.sweepOnce()
	}
	ask(t, m, "a") // a's count starts again; b's is at 3
	for range 3 {
		l.sweepOnce()
	}
	if got := ask(t, m, "a"); got.Id != pid.Id {
		t.Fatalf("a was passivated after 3 quiet sweeps: now %s, was %s", got.Id, pid.Id)
	}
	waitStopped(t, stopped, other.Id) // b: 4 sweeps without a message
	waitActive(t, l, "life", 1)       // a only
	for range 3 {
		l.sweepOnce()
	}
	if got := ask(t, m, "a"); got.Id != pid.Id { // a's count starts again
		t.Fatalf("a was passivated after 3 quiet sweeps: now %s, was %s", got.Id, pid.Id)
	}
	for range 4 {
		l.sweepOnce()
	}
	waitStopped(t, stopped, pid.Id)
	waitActive(t, l, "life", 0)
	if got := ask(t, m, "a"); got.Id == pid.Id {
		t.Fatal("a call after the passivation reached the stopped activation")
	}
}

// TestKindsWithoutTimeoutStay: without an idle timeout, no sweep runs and
// activations stay however long they are quiet.
func TestKindsWithoutTimeoutStay(t *testing.T) { bothKinds(t, testKindsWithoutTimeoutStay) }

func testKindsWithoutTimeoutStay(t *testing.T, lean bool) {
	m, _ := startLifeMember(t, lean, 0)
	pid := ask(t, m, "a")
	m.lookup.sweepOnce()
	m.lookup.sweepOnce()
	if got := ask(t, m, "a"); got.Id != pid.Id {
		t.Fatalf("a moved from %s to %s", pid.Id, got.Id)
	}
	select {
	case <-m.lookup.swept:
	default:
		t.Fatal("a sweep loop runs with no idle timeout")
	}
}

// TestActivator: another member (here, a request to this member's
// activator, as disthash and this lookup send it) gets the same
// activation a local call gets, and a refusal for a kind not hosted here.
func TestActivator(t *testing.T) { bothKinds(t, testActivator) }

func testActivator(t *testing.T, lean bool) {
	m, _ := startLifeMember(t, lean, 0)
	pid := ask(t, m, "a")
	activator := actor.NewPID(m.System.Address(), activatorName)
	for _, tc := range []struct {
		kind   string
		want   *actor.PID
		failed bool
	}{{"life", pid, false}, {"nope", nil, true}} {
		res, err := m.System.Root.RequestFuture(activator,
			&pcluster.ActivationRequest{ClusterIdentity: pcluster.NewClusterIdentity("a", tc.kind)}, 5*time.Second).Result()
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		r := res.(*pcluster.ActivationResponse)
		if r.Failed != tc.failed || (tc.want != nil && (r.Pid == nil || r.Pid.Id != tc.want.Id)) {
			t.Fatalf("%s: activation response %v, want failed=%v pid %v", tc.kind, r, tc.failed, tc.want)
		}
	}
}

// TestTopologyMovesActivations: when the membership places identities on
// another member, this one stops its activations of them.
func TestTopologyMovesActivations(t *testing.T) { bothKinds(t, testTopologyMovesActivations) }

func testTopologyMovesActivations(t *testing.T, lean bool) {
	m, stopped := startLifeMember(t, lean, 0)
	a, b := ask(t, m, "a"), ask(t, m, "b")
	m.lookup.topology(&pcluster.ClusterTopology{Members: []*pcluster.Member{
		{Id: "other", Host: "127.0.0.1", Port: 1, Kinds: []string{"life"}},
	}})
	waitStopped(t, stopped, a.Id, b.Id)
	waitActive(t, m.lookup, "life", 0)
}
