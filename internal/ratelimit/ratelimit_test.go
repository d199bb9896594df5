package ratelimit

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// clock is a settable time for the in-memory windows and the retry delay.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logs counts a logger's records by level and keeps their text.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }
func (l *logs) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if c := out.GetCounter(); c != nil {
		return c.GetValue()
	}
	return out.GetGauge().GetValue()
}

type step struct {
	guild, user string
	advance     time.Duration // before the command
	allowed     bool
	scope       Scope
	retryAfter  time.Duration // when refused
}

// TestMemoryLimits: the in-memory limiter (one node, no Redis) at the
// full limits, command by command.
func TestMemoryLimits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		user, guild Rule
		steps       []step
	}{
		{"a user's limit spans guilds", Rule{2, 10 * time.Second}, Rule{}, []step{
			{guild: "g1", user: "u", allowed: true},
			{guild: "g2", user: "u", advance: time.Second, allowed: true},
			{guild: "g3", user: "u", advance: time.Second, scope: ScopeUser, retryAfter: 8 * time.Second},
			{guild: "g1", user: "other", allowed: true},
			// The window ends 10 s after its first command.
			{guild: "g1", user: "u", advance: 8 * time.Second, allowed: true},
		}},
		{"a guild's limit spans users", Rule{}, Rule{3, 10 * time.Second}, []step{
			{guild: "g", user: "a", allowed: true},
			{guild: "g", user: "b", allowed: true},
			{guild: "g", user: "c", allowed: true},
			{guild: "g", user: "d", advance: 4 * time.Second, scope: ScopeGuild, retryAfter: 6 * time.Second},
			{guild: "h", user: "d", allowed: true},
		}},
		{"a user over their limit does not use the guild's", Rule{1, 10 * time.Second}, Rule{2, 10 * time.Second}, []step{
			{guild: "g", user: "flood", allowed: true},
			{guild: "g", user: "flood", scope: ScopeUser, retryAfter: 10 * time.Second},
			{guild: "g", user: "flood", scope: ScopeUser, retryAfter: 10 * time.Second},
			{guild: "g", user: "flood", scope: ScopeUser, retryAfter: 10 * time.Second},
			{guild: "g", user: "calm", allowed: true},
			{guild: "g", user: "third", scope: ScopeGuild, retryAfter: 10 * time.Second},
		}},
		{"refused commands count: a user who keeps trying waits the window out", Rule{1, 10 * time.Second}, Rule{}, []step{
			{guild: "g", user: "u", allowed: true},
			{guild: "g", user: "u", advance: 9 * time.Second, scope: ScopeUser, retryAfter: time.Second},
			{guild: "g", user: "u", advance: time.Second, allowed: true},
		}},
		{"no rules: everything allowed", Rule{}, Rule{}, []step{
			{guild: "g", user: "u", allowed: true},
			{guild: "g", user: "u", allowed: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{now: time.Unix(1_800_000_000, 0)}
			l, err := New(Config{User: tc.user, Guild: tc.guild, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				clk.advance(s.advance)
				d := l.Allow(context.Background(), s.guild, s.user)
				want := Decision{Allowed: s.allowed, Scope: s.scope, RetryAfter: s.retryAfter}
				if d != want {
					t.Fatalf("step %d (%s in %s): %+v, want %+v", i, s.user, s.guild, d, want)
				}
			}
		})
	}
}

// TestMemoryIsBounded: past MaxKeys live counters a new user is refused
// (never let through uncounted); once windows end their counters go.
func TestMemoryIsBounded(t *testing.T) {
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	l, err := New(Config{User: Rule{5, 10 * time.Second}, MaxKeys: 3, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b", "c"} {
		if d := l.Allow(context.Background(), "g", u); !d.Allowed {
			t.Fatalf("%s: %+v", u, d)
		}
	}
	if d := l.Allow(context.Background(), "g", "d"); d.Allowed || d.Scope != ScopeUser {
		t.Fatalf("a fourth user with three live counters of at most three: %+v; want refused", d)
	}
	if d := l.Allow(context.Background(), "g", "a"); !d.Allowed {
		t.Fatalf("a known user within the limit: %+v", d)
	}
	clk.advance(10 * time.Second)
	if d := l.Allow(context.Background(), "g", "d"); !d.Allowed {
		t.Fatalf("a new user after the windows ended: %+v", d)
	}
	l.mem.mu.Lock()
	n := len(l.mem.windows)
	l.mem.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d counters after every other window ended; want 1", n)
	}
}

func newRedis(t *testing.T, srv *testserver.Redis) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisSharesTheCounters: two members count the same commands; each
// counter expires with its window, and one found without an expiry gets
// one.
func TestRedisSharesTheCounters(t *testing.T) {
	srv := testserver.StartRedis(t)
	ctx := context.Background()
	a, err := New(Config{User: Rule{3, time.Minute}, Guild: Rule{100, time.Minute}, Redis: newRedis(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{User: Rule{3, time.Minute}, Guild: Rule{100, time.Minute}, Redis: newRedis(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range []*Limiter{a, b, a} {
		if d := l.Allow(ctx, "g", "u"); !d.Allowed {
			t.Fatalf("command %d: %+v", i, d)
		}
	}
	d := b.Allow(ctx, "g", "u")
	if d.Allowed || d.Scope != ScopeUser || d.RetryAfter <= 50*time.Second || d.RetryAfter > time.Minute {
		t.Fatalf("the fourth command in a minute, on the other member: %+v; want refused for just under a minute", d)
	}
	probe := newRedis(t, srv)
	for _, key := range []string{UserKey("u"), GuildKey("g")} {
		ttl, err := probe.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > time.Minute {
			t.Fatalf("%s: TTL %v, %v; want the window's", key, ttl, err)
		}
	}
	if n, _ := probe.Get(ctx, GuildKey("g")).Int(); n != 3 {
		t.Fatalf("guild counter %d; want 3 (the refused command is the user's, not the guild's)", n)
	}
	// A counter without an expiry (left by hand, or by an older version)
	// must not lock its user out for good.
	if err := probe.Set(ctx, UserKey("stuck"), 99, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if d := a.Allow(ctx, "g", "stuck"); d.Allowed {
		t.Fatalf("a user over the limit: %+v", d)
	}
	if ttl, _ := probe.PTTL(ctx, UserKey("stuck")).Result(); ttl <= 0 {
		t.Fatalf("the counter without expiry still has none (%v)", ttl)
	}
	if got := value(t, a.decisions.WithLabelValues(backendRedis, "allowed")); got != 2 {
		t.Fatalf("member a's allowed decisions on Redis: %v; want 2", got)
	}
}

// TestRedisOutageFailsSafe: with Redis down the limiter limits in memory
// at half the limits (never open), says so once, counts each fallback
// decision, and goes back to Redis by itself when it answers again.
func TestRedisOutageFailsSafe(t *testing.T) {
	srv := testserver.StartRedis(t)
	ctx := context.Background()
	clk := &clock{now: time.Now()}
	lg := &logs{}
	reg := prometheus.NewRegistry()
	l, err := New(Config{User: Rule{4, time.Minute}, Redis: newRedis(t, srv), Retry: time.Second,
		Log: slog.New(lg), Now: clk.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Allow(ctx, "g", "u"); !d.Allowed || l.Degraded() {
		t.Fatalf("with Redis up: %+v, degraded %v", d, l.Degraded())
	}
	srv.Stop()
	// Half of 4: two commands, then refused.
	for i := 0; i < 2; i++ {
		if d := l.Allow(ctx, "g", "u"); !d.Allowed {
			t.Fatalf("fallback command %d: %+v", i, d)
		}
	}
	if d := l.Allow(ctx, "g", "u"); d.Allowed || d.Scope != ScopeUser {
		t.Fatalf("the third command with Redis down and a limit of 4: %+v; want refused (half the limit)", d)
	}
	if !l.Degraded() || value(t, l.degraded) != 1 {
		t.Fatal("not degraded while Redis is down")
	}
	if got := value(t, l.decisions.WithLabelValues(backendFallback, "allowed")) +
		value(t, l.decisions.WithLabelValues(backendFallback, "limited_user")); got != 3 {
		t.Fatalf("fallback decisions counted: %v; want 3", got)
	}
	// More failures, even after a retry: still one warning.
	clk.advance(2 * time.Second)
	l.Allow(ctx, "g", "v")
	if n := lg.count("WARN"); n != 1 {
		t.Fatalf("%d warnings for one outage; want 1: %v", n, lg.lines)
	}

	srv.Restart(t)
	// Within Retry of the last failure the fallback still decides alone.
	if d := l.Allow(ctx, "g", "w"); !d.Allowed || !l.Degraded() {
		t.Fatalf("right after Redis came back: %+v, degraded %v; want the fallback until Retry passes", d, l.Degraded())
	}
	clk.advance(time.Second)
	if d := l.Allow(ctx, "g", "u"); !d.Allowed || l.Degraded() {
		t.Fatalf("after Retry with Redis up: %+v, degraded %v; want Redis again (its counter restarted with the server)", d, l.Degraded())
	}
	if n := lg.count("INFO"); n != 1 {
		t.Fatalf("%d notes of Redis answering again; want 1: %v", n, lg.lines)
	}
	if value(t, l.degraded) != 0 {
		t.Fatal("the fallback gauge still says degraded")
	}
}

// TestConcurrentCommandsGetExactlyTheLimit: 64 goroutines (members'
// deliveries) race for one user's 10 commands; 10 are allowed, on either
// backend, and the fallback's state flips without a race.
func TestConcurrentCommandsGetExactlyTheLimit(t *testing.T) {
	srv := testserver.StartRedis(t)
	for _, tc := range []struct {
		name  string
		redis redis.UniversalClient
	}{{"memory", nil}, {"redis", newRedis(t, srv)}} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(Config{User: Rule{10, time.Minute}, Redis: tc.redis})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			allowed := 0
			for i := 0; i < 64; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if l.Allow(context.Background(), "g", "racer").Allowed {
						mu.Lock()
						allowed++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if allowed != 10 {
				t.Fatalf("%d of 64 racing commands allowed; want the limit, 10", allowed)
			}
		})
	}
}

// BenchmarkAllow is a command's cost in the limiter: in memory (one node)
// and in Redis (a cluster; one round trip to a local server).
func BenchmarkAllow(b *testing.B) {
	srv := testserver.StartRedis(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { c.Close() })
	for _, bc := range []struct {
		name  string
		redis redis.UniversalClient
	}{{"memory", nil}, {"redis", c}} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := New(Config{User: Rule{1 << 30, time.Hour}, Guild: Rule{1 << 30, time.Hour}, Redis: bc.redis})
			if err != nil {
				b.Fatal(err)
			}
			users := make([]string, 1000)
			for i := range users {
				users[i] = strconv.Itoa(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !l.Allow(context.Background(), "g", users[i%len(users)]).Allowed {
					b.Fatal("refused")
				}
				i++
			}
			if l.Degraded() {
				b.Fatal("fell back")
			}
		})
	}
}
