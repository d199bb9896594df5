package supervisor

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 30 * time.Second, Factor: 2, Jitter: 0.5, Limit: 8}
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		rnd     float64
		want    time.Duration
		ok      bool
	}{
		{"first, lowest draw", b, 0, 0, 500 * time.Millisecond, true},
		{"first, highest draw", b, 0, 1, time.Second, true},
		{"doubles", b, 2, 1, 4 * time.Second, true},
		{"half jitter", b, 2, 0.5, 3 * time.Second, true},
		{"capped", b, 6, 1, 30 * time.Second, true},
		{"capped low", b, 7, 0, 15 * time.Second, true},
		{"gives up at limit", b, 8, 0.5, 0, false},
		{"no limit: huge attempt stays capped", Backoff{Base: time.Second, Max: time.Minute}, 5000, 1, time.Minute, true},
		{"no jitter", Backoff{Base: 100 * time.Millisecond, Max: time.Second, Factor: 3}, 1, 0.9, 300 * time.Millisecond, true},
		{"negative attempt is the first", b, -3, 1, time.Second, true},
		{"rnd clamped", b, 0, 7, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.b.Delay(tc.attempt, tc.rnd)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Delay(%d, %v) = %v, %v; want %v, %v", tc.attempt, tc.rnd, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestBackoffIsExponential guards against protoactor's pitfall (linear
// growth): every step doubles until the cap.
func TestBackoffIsExponential(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: time.Hour}
	prev, _ := b.Delay(0, 1)
	for i := 1; i < 15; i++ { // 10 ms·2^14 ≈ 2.7 min, below the cap
		d, _ := b.Delay(i, 1)
		if d != 2*prev {
			t.Fatalf("attempt %d: %v after %v, want doubling", i, d, prev)
		}
		prev = d
	}
}
