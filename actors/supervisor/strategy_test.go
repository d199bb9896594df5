package supervisor

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// clock is an injected, settable clock safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fail struct{}
type ping struct{}

// child escalates a *Failure on fail and answers ping, so the test sees it
// keep working after each failure (resumed, not restarted).
type child struct{ started *int }

func (c *child) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		*c.started++
	case fail:
		Escalate(ctx, &Failure{Node: "n1", Kind: "rest_5xx", Err: errors.New("500")})
	case ping:
		ctx.Respond(*c.started)
	}
}

// TestBreakerStrategySupervisesChildren runs the strategy as a real
// protoactor supervisor: escalated failures are counted, the child is
// resumed (not restarted), and the transitions are published.
func TestBreakerStrategySupervisesChildren(t *testing.T) {
	clk := &clock{now: t0}
	changes := make(chan Change, 8)
	s := NewBreakerStrategy(BreakerConfig{Window: time.Minute, FailureRatio: 0.5, MinRequests: 3, ResetTimeout: 10 * time.Second},
		clk.Now, func() float64 { return 0 }, func(c Change) { changes <- c })
	sys := actor.NewActorSystem()
	started := 0
	kids := make(chan *actor.PID, 1)
	parent := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			kid := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &child{started: &started} }))
			s.Register(kid, "n1")
			kids <- kid
		}
	}, actor.WithSupervisor(s))
	ppid := sys.Root.Spawn(parent)
	defer sys.Root.Stop(ppid)
	kid := <-kids
	ask := func() int {
		t.Helper()
		r, err := sys.Root.RequestFuture(kid, ping{}, 2*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		return r.(int)
	}
	s.Record("n1", true)
	sys.Root.Send(kid, fail{})
	if got := ask(); got != 1 {
		t.Fatalf("child started %d times; want 1 (resumed, not restarted)", got)
	}
	if st := s.State("n1"); st != Closed {
		t.Fatalf("after 1/2 failures: %v", st)
	}
	sys.Root.Send(kid, fail{})
	ask()
	select {
	case c := <-changes:
		if c.Node != "n1" || c.From != Closed || c.To != Open || c.Failures != 2 || c.Requests != 3 {
			t.Fatalf("change %+v", c)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no transition published")
	}
	clk.Add(10 * time.Second)
	s.Tick()
	if c := <-changes; c.To != HalfOpen {
		t.Fatalf("change %+v", c)
	}
	tok, ok := s.TryProbe("n1")
	if _, again := s.TryProbe("n1"); !ok || again {
		t.Fatal("exactly one probe must be granted")
	}
	s.Record("n1", true) // ordinary traffic does not decide a half-open breaker
	if st := s.State("n1"); st != HalfOpen {
		t.Fatalf("a non-probe success moved the breaker to %v", st)
	}
	s.RecordProbe("n1", tok, true)
	if c := <-changes; c.To != Closed {
		t.Fatalf("change %+v", c)
	}
	if got := ask(); got != 1 {
		t.Fatalf("child restarted: started %d times", got)
	}
}

// TestBreakerStrategyRestartsOnPanic: a failure that is not a *Failure (a
// panic) restarts the child and counts against its node.
func TestBreakerStrategyRestartsOnPanic(t *testing.T) {
	clk := &clock{now: t0}
	s := NewBreakerStrategy(BreakerConfig{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: time.Second},
		clk.Now, func() float64 { return 0 }, nil)
	sys := actor.NewActorSystem()
	var mu sync.Mutex
	starts := 0
	kids := make(chan *actor.PID, 1)
	parent := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			kid := ctx.Spawn(actor.PropsFromFunc(func(c actor.Context) {
				switch c.Message().(type) {
				case *actor.Started:
					mu.Lock()
					starts++
					mu.Unlock()
				case fail:
					panic("boom")
				}
			}))
			s.Register(kid, "n2")
			kids <- kid
		}
	}, actor.WithSupervisor(s))
	ppid := sys.Root.Spawn(parent)
	defer sys.Root.Stop(ppid)
	kid := <-kids
	sys.Root.Send(kid, fail{})
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := starts
		mu.Unlock()
		if n == 2 && s.State("n2") == Open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("starts %d state %v; want a restart and an open breaker", n, s.State("n2"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
