// Package ratelimit limits the commands a user runs across all guilds, and
// a guild runs in all, per window. The counters live in Redis, so every
// member of a cluster counts the same commands; one Lua script updates
// them and sets their expiry in the same step, so a crash can never leave
// a counter that never expires (INCR then EXPIRE as two calls would lock
// its user out for good).
//
// When Redis fails the limiter is fail safe, never open: it limits in
// memory, at half the limits (each member counts alone, so half keeps a
// cluster of two near the real limit), warns once, counts each decision
// it takes so, and tries Redis again every Retry until it answers. With no
// Redis (one node on the bbolt store) the in-memory limiter is the
// limiter, at the full limits.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Rule is a limit: at most Limit commands per Window. A zero Limit is no
// limit.
type Rule struct {
	Limit  int
	Window time.Duration
}

func (r Rule) on() bool { return r.Limit > 0 && r.Window > 0 }

// half is the fallback's rule: half the limit, at least one.
func (r Rule) half() Rule { return Rule{Limit: max(r.Limit/2, 1), Window: r.Window} }

// Scope is what a refused command went over.
type Scope string

// The scopes of a refusal.
const (
	ScopeUser  Scope = "user"
	ScopeGuild Scope = "guild"
)

// Decision is the answer for one command.
type Decision struct {
	Allowed bool
	// Scope and RetryAfter say, for a refused command, which limit it
	// went over and when that limit's window ends.
	Scope      Scope
	RetryAfter time.Duration
}

// Config is a limiter's rules and backends.
type Config struct {
	User  Rule
	Guild Rule
	// Redis holds the counters; nil limits in memory at the full limits.
	// Its calls should time out quickly (the limiter also bounds each by
	// Timeout): a command waits on them.
	Redis redis.UniversalClient
	// Timeout bounds one Redis call (default 250 ms); past it the call
	// counts as failed and the fallback decides.
	Timeout time.Duration
	// Retry is how long the fallback decides alone after Redis failed
	// before one command tries Redis again (default 1 s).
	Retry time.Duration
	// MaxKeys bounds the in-memory counters (default 100,000): when every
	// one is still in its window, a new user or guild is refused (fail
	// safe) until windows end.
	MaxKeys int
	// Registerer gets the limiter's metrics (none if nil).
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Now is the clock of the in-memory counters (default time.Now).
	Now func() time.Time
}

// Limiter decides whether a command may run. It is safe for concurrent use.
type Limiter struct {
	cfg      Config
	mem      *memory // the in-memory limiter: the fallback, or the limiter itself without Redis
	fallback atomic.Bool
	retryAt  atomic.Int64 // UnixNano after which a command probes Redis
	probing  atomic.Bool

	decisions *prometheus.CounterVec
	degraded  prometheus.Gauge
}

// The backend label of the decisions counter.
const (
	backendRedis    = "redis"
	backendMemory   = "memory"   // no Redis configured: the limiter itself
	backendFallback = "fallback" // Redis failed: fail safe at half the limits
)

// New returns a limiter. It fails only on metrics registration.
func New(cfg Config) (*Limiter, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 250 * time.Millisecond
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, mem: newMemory(cfg.MaxKeys),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_ratelimit_decisions_total",
			Help: "Commands the rate limiter decided on, by backend (redis; memory without Redis; fallback while Redis fails) and outcome (allowed, limited_user, limited_guild).",
		}, []string{"backend", "outcome"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ensemble_ratelimit_fallback",
			Help: "1 while Redis fails and the rate limiter limits in memory at half the limits.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{l.decisions, l.degraded} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ratelimit: register metrics: %w", err)
			}
		}
	}
	return l, nil
}

// Allow counts a command by userID in guildID and says whether it may
// run. A command counts against its user always, even when refused (a
// user who keeps trying stays limited until the window ends), and against
// its guild only when the user was within their limit (one user's flood
// does not lock the guild out).
func (l *Limiter) Allow(ctx context.Context, guildID, userID string) Decision {
	user, guild := l.cfg.User, l.cfg.Guild
	if !user.on() && !guild.on() {
		return Decision{Allowed: true}
	}
	if l.cfg.Redis == nil {
		return l.record(backendMemory, l.mem.allow(l.cfg.Now(), userID, guildID, user, guild))
	}
	if !l.fallback.Load() || l.probe() {
		d, err := l.redis(ctx, guildID, userID)
		if err == nil {
			if l.fallback.CompareAndSwap(true, false) {
				l.degraded.Set(0)
				l.cfg.Log.Info("rate limiter: Redis answers again; limits are shared by the cluster again")
			}
			l.probing.Store(false)
			return l.record(backendRedis, d)
		}
		l.retryAt.Store(l.cfg.Now().Add(l.cfg.Retry).UnixNano())
		l.probing.Store(false)
		if l.fallback.CompareAndSwap(false, true) {
			l.degraded.Set(1)
			l.cfg.Log.Warn("rate limiter: Redis failed; limiting in memory at half the limits until it answers", "err", err)
		}
	}
	return l.record(backendFallback, l.mem.allow(l.cfg.Now(), userID, guildID, user.half(), guild.half()))
}

