package cluster

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestMailboxDepthCountsWaitingMessages: messages posted to a busy actor
// are counted until it has processed them.
func TestMailboxDepthCountsWaitingMessages(t *testing.T) {
	sys := actor.NewActorSystem()
	depth := &MailboxDepth{}
	entered, release := make(chan struct{}, 3), make(chan struct{})
	done := make(chan struct{}, 3)
	props := actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(string); !ok {
			return
		}
		entered <- struct{}{}
		<-release
		done <- struct{}{}
	}, actor.WithMailbox(actor.Unbounded(depth)))
	pid := sys.Root.Spawn(props)
	t.Cleanup(func() { sys.Root.Stop(pid) })
	// Let the start-up system messages through.
	waitUntil(t, func() bool { return depth.Len() == 0 })
	for range 3 {
		sys.Root.Send(pid, "m")
	}
	<-entered // the first is being processed, the other two wait
	if n := depth.Len(); n != 3 {
		t.Fatalf("depth %d while the first of three is processed, want 3 (it counts until done)", n)
	}
	for range 3 {
		release <- struct{}{}
		<-done
	}
	waitUntil(t, func() bool { return depth.Len() == 0 })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
