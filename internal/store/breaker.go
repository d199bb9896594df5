package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
)

// ErrUnavailable is a call the store's breaker failed at once: the store
// failed (or hung) on too many recent calls. Callers treat it like any
// store failure, without having waited for a timeout.
var ErrUnavailable = errors.New("store: unavailable (circuit breaker open)")

// BreakerOptions configure WithBreaker.
type BreakerOptions struct {
	Config     supervisor.BreakerConfig
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// OnChange is told each transition (it must not block).
	OnChange func(state supervisor.State)
	// Now and Rand default to time.Now and rand.Float64.
	Now  func() time.Time
	Rand func() float64
}

// Guarded is a store behind a circuit breaker (the Lavalink nodes' rule,
// supervisor.Breaker): calls that fail or time out are counted, and once
// the window's failure ratio is reached every call fails at once with
// ErrUnavailable, so that a hung Redis costs callers nothing but the
// answer "unavailable". After the reset timeout one call goes through as
// the probe: its success closes the breaker, its failure opens it again.
// Answers that are not failures of the store (not found, fenced, a shard
// held by another member, the caller's own cancellation) count as
// successes. Ping and Close bypass the breaker.
type Guarded struct {
	s   Store
	o   BreakerOptions
	mu  sync.Mutex
	b   *supervisor.Breaker
	log *slog.Logger

	state       prometheus.Gauge
	transitions *prometheus.CounterVec
	refused     prometheus.Counter
	failures    prometheus.Counter
}

var _ Store = (*Guarded)(nil)

// WithBreaker wraps s. It fails only on metrics registration.
func WithBreaker(s Store, o BreakerOptions) (*Guarded, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	g := &Guarded{s: s, o: o, b: supervisor.NewBreaker(o.Config), log: o.Log.With("component", "store-breaker"),
		state: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ensemble_store_breaker_state",
			Help: "The store's circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_store_breaker_transitions_total",
			Help: "State changes of the store's circuit breaker, by the state entered.",
		}, []string{"to"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ensemble_store_calls_refused_total",
			Help: "Store calls failed at once because the store's circuit breaker was open.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ensemble_store_errors_total",
			Help: "Store calls that reached the store and failed (timeouts, connection errors; not fencing or not-found answers).",
		}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{g.state, g.transitions, g.refused, g.failures} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("store: register breaker metrics: %w", err)
			}
		}
	}
	return g, nil
}

// State is the breaker's state now.
func (g *Guarded) State() supervisor.State {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tickLocked(g.o.Now())
	return g.b.State()
}

// admit lets a call through (token: the half-open probe's, else 0) or
// refuses it.
func (g *Guarded) admit() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.o.Now()
	g.tickLocked(now)
	switch g.b.State() {
	case supervisor.Closed:
		return 0, nil
	case supervisor.HalfOpen:
		if token, ok := g.b.TryProbe(now); ok {
			return token, nil
		}
	}
	g.refused.Inc()
	return 0, ErrUnavailable
}

func (g *Guarded) done(token uint64, err error) {
	failed := err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrFenced) &&
		!errors.Is(err, context.Canceled) && !errors.As(err, new(*ShardHeldError))
	if failed {
		g.failures.Inc()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.o.Now()
	var tr supervisor.Transition
	var changed bool
	if token != 0 {
		tr, changed = g.b.RecordProbe(now, token, !failed, g.o.Rand())
	} else {
		tr, changed = g.b.Record(now, !failed, g.o.Rand())
	}
	if changed {
		g.changedLocked(tr, err)
	}
}

func (g *Guarded) tickLocked(now time.Time) {
	if tr, ok := g.b.Tick(now, g.o.Rand()); ok {
		g.changedLocked(tr, nil)
	}
}

func (g *Guarded) changedLocked(tr supervisor.Transition, err error) {
	g.state.Set(float64(tr.To))
	g.transitions.WithLabelValues(tr.To.String()).Inc()
	switch tr.To {
	case supervisor.Open:
		g.log.Warn("store breaker open: store calls fail at once until a probe succeeds",
			"from", tr.From.String(), "failures", tr.Failures, "requests", tr.Requests, "probe_at", g.b.ProbeAt().Format(time.RFC3339Nano), "err", err)
	case supervisor.Closed:
		g.log.Info("store breaker closed: the store answers again")
	}
	if g.o.OnChange != nil {
		g.o.OnChange(tr.To)
	}
}

// call runs one store call through the breaker.
func call[T any](g *Guarded, f func() (T, error)) (T, error) {
	token, err := g.admit()
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := f()
	g.done(token, err)
	return v, err
}

func (g *Guarded) Activate(ctx context.Context, guildID string) (uint64, error) {
	return call(g, func() (uint64, error) { return g.s.Activate(ctx, guildID) })
}

func (g *Guarded) LoadSession(ctx context.Context, guildID string) ([]byte, error) {
	return call(g, func() ([]byte, error) { return g.s.LoadSession(ctx, guildID) })
}

func (g *Guarded) SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error {
	_, err := call(g, func() (struct{}, error) { return struct{}{}, g.s.SaveSession(ctx, guildID, epoch, snapshot) })
	return err
}

func (g *Guarded) DeleteSession(ctx context.Context, guildID string, epoch uint64) error {
	_, err := call(g, func() (struct{}, error) { return struct{}{}, g.s.DeleteSession(ctx, guildID, epoch) })
	return err
}

func (g *Guarded) Sessions(ctx context.Context) ([]string, error) {
	return call(g, func() ([]string, error) { return g.s.Sessions(ctx) })
}

func (g *Guarded) LoadSettings(ctx context.Context, guildID string) ([]byte, error) {
	return call(g, func() ([]byte, error) { return g.s.LoadSettings(ctx, guildID) })
}

func (g *Guarded) LoadGuild(ctx context.Context, guildID string) (Guild, error) {
	return call(g, func() (Guild, error) { return g.s.LoadGuild(ctx, guildID) })
}

func (g *Guarded) SaveSettings(ctx context.Context, guildID string, settings []byte) error {
	_, err := call(g, func() (struct{}, error) { return struct{}{}, g.s.SaveSettings(ctx, guildID, settings) })
	return err
}

func (g *Guarded) TakeShard(ctx context.Context, shard int, member, evict string, ttl time.Duration) (uint64, []byte, error) {
	type taken struct {
		epoch uint64
		state []byte
	}
	t, err := call(g, func() (taken, error) {
		epoch, state, err := g.s.TakeShard(ctx, shard, member, evict, ttl)
		return taken{epoch, state}, err
	})
	return t.epoch, t.state, err
}

func (g *Guarded) RenewShard(ctx context.Context, shard int, member string, epoch uint64, ttl time.Duration, state []byte) error {
	_, err := call(g, func() (struct{}, error) { return struct{}{}, g.s.RenewShard(ctx, shard, member, epoch, ttl, state) })
	return err
}

func (g *Guarded) ReleaseShard(ctx context.Context, shard int, epoch uint64, state []byte) error {
	_, err := call(g, func() (struct{}, error) { return struct{}{}, g.s.ReleaseShard(ctx, shard, epoch, state) })
	return err
}

// Ping asks the store itself, whatever the breaker says: readiness wants
// the truth, and a ping is no load.
func (g *Guarded) Ping(ctx context.Context) error { return g.s.Ping(ctx) }

func (g *Guarded) Close() error { return g.s.Close() }
