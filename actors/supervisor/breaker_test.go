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
			{45 * s, "ok", HalfOpen, false},       // ordinary traffic does not decide
			{45 * s, "fail", HalfOpen, false},     // nor does a late failure
			{45 * s, "probe-ok", HalfOpen, false}, // no probe out: a stray answer
			{46 * s, "probe", HalfOpen, false},
			{46 * s, "ok", HalfOpen, false}, // not the probe's answer
			{46 * s, "fail", HalfOpen, false},
			{47 * s, "probe-ok", Closed, true},
			{48 * s, "fail", Closed, false}, // the window restarted empty
		}},
		{"back to open when the probe fails", cfg, []step{
			{0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false},
			{0, "fail", Open, true},
			{45 * s, "tick", HalfOpen, true},
			{45 * s, "probe", HalfOpen, false},
			{46 * s, "probe-fail", Open, true},
			{90 * s, "tick", Open, false},
			{91 * s, "tick", HalfOpen, true},
		}},
		{"a dropped probe times out back to open, and its late answer is ignored", withProbeTimeout(cfg, 5*s), []step{
			{0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false},
			{0, "fail", Open, true},
			{45 * s, "tick", HalfOpen, true},
			{45 * s, "probe", HalfOpen, false},
			{49 * s, "tick", HalfOpen, false},
			{50 * s, "tick", Open, true}, // no answer within ProbeTimeout
			{51 * s, "probe-ok", Open, false},
			{95 * s, "tick", HalfOpen, true},
			{95 * s, "probe-ok", HalfOpen, false}, // the timed-out probe's token
			{95 * s, "probe", HalfOpen, false},
			{96 * s, "probe-ok", Closed, true},
		}},
		{"half-open without a probe out stays half-open", withProbeTimeout(cfg, 5*s), []step{
			{0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false}, {0, "fail", Closed, false},
			{0, "fail", Open, true},
			{45 * s, "tick", HalfOpen, true},
			{500 * s, "tick", HalfOpen, false},
			{500 * s, "probe", HalfOpen, false},
			{501 * s, "probe-fail", Open, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBreaker(tc.cfg)
			var token uint64 // the last granted probe's (stale once answered or timed out)
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				var changed bool
				switch st.op {
				case "ok", "fail":
					_, changed = b.Record(now, st.op == "ok", 0)
				case "tick":
					_, changed = b.Tick(now, 0)
				case "probe":
					var ok bool
					if token, ok = b.TryProbe(now); !ok || token == 0 {
						t.Fatalf("step %d: no probe granted in %v", i, b.State())
					}
					if _, again := b.TryProbe(now); again {
						t.Fatalf("step %d: a second probe was granted", i)
					}
				case "probe-ok", "probe-fail":
					_, changed = b.RecordProbe(now, token, st.op == "probe-ok", 0)
				}
				if b.State() != st.want || changed != st.changed {
					t.Fatalf("step %d (%s at %v): state %v changed %v; want %v changed %v", i, st.op, st.at, b.State(), changed, st.want, st.changed)
				}
			}
		})
	}
}

func withProbeTimeout(c BreakerConfig, d time.Duration) BreakerConfig {
	c.ProbeTimeout = d
	return c
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
