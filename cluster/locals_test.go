package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// TestLocalsStopOnlyTheirMember: Stop reaches the activations of one actor
// system the filter picks, not those of another member in the process nor
// removed ones; a
// stop that does not return makes Stop give up when ctx ends, saying how
// many are left.
func TestLocalsStopOnlyTheirMember(t *testing.T) {
	a, b := actor.NewActorSystem(), actor.NewActorSystem()
	var l Locals
	a1, a2, a3, b1 := actor.NewPID("a", "1"), actor.NewPID("a", "2"), actor.NewPID("a", "3"), actor.NewPID("b", "1")
	l.Add(a, a1, "1")
	l.Add(a, a2, "2")
	l.Add(a, a3, "3")
	l.Add(b, b1, "1")
	l.Remove(a3)

	var mu sync.Mutex
	stopped := map[*actor.PID]bool{}
	record := func(pid *actor.PID) {
		mu.Lock()
		stopped[pid] = true
		mu.Unlock()
	}
	// Only those the filter picks.
	n, err := l.Stop(context.Background(), a, "things", func(id string) bool { return id == "2" }, record)
	if err != nil || n != 1 || stopped[a1] || !stopped[a2] || stopped[b1] {
		t.Fatalf("Stop(a, only 2) = %d, %v; stopped %v", n, err, stopped)
	}
	n, err = l.Stop(context.Background(), a, "things", nil, record)
	if err != nil || n != 2 || !stopped[a1] || !stopped[a2] || stopped[a3] || stopped[b1] {
		t.Fatalf("Stop(a) = %d, %v; stopped %v", n, err, stopped)
	}

	ctx, cancel := context.WithCancel(context.Background())
	hold := make(chan struct{})
	defer close(hold)
	n, err = l.Stop(ctx, b, "things", nil, func(*actor.PID) { cancel(); <-hold })
	if n != 0 || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stop things: 1 of 1 still running") {
		t.Fatalf("Stop(b) with a stuck stop = %d, %v", n, err)
	}
}
