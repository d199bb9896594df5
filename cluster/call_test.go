package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

func TestCallRetriesTransportErrorsOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	calls := 0
	got, err := Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (string, error) {
		calls++
		if len(opts) != 2 {
			t.Fatalf("attempt got %d options, want timeout and retry count", len(opts))
		}
		if calls < 3 {
			return "", errors.New("request failed: timeout")
		}
		return "ok", nil
	})
	if err != nil || got != "ok" || calls != 3 {
		t.Fatalf("Call = %q, %v after %d calls", got, err, calls)
	}

	calls = 0
	_, err = Call(ctx, 3, func(...pcluster.GrainCallOption) (string, error) {
		calls++
		return "", pcluster.NewGrainErrorResponse(pcluster.ErrorReason_INVALID_ARGUMENT, "bad")
	})
	if err == nil || calls != 1 {
		t.Fatalf("grain error retried: %d calls, err %v", calls, err)
	}

	calls = 0
	_, err = Call(ctx, 4, func(...pcluster.GrainCallOption) (string, error) {
		calls++
		return "", errors.New("dead letter")
	})
	if err == nil || calls != 4 {
		t.Fatalf("exhausted retries: %d calls, err %v", calls, err)
	}
}

func TestCallNeedsADeadline(t *testing.T) {
	_, err := Call(context.Background(), 1, func(...pcluster.GrainCallOption) (int, error) { return 1, nil })
	if !errors.Is(err, ErrNoDeadline) {
		t.Fatalf("Call without deadline = %v", err)
	}
}

func TestCallStopsAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	calls := 0
	_, err := Call(ctx, 1000, func(...pcluster.GrainCallOption) (int, error) {
		calls++
		time.Sleep(10 * time.Millisecond)
		return 0, errors.New("timeout")
	})
	if err == nil || calls >= 1000 {
		t.Fatalf("Call ran %d attempts past its deadline (err %v)", calls, err)
	}
}

// An attempt that finds the grain's member unreachable ends the call: the
// next attempts would find the same until the membership drops it.
func TestCallDoesNotRetryAnUnreachableOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	calls := 0
	_, err := Call(ctx, 3, func(...pcluster.GrainCallOption) (int, error) {
		calls++
		return 0, fmt.Errorf("Guild/1 on 127.0.0.1:1: %w", ErrOwnerUnreachable)
	})
	if !errors.Is(err, ErrOwnerUnreachable) || calls != 1 {
		t.Fatalf("Call = %v after %d attempts; want ErrOwnerUnreachable after one", err, calls)
	}
}
