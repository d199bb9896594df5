package supervisor

import (
	"fmt"
	"time"
)

// State is a breaker state.
type State int

// Breaker states. The numeric values are the breaker-state gauge's values.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// BreakerConfig configures a Breaker.
type BreakerConfig struct {
	// Window is how far back outcomes count.
	Window time.Duration
	// FailureRatio opens the breaker once failures/requests in the window
	// reach it ...
	FailureRatio float64
	// ... and at least MinRequests outcomes (and MinRequests·FailureRatio
	// failures) were seen, so one failed request on an idle node does not
	// open it.
	MinRequests int
	// ResetTimeout is how long the breaker stays open before it lets one
	// probe through (half-open).
	ResetTimeout time.Duration
	// ResetJitter (0..1) spreads the reset timeout over
	// [ResetTimeout·(1−ResetJitter), ResetTimeout], so the members of a
	// cluster do not all probe a recovering node at the same instant.
	ResetJitter float64
}

// buckets is the window's resolution: outcomes older than Window are
// dropped one bucket (Window/buckets) at a time.
const buckets = 10

type bucket struct {
	start           time.Time
	total, failures int
}

// Transition is a breaker state change.
type Transition struct {
	From, To State
	At       time.Time
	// Failures and Requests are the window's counts when it opened.
	Failures, Requests int
}

// Breaker is a circuit breaker: closed → open when the window's failure
// ratio reaches FailureRatio over at least MinRequests outcomes; open →
// half-open after a jittered ResetTimeout (Tick); half-open → closed on the
// probe's success, back to open on its failure. It is not safe for
// concurrent use: its owner serializes calls.
type Breaker struct {
	cfg     BreakerConfig
	state   State
	ring    [buckets]bucket
	probeAt time.Time
	probing bool
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.MinRequests <= 0 {
		cfg.MinRequests = 1
	}
	if cfg.FailureRatio <= 0 || cfg.FailureRatio > 1 {
		cfg.FailureRatio = 1
	}
	return &Breaker{cfg: cfg}
}

// State is the current state.
func (b *Breaker) State() State { return b.state }

// ProbeAt is when an open breaker goes half-open (zero unless open).
func (b *Breaker) ProbeAt() time.Time {
	if b.state != Open {
		return time.Time{}
	}
	return b.probeAt
}

// Counts are the window's outcomes at now.
func (b *Breaker) Counts(now time.Time) (requests, failures int) {
	for _, k := range b.ring {
		if !k.start.IsZero() && now.Sub(k.start) < b.cfg.Window {
			requests += k.total
			failures += k.failures
		}
	}
	return requests, failures
}

func (b *Breaker) add(now time.Time, failed bool) {
	width := b.cfg.Window / buckets
	if width <= 0 {
		width = 1
	}
	start := now.Truncate(width)
	k := &b.ring[int(start.UnixNano()/int64(width))%buckets]
	if !k.start.Equal(start) {
		*k = bucket{start: start}
	}
	k.total++
	if failed {
		k.failures++
	}
}

func (b *Breaker) reset() { b.ring = [buckets]bucket{} }

func (b *Breaker) open(now time.Time, rnd float64) {
	j := min(max(b.cfg.ResetJitter, 0), 1)
	rnd = min(max(rnd, 0), 1)
	d := time.Duration(float64(b.cfg.ResetTimeout) * (1 - j*rnd))
	b.state, b.probeAt, b.probing = Open, now.Add(d), false
}

// Record counts one outcome. rnd (uniform in [0,1)) jitters the reset
// timeout if the breaker opens. In half-open the outcome is the probe's.
// Outcomes while open are ignored: they are late answers to requests sent
// before it opened.
func (b *Breaker) Record(now time.Time, ok bool, rnd float64) (Transition, bool) {
	switch b.state {
	case Open:
		return Transition{}, false
	case HalfOpen:
		if !b.probing {
			return Transition{}, false // no probe out: a stray late answer
		}
		if ok {
			b.state, b.probing = Closed, false
			b.reset()
			return Transition{From: HalfOpen, To: Closed, At: now}, true
		}
		b.open(now, rnd)
		return Transition{From: HalfOpen, To: Open, At: now, Failures: 1, Requests: 1}, true
	}
	b.add(now, !ok)
	if ok {
		return Transition{}, false
	}
	req, fail := b.Counts(now)
	if req >= b.cfg.MinRequests && float64(fail) >= b.cfg.FailureRatio*float64(req) {
		b.open(now, rnd)
		b.reset()
		return Transition{From: Closed, To: Open, At: now, Failures: fail, Requests: req}, true
	}
	return Transition{}, false
}

// Tick moves an open breaker whose reset timeout has passed to half-open.
func (b *Breaker) Tick(now time.Time) (Transition, bool) {
	if b.state == Open && !now.Before(b.probeAt) {
		b.state, b.probing = HalfOpen, false
		return Transition{From: Open, To: HalfOpen, At: now}, true
	}
	return Transition{}, false
}

// TryProbe reserves the half-open breaker's single probe: true once per
// half-open period.
func (b *Breaker) TryProbe() bool {
	if b.state != HalfOpen || b.probing {
		return false
	}
	b.probing = true
	return true
}
