package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// outcome is one call of a Post's done.
type outcome struct {
	reply any
	err   error
}

func postAndWait(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, msg any, timeout time.Duration) outcome {
	t.Helper()
	got := make(chan outcome, 2)
	Post(sys, pid, msg, timeout, func(reply any, err error) { got <- outcome{reply, err} })
	select {
	case o := <-got:
		return o
	case <-time.After(30 * time.Second):
		t.Fatal("done was never called")
		return outcome{}
	}
}

// TestPostReply: the reply reaches done, once, even from a target that
// answers twice, and the one-shot sender leaves the process registry.
func TestPostReply(t *testing.T) {
	sys := actor.NewActorSystem()
	senders := make(chan *actor.PID, 1)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(string); ok {
			senders <- c.Sender()
			c.Respond(m + " pong")
			c.Respond("again")
		}
	}))
	t.Cleanup(func() { sys.Root.Stop(pid) })
	got := make(chan outcome, 2)
	Post(sys, pid, "ping", 30*time.Second, func(reply any, err error) { got <- outcome{reply, err} })
	sender := <-senders
	if o := <-got; o.reply != "ping pong" || o.err != nil {
		t.Fatalf("done(%v, %v), want the reply", o.reply, o.err)
	}
	// The second reply went to the dead letters, not to done: a message
	// through the same mailbox after it shows that it has been handled.
	if o := postAndWait(t, sys, pid, "later", 30*time.Second); o.reply != "later pong" {
		t.Fatalf("next post: done(%v, %v)", o.reply, o.err)
	}
	select {
	case o := <-got:
		t.Fatalf("done called twice: again with (%v, %v)", o.reply, o.err)
	default:
	}
	if _, ok := sys.ProcessRegistry.GetLocal(sender.Id); ok {
		t.Errorf("the one-shot sender %s is still registered after its reply", sender.Id)
	}
}

// TestPostDeadLetter: a target that is gone is reported at once.
func TestPostDeadLetter(t *testing.T) {
	sys := actor.NewActorSystem()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if o := postAndWait(t, sys, pid, "ping", 30*time.Second); !errors.Is(o.err, actor.ErrDeadLetter) || o.reply != nil {
		t.Fatalf("done(%v, %v), want a dead letter", o.reply, o.err)
	}
}

// TestPostLeftInAStoppingMailbox is why a Post waits for a reply: a
// message queued to an activation that stops before it gets to it is
// dropped by protoactor without a dead letter, and only the timeout says
// so.
func TestPostLeftInAStoppingMailbox(t *testing.T) {
	sys := actor.NewActorSystem()
	entered, release := make(chan struct{}), make(chan struct{})
	seen := make(chan string, 4)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Stopped:
			seen <- "stopped"
		case string:
			seen <- m
			if m == "block" {
				close(entered)
				<-release
			}
			c.Respond(m)
		}
	}))
	sys.Root.Send(pid, "block")
	<-entered
	got := make(chan outcome, 2)
	Post(sys, pid, "posted", 100*time.Millisecond, func(reply any, err error) { got <- outcome{reply, err} })
	stopped := sys.Root.StopFuture(pid) // a system message: ahead of the queued post
	close(release)
	if err := stopped.Wait(); err != nil {
		t.Fatal(err)
	}
	o := <-got
	if !errors.Is(o.err, actor.ErrTimeout) || o.reply != nil {
		t.Fatalf("done(%v, %v), want a timeout", o.reply, o.err)
	}
	for _, want := range []string{"block", "stopped"} {
		if m := <-seen; m != want {
			t.Fatalf("the actor saw %q, want %q", m, want)
		}
	}
	select {
	case m := <-seen:
		t.Fatalf("the actor saw %q after it stopped", m)
	default:
	}
}

// TestPostConcurrent: many posts at once, replies and timeouts racing, each
// done exactly once (run with -race).
func TestPostConcurrent(t *testing.T) {
	sys := actor.NewActorSystem()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if n, ok := c.Message().(int); ok && n%2 == 0 {
			c.Respond(n) // odd ones time out
		}
	}))
	t.Cleanup(func() { sys.Root.Stop(pid) })
	const posts = 200
	var mu sync.Mutex
	calls := map[int]int{}
	var wg sync.WaitGroup
	wg.Add(posts)
	for i := range posts {
		go Post(sys, pid, i, time.Millisecond*time.Duration(1+i%5), func(reply any, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			calls[i]++
			if n, ok := reply.(int); ok && (n != i || err != nil) {
				t.Errorf("post %d: done(%v, %v)", i, reply, err)
			}
			if reply == nil && !errors.Is(err, actor.ErrTimeout) {
				t.Errorf("post %d: done(nil, %v), want a reply or a timeout", i, err)
			}
			if i%2 == 1 && reply != nil {
				t.Errorf("post %d got reply %v from a target that never answers it", i, reply)
			}
		})
	}
	wg.Wait()
	// Every even post has been answered: one more through the same
	// mailbox comes after all their replies.
	postAndWait(t, sys, pid, 1000, 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	for i := range posts {
		if calls[i] != 1 {
			t.Errorf("post %d: done called %d times", i, calls[i])
		}
	}
}
