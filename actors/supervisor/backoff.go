package supervisor

import (
	"math"
	"time"
)

// Backoff is a jittered exponential backoff: the n-th retry (from 0) waits
// a random time in [d·(1−Jitter), d] where d = min(Base·Factor^n, Max).
// Jitter keeps members that lost the same server from retrying in step;
// keeping the lower bound above zero keeps a retry storm from forming
// when many random draws land near zero (full jitter's weakness).
type Backoff struct {
	Base   time.Duration
	Max    time.Duration
	Factor float64 // ≤ 1 means 2
	Jitter float64 // 0..1; share of d that is random
	// Limit is the number of retries after which Delay gives up (0: never).
	Limit int
}

// Delay is the wait before retry attempt (0-based) given a uniform random
// number in [0,1). ok is false once Limit retries were made.
func (b Backoff) Delay(attempt int, rnd float64) (d time.Duration, ok bool) {
	if b.Limit > 0 && attempt >= b.Limit {
		return 0, false
	}
	attempt = max(attempt, 0)
	f := b.Factor
	if f <= 1 {
		f = 2
	}
	base, maxD := float64(b.Base), float64(b.Max)
	if maxD <= 0 {
		maxD = math.MaxInt64 / 2
	}
	// Pow overflows to +Inf for large attempts; min keeps it at Max.
	full := min(base*math.Pow(f, float64(attempt)), maxD)
	j := min(max(b.Jitter, 0), 1)
	rnd = min(max(rnd, 0), 1)
	return time.Duration(full*(1-j) + full*j*rnd), true
}
