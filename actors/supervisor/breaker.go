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
	// ProbeTimeout is how long a half-open breaker waits for its probe's
	// answer before it counts the probe as failed and opens again (a
	// probe that was dropped must not leave the breaker half-open for
	// ever) [10s].
	ProbeTimeout time.Duration
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
// half-open after a jittered ResetTimeout (Tick); in half-open exactly one
// probe is let through (TryProbe's token) and only its answer
// (RecordProbe) decides: closed on success, back to open on failure or
// after ProbeTimeout without an answer (Tick). Only a closed breaker takes
// traffic. It is not safe for
// concurrent use: its owner serializes calls.
type Breaker struct {
	cfg     BreakerConfig
	state   State
	ring    [buckets]bucket
	probeAt time.Time
	// probe is the token of the half-open probe out (0: none); probeSent
	// when it was granted. Tokens only grow, so an answer to an earlier
	// half-open period's probe never matches.
	probe     uint64
	lastProbe uint64
	probeSent time.Time
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
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
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
	b.state, b.probeAt, b.probe = Open, now.Add(d), 0
}

// Record counts one outcome of ordinary traffic. rnd (uniform in [0,1))
// jitters the reset timeout if the breaker opens. Outcomes while open or
// half-open are ignored: they are late answers to requests sent before it
// opened, and in half-open only the probe's answer (RecordProbe) decides.
func (b *Breaker) Record(now time.Time, ok bool, rnd float64) (Transition, bool) {
	if b.state != Closed {
		return Transition{}, false
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

// RecordProbe is the answer to the probe TryProbe granted with token:
// closed on success, open again on failure. An answer with any other
// token (a probe that already timed out, an earlier period's) is ignored.
func (b *Breaker) RecordProbe(now time.Time, token uint64, ok bool, rnd float64) (Transition, bool) {
	if b.state != HalfOpen || token == 0 || token != b.probe {
		return Transition{}, false
	}
	if ok {
		b.state, b.probe = Closed, 0
		b.reset()
		return Transition{From: HalfOpen, To: Closed, At: now}, true
	}
	b.open(now, rnd)
	return Transition{From: HalfOpen, To: Open, At: now, Failures: 1, Requests: 1}, true
}

// Tick moves an open breaker whose reset timeout has passed to half-open,
// and a half-open breaker whose probe went unanswered for ProbeTimeout
// back to open.
func (b *Breaker) Tick(now time.Time, rnd float64) (Transition, bool) {
	switch {
	case b.state == Open && !now.Before(b.probeAt):
		b.state, b.probe = HalfOpen, 0
		return Transition{From: Open, To: HalfOpen, At: now}, true
	case b.state == HalfOpen && b.probe != 0 && now.Sub(b.probeSent) >= b.cfg.ProbeTimeout:
		b.open(now, rnd)
		return Transition{From: HalfOpen, To: Open, At: now, Failures: 1, Requests: 1}, true
	}
	return Transition{}, false
}

// TryProbe reserves the half-open breaker's single probe: a non-zero
// token once per half-open period (0, false otherwise). Only
// RecordProbe with that token decides the probe.
func (b *Breaker) TryProbe(now time.Time) (token uint64, ok bool) {
	if b.state != HalfOpen || b.probe != 0 {
		return 0, false
	}
	b.lastProbe++
	b.probe, b.probeSent = b.lastProbe, now
	return b.probe, true
}
