package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestBreakerFailsFastOnAHungRedis (real Redis, frozen with SIGSTOP):
// answers that are not failures (not found, fenced) never open the
// breaker; calls that time out on a hung Redis do, and then every call
// fails at once with ErrUnavailable without reaching Redis; after the
// reset one call probes: a failed probe opens it again, a successful one
// closes it, and the store works as before.
func TestBreakerFailsFastOnAHungRedis(t *testing.T) {
	srv := testserver.StartRedis(t)
	t.Cleanup(func() { _ = srv.Resume() })
	ctx := context.Background()
	r, err := OpenRedis(ctx, RedisOptions{Addr: srv.Addr, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var (
		mu      sync.Mutex
		now     = time.Unix(1_800_000_000, 0)
		changes []supervisor.State
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	g, err := WithBreaker(r, BreakerOptions{
		Config: supervisor.BreakerConfig{Window: time.Minute, FailureRatio: 0.5, MinRequests: 3, ResetTimeout: 5 * time.Second},
		Now:    clock, Rand: func() float64 { return 0 },
		OnChange: func(s supervisor.State) { mu.Lock(); changes = append(changes, s); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	const guild = "900000000000000077"

	// Answers, not failures.
	for i := 0; i < 5; i++ {
		if _, err := g.LoadSession(ctx, guild); !errors.Is(err, ErrNotFound) {
			t.Fatalf("load of nothing: %v", err)
		}
	}
	epoch, err := g.Activate(ctx, guild)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Activate(ctx, guild); err != nil {
		t.Fatal(err)
	}
	if err := g.SaveSession(ctx, guild, epoch, []byte("old")); !errors.Is(err, ErrFenced) {
		t.Fatalf("save of a superseded epoch: %v", err)
	}
	if s := g.State(); s != supervisor.Closed {
		t.Fatalf("breaker %s after answers that are not failures", s)
	}

	// Hung: three timeouts open it (a window later, so that only they
	// count).
	advance(time.Minute)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := g.LoadSettings(ctx, guild); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("call %d on a hung Redis: %v; want its timeout", i, err)
		}
	}
	if s := g.State(); s != supervisor.Open {
		t.Fatalf("breaker %s after three timeouts", s)
	}
	for i := 0; i < 10; i++ {
		if _, err := g.LoadGuild(ctx, guild); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("call while open: %v; want ErrUnavailable", err)
		}
	}
	if got := value(t, g.refused); got != 10 {
		t.Fatalf("%v calls refused, want 10", got)
	}
	// Ping asks Redis itself (readiness): still hung.
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := g.Ping(pctx); err == nil {
		t.Fatal("ping answered by a frozen Redis")
	}
	cancel()

	// The probe after the reset: Redis still hung, so open again.
	advance(5 * time.Second)
	if _, err := g.LoadSettings(ctx, guild); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("the probe: %v; want its timeout", err)
	}
	if s := g.State(); s != supervisor.Open {
		t.Fatalf("breaker %s after a failed probe", s)
	}
	if _, err := g.LoadSettings(ctx, guild); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after a failed probe: %v", err)
	}

	// Redis back: the next probe closes it.
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	advance(5 * time.Second)
	if _, err := g.LoadSettings(ctx, guild); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the probe with Redis back: %v", err)
	}
	if s := g.State(); s != supervisor.Closed {
		t.Fatalf("breaker %s after a good probe", s)
	}
	if err := g.SaveSettings(ctx, guild, []byte("s")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []supervisor.State{supervisor.Open, supervisor.HalfOpen, supervisor.Open, supervisor.HalfOpen, supervisor.Closed}
	if len(changes) != len(want) {
		t.Fatalf("transitions %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("transitions %v, want %v", changes, want)
		}
	}
	if got := value(t, g.state); got != float64(supervisor.Closed) {
		t.Fatalf("state gauge %v", got)
	}
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
