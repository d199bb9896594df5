package supervisor

import (
	"testing"
	"time"
)

// simulate feeds a breaker the outcomes of a node polled every 5 s (the
// pool's health poll) plus perMin user requests, healthy for a minute and
// then failing with failEvery (every n-th request fails; 1 = all) for up to
// five minutes. It returns how long after the failures began the breaker
// opened (0: it never did).
func simulate(cfg BreakerConfig, perMin, failEvery int) time.Duration {
	b := NewBreaker(cfg)
	step := 100 * time.Millisecond
	var userEvery time.Duration
	if perMin > 0 {
		userEvery = time.Minute / time.Duration(perMin)
	}
	n := 0
	start := time.Minute
	for at := time.Duration(0); at < 6*time.Minute; at += step {
		var outcomes int
		if at%(5*time.Second) == 0 {
			outcomes++
		}
		if userEvery > 0 && at%userEvery == 0 {
			outcomes++
		}
		for range outcomes {
			ok := true
			if at >= start {
				n++
				ok = n%failEvery != 0
			}
			if _, opened := b.Record(t0.Add(at), ok, 0); opened {
				return at - start + step/2
			}
		}
	}
	return 0
}

// TestBreakerDefaultsBehaviour measures the configured defaults (window
// 60 s, 40 %, 5 requests) against the alternatives considered, in
// simulated time: how fast a node failing every request is taken out,
// and that a short blip or a steady 20 % error rate never opens it.
func TestBreakerDefaultsBehaviour(t *testing.T) {
	def := BreakerConfig{Window: 60 * time.Second, FailureRatio: 0.4, MinRequests: 5, ResetTimeout: 45 * time.Second}
	w30 := def
	w30.Window = 30 * time.Second
	tests := []struct {
		name      string
		cfg       BreakerConfig
		perMin    int
		failEvery int
		// bound: opens within it (0: must never open)
		bound time.Duration
	}{
		{"default: idle node, all 5xx", def, 0, 1, 30 * time.Second},
		{"default: 30 req/min, all 5xx", def, 30, 1, 30 * time.Second},
		{"default: 300 req/min, all 5xx", def, 300, 1, 30 * time.Second},
		{"default: 30 req/min, 20 % errors", def, 30, 5, 0},
		{"default: idle, every 3rd poll fails", def, 0, 3, 0},
		{"window 30 s: idle node, all 5xx", w30, 0, 1, 15 * time.Second},
		{"window 30 s: 30 req/min, 20 % errors", w30, 30, 5, 0},
	}
	for _, tc := range tests {
		got := simulate(tc.cfg, tc.perMin, tc.failEvery)
		t.Logf("%-40s opened after %v", tc.name, got)
		switch {
		case tc.bound == 0 && got != 0:
			t.Errorf("%s: opened after %v; must stay closed", tc.name, got)
		case tc.bound != 0 && (got == 0 || got > tc.bound):
			t.Errorf("%s: opened after %v; want within %v", tc.name, got, tc.bound)
		}
	}
	// A blip: three failed requests in a row on an otherwise healthy,
	// idle node (polls only) must not open it.
	b := NewBreaker(def)
	at := time.Duration(0)
	for ; at < time.Minute; at += 5 * time.Second {
		b.Record(t0.Add(at), true, 0)
	}
	for i := range 3 {
		if _, opened := b.Record(t0.Add(at+time.Duration(i)*time.Second), false, 0); opened {
			t.Fatal("a three-request blip opened the breaker")
		}
	}
}
