package supervisor

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type step struct {
	at   time.Duration // since t0
	op   string        // "ok", "fail", "tick", "probe"
	want State
	// changed: whether this step must report a transition.
	changed bool
}

func TestBreakerTransitions(t *testing.T) {
	cfg := BreakerConfig{Window: 60 * time.Second, FailureRatio: 0.4, MinRequests: 5, ResetTimeout: 45 * time.Second}
	s := time.Second
	tests := []struct {
		name  string
		cfg   BreakerConfig
		steps []step
	}{
		{"opens at the ratio once min requests are seen", cfg, []step{
			{0, "ok", Closed, false}, {s, "ok", Closed, false}, {2 * s, "ok", Closed, false},
			{3 * s, "fail", Closed, false}, // 1/4 < min requests
			{4 * s, "fail", Open, true},    // 2/5 = 0.4
		}},
		{"stays closed below the ratio", cfg, []step{
			{0, "ok", Closed, false}, {0, "ok", Closed, false}, {0, "ok", Closed, false}, {0, "ok", Closed, false},
			{0, "ok", Closed, false}, {0, "ok", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false},
		}},
		{"all failures open after min requests", cfg, []step{
			{0, "fail", Closed, false}, {s, "fail", Closed, false}, {2 * s, "fail", Closed, false},
			{3 * s, "fail", Closed, false}, {4 * s, "fail", Open, true},
		}},
		{"old failures leave the window", cfg, []step{
			{0, "fail", Closed, false}, {s, "fail", Closed, false}, {2 * s, "fail", Closed, false}, {3 * s, "fail", Closed, false},
			{70 * s, "fail", Closed, false}, // the first four expired
		}},
		{"half-open after reset, closed on probe success", cfg, []step{
			{0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false},
			{0, "fail", Open, true},
			{10 * s, "ok", Open, false}, // late answers are ignored while open
			{44 * s, "tick", Open, false},
			{45 * s, "tick", HalfOpen, true},
			{45 * s, "ok", HalfOpen, false}, // no probe reserved: a stray answer
			{46 * s, "probe", HalfOpen, false},
			{47 * s, "ok", Closed, true},
			{48 * s, "fail", Closed, false}, // the window restarted empty
		}},
		{"back to open when the probe fails", cfg, []step{
			{0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false},
			{0, "fail", Open, true},
			{45 * s, "tick", HalfOpen, true},
			{45 * s, "probe", HalfOpen, false},
			{46 * s, "fail", Open, true},
			{90 * s, "tick", Open, false},
			{91 * s, "tick", HalfOpen, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBreaker(tc.cfg)
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				var changed bool
				switch st.op {
				case "ok", "fail":
					_, changed = b.Record(now, st.op == "ok", 0)
				case "tick":
					_, changed = b.Tick(now)
				case "probe":
					if !b.TryProbe() {
						t.Fatalf("step %d: no probe granted in %v", i, b.State())
					}
					if b.TryProbe() {
						t.Fatalf("step %d: a second probe was granted", i)
					}
				}
				if b.State() != st.want || changed != st.changed {
					t.Fatalf("step %d (%s at %v): state %v changed %v; want %v changed %v", i, st.op, st.at, b.State(), changed, st.want, st.changed)
				}
			}
		})
	}
}

func TestBreakerResetJitter(t *testing.T) {
	cfg := BreakerConfig{Window: time.Minute, FailureRatio: 1, MinRequests: 1, ResetTimeout: 40 * time.Second, ResetJitter: 0.25}
	for _, tc := range []struct {
		rnd  float64
		want time.Duration
	}{{0, 40 * time.Second}, {1, 30 * time.Second}, {0.5, 35 * time.Second}} {
		b := NewBreaker(cfg)
		tr, ok := b.Record(t0, false, tc.rnd)
		if !ok || tr.To != Open || tr.Failures != 1 || tr.Requests != 1 {
			t.Fatalf("rnd %v: transition %+v %v", tc.rnd, tr, ok)
		}
		if got := b.ProbeAt().Sub(t0); got != tc.want {
			t.Fatalf("rnd %v: probe after %v, want %v", tc.rnd, got, tc.want)
		}
	}
}