// Degraded reports whether the limiter is on its fallback (Redis failed).
func (l *Limiter) Degraded() bool { return l.fallback.Load() }

// probe says whether this command tries Redis while on the fallback: one
// at a time, once Retry has passed since the last failure.
func (l *Limiter) probe() bool {
	if l.cfg.Now().UnixNano() < l.retryAt.Load() {
		return false
	}
	return l.probing.CompareAndSwap(false, true)
}

func (l *Limiter) record(backend string, d Decision) Decision {
	outcome := "allowed"
	if !d.Allowed {
		outcome = "limited_" + string(d.Scope)
	}
	l.decisions.WithLabelValues(backend, outcome).Inc()
	return d
}

// allowScript counts a command against KEYS[1] (the user) and, unless the
// user is over their limit, KEYS[2] (the guild). A counter's expiry is set
// with its first count, in the same script; a counter found without one
// (written by hand, say) gets one too. ARGV: user limit and window (ms),
// guild limit and window (ms); a zero limit skips that counter. It returns
// {0, 0} when allowed, else {1 (user) or 2 (guild), ms left in the window}.
// Both keys in one script need one Redis (not a Redis Cluster, whose keys
// would sit in different slots), as the store does.
var allowScript = redis.NewScript(`
local function hit(key, window)
  local n = redis.call('INCR', key)
  if n == 1 or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, window) end
  return n
end
if tonumber(ARGV[1]) > 0 and hit(KEYS[1], ARGV[2]) > tonumber(ARGV[1]) then
  return {1, redis.call('PTTL', KEYS[1])}
end
if tonumber(ARGV[3]) > 0 and hit(KEYS[2], ARGV[4]) > tonumber(ARGV[3]) then
  return {2, redis.call('PTTL', KEYS[2])}
end
return {0, 0}`)

// UserKey is a user's counter in Redis.
func UserKey(id string) string { return "ensemble:ratelimit:user:" + id }

// GuildKey is a guild's counter in Redis.
func GuildKey(id string) string { return "ensemble:ratelimit:guild:" + id }

func (l *Limiter) redis(ctx context.Context, guildID, userID string) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	user, guild := l.cfg.User, l.cfg.Guild
	if !user.on() {
		user = Rule{}
	}
	if !guild.on() {
		guild = Rule{}
	}
	res, err := allowScript.Run(ctx, l.cfg.Redis, []string{UserKey(userID), GuildKey(guildID)},
		user.Limit, user.Window.Milliseconds(), guild.Limit, guild.Window.Milliseconds()).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, errors.New("ratelimit: the script answered an unexpected shape")
	}
	switch res[0] {
	case 0:
		return Decision{Allowed: true}, nil
	case 1:
		return Decision{Scope: ScopeUser, RetryAfter: retryAfter(res[1], user.Window)}, nil
	default:
		return Decision{Scope: ScopeGuild, RetryAfter: retryAfter(res[1], guild.Window)}, nil
	}
}

// retryAfter is the wait a PTTL reply means (a counter gone meanwhile: a
// whole window, the safe side).
func retryAfter(ms int64, window time.Duration) time.Duration {
	if ms <= 0 {
		return window
	}
	return time.Duration(ms) * time.Millisecond
}

// memory is fixed-window counters in memory, bounded by max keys; the
// ended ones are swept once per window, so an idle limiter holds nothing.
type memory struct {
	mu        sync.Mutex
	max       int
	windows   map[string]*window
	nextSweep time.Time
}

type window struct {
	count int
	end   time.Time
}

func newMemory(max int) *memory { return &memory{max: max, windows: map[string]*window{}} }

func (m *memory) allow(now time.Time, userID, guildID string, user, guild Rule) Decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !now.Before(m.nextSweep) {
		m.sweep(now)
		m.nextSweep = now.Add(max(user.Window, guild.Window))
	}
	if user.on() {
		if d := m.hit(now, "u:"+userID, user); !d.Allowed {
			d.Scope = ScopeUser
			return d
		}
	}
	if guild.on() {
		if d := m.hit(now, "g:"+guildID, guild); !d.Allowed {
			d.Scope = ScopeGuild
			return d
		}
	}
	return Decision{Allowed: true}
}

func (m *memory) hit(now time.Time, key string, r Rule) Decision {
	w := m.windows[key]
	if w == nil || !now.Before(w.end) {
		if w == nil && len(m.windows) >= m.max {
			m.sweep(now)
			if len(m.windows) >= m.max {
				// Every counter still counts: refusing is the safe side.
				return Decision{RetryAfter: r.Window}
			}
		}
		w = &window{end: now.Add(r.Window)}
		m.windows[key] = w
	}
	w.count++
	if w.count > r.Limit {
		return Decision{RetryAfter: w.end.Sub(now)}
	}
	return Decision{Allowed: true}
}

// sweep drops the counters whose window has ended.
func (m *memory) sweep(now time.Time) {
	for k, w := range m.windows {
		if !now.Before(w.end) {
			delete(m.windows, k)
		}
	}
}
