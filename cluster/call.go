package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
)

// ErrNoDeadline is returned by Call for a context without a deadline: every
// grain call must be bounded.
var ErrNoDeadline = errors.New("grain call without a deadline")

// callBackoff spaces the attempts of a Call. No cap: the caller's
// deadline bounds the whole call, attempts included.
var callBackoff = supervisor.Backoff{Base: 20 * time.Millisecond, Jitter: 0.5}

// Call runs a grain call with a deadline and bounded retries with real,
// jittered backoff. protoactor's own retry sleeps nanoseconds and gives
// each attempt the full timeout (protoactor), so each attempt here gets
// its share of the time left and one protoactor try.
//
// attempt receives the call options to pass to the generated client. An
// error the grain itself returned (a GrainErrorResponse) is not retried:
// the grain answered; nor is ErrOwnerUnreachable, which an attempt should
// return (Placement.Reachable) before a call that would stick on a member
// that just died. A timed-out attempt may still run, so a retried
// call must be idempotent at the grain (guild grains drop interactions
// they have seen, sessions answer a repeated request ID from a cache);
// calls that cannot be made so use one attempt.
func Call[T any](ctx context.Context, attempts int, attempt func(opts ...pcluster.GrainCallOption) (T, error)) (T, error) {
	var zero T
	deadline, ok := ctx.Deadline()
	if !ok {
		return zero, ErrNoDeadline
	}
	attempts = max(attempts, 1)
	var lastErr error
	for i := 0; i < attempts; i++ {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		// Leave time for the attempts after this one.
		per := left / time.Duration(attempts-i)
		res, err := attempt(pcluster.WithTimeout(per), pcluster.WithRetryCount(1))
		if err == nil {
			return res, nil
		}
		var ge *pcluster.GrainErrorResponse
		if errors.As(err, &ge) || errors.Is(err, ErrOwnerUnreachable) {
			return zero, err
		}
		lastErr = err
		if i == attempts-1 {
			break
		}
		sleep, _ := callBackoff.Delay(i, rand.Float64())
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("grain call: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(sleep):
		}
	}
	if lastErr == nil {
		lastErr = context.DeadlineExceeded
	}
	return zero, fmt.Errorf("grain call failed after %d attempts: %w", attempts, lastErr)
}
