package supervisor

import (
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Failure is what a node actor escalates for one failed interaction with
// its server (a lost websocket, a 5xx, a timeout, a refused connection).
type Failure struct {
	Node string
	// Kind is a bounded label: "websocket", "rest_5xx", "timeout", "connect", "probe".
	Kind string
	Err  error
}

func (f *Failure) Error() string { return fmt.Sprintf("%s: %s: %v", f.Node, f.Kind, f.Err) }

func (f *Failure) Unwrap() error { return f.Err }

// Change is a breaker transition of one node.
type Change struct {
	Node string
	Transition
}

// BreakerStrategy is the node actors' supervisor: a protoactor
// SupervisorStrategy whose decision is a circuit breaker per child. A
// *Failure escalated by a child is counted and the child resumed (it keeps
// its connection and keeps reporting); the breaker, not a restart, takes
// the node out of selection. Any other failure (a panic) restarts the
// child, and counts as a failure too.
//
// protoactor calls HandleFailure on the parent's mailbox goroutine; the
// parent also calls Record and Tick, so the mutex only guards readers
// such as metrics and status.
type BreakerStrategy struct {
	cfg      BreakerConfig
	now      func() time.Time
	rnd      func() float64
	onChange func(Change)

	mu       sync.Mutex
	breakers map[string]*Breaker
	names    map[string]string // child PID ID → node name
}

var _ actor.SupervisorStrategy = (*BreakerStrategy)(nil)

// NewBreakerStrategy returns a strategy whose transitions go to onChange
// (called synchronously, outside the lock). now and rnd are time.Now and
// rand.Float64 outside tests.
func NewBreakerStrategy(cfg BreakerConfig, now func() time.Time, rnd func() float64, onChange func(Change)) *BreakerStrategy {
	if onChange == nil {
		onChange = func(Change) {}
	}
	return &BreakerStrategy{cfg: cfg, now: now, rnd: rnd, onChange: onChange,
		breakers: map[string]*Breaker{}, names: map[string]string{}}
}

// Register names a child so failures that are not *Failure (panics) are
// counted against the right node.
func (s *BreakerStrategy) Register(child *actor.PID, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[child.Id] = node
	s.breakerLocked(node)
}

func (s *BreakerStrategy) breakerLocked(node string) *Breaker {
	b := s.breakers[node]
	if b == nil {
		b = NewBreaker(s.cfg)
		s.breakers[node] = b
	}
	return b
}

// HandleFailure implements actor.SupervisorStrategy.
func (s *BreakerStrategy) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ interface{}) {
	if f, ok := reason.(*Failure); ok {
		s.Record(f.Node, false)
		sup.ResumeChildren(child)
		return
	}
	s.mu.Lock()
	node := s.names[child.Id]
	s.mu.Unlock()
	if node != "" {
		s.Record(node, false)
	}
	sup.RestartChildren(child)
}

// Record counts one outcome of node.
func (s *BreakerStrategy) Record(node string, ok bool) {
	s.mu.Lock()
	tr, changed := s.breakerLocked(node).Record(s.now(), ok, s.rnd())
	s.mu.Unlock()
	if changed {
		s.onChange(Change{Node: node, Transition: tr})
	}
}

// RecordProbe is the answer to node's probe granted with token (see
// Breaker.RecordProbe).
func (s *BreakerStrategy) RecordProbe(node string, token uint64, ok bool) {
	s.mu.Lock()
	tr, changed := s.breakerLocked(node).RecordProbe(s.now(), token, ok, s.rnd())
	s.mu.Unlock()
	if changed {
		s.onChange(Change{Node: node, Transition: tr})
	}
}

// Tick moves every open breaker whose reset timeout passed to half-open,
// and every half-open breaker whose probe timed out back to open.
func (s *BreakerStrategy) Tick() {
	now := s.now()
	var changes []Change
	s.mu.Lock()
	for node, b := range s.breakers {
		if tr, ok := b.Tick(now, s.rnd()); ok {
			changes = append(changes, Change{Node: node, Transition: tr})
		}
	}
	s.mu.Unlock()
	for _, c := range changes {
		s.onChange(c)
	}
}

// TryProbe reserves node's half-open probe; the token goes with the probe
// and back to RecordProbe.
func (s *BreakerStrategy) TryProbe(node string) (token uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.breakerLocked(node).TryProbe(s.now())
}

// State is node's breaker state.
func (s *BreakerStrategy) State(node string) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.breakerLocked(node).State()
}

// NextProbe is the earliest time an open breaker goes half-open (zero if
// none is open).
func (s *BreakerStrategy) NextProbe() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, b := range s.breakers {
		if p := b.ProbeAt(); !p.IsZero() && (t.IsZero() || p.Before(t)) {
			t = p
		}
	}
	return t
}

// Escalate hands f to ctx's supervisor, as a failure of the current
// message. protoactor's Context interface does not expose EscalateFailure,
// although every actor context implements it.
func Escalate(ctx actor.Context, f *Failure) {
	if s, ok := ctx.(interface {
		EscalateFailure(reason, message interface{})
	}); ok {
		s.EscalateFailure(f, ctx.Message())
	}
}
