package cluster

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Post sends message to pid as a request and returns at once; done gets the
// reply, or actor.ErrDeadLetter when pid is gone, or actor.ErrTimeout when
// nothing came within timeout. It is called exactly once.
//
// A request through protoactor's future needs a goroutine parked on it
// until the reply, and waking that goroutine is one more hand-off on a busy
// machine. The reply to a Post goes to a one-shot process instead, whose
// done runs on the goroutine that answers (the target's, for a local
// target) or on the timer's: done must not block.
//
// A plain Send would need no reply at all, but protoactor drops without a
// trace the messages left in a mailbox when its actor stops (an activation
// passivating): only a reply, or its absence within timeout, says that the
// message was taken.
func Post(sys *actor.ActorSystem, pid *actor.PID, message any, timeout time.Duration, done func(reply any, err error)) {
	p := &oneShot{sys: sys, done: done}
	self, ok := sys.ProcessRegistry.Add(p, "post"+sys.ProcessRegistry.NextId())
	if !ok {
		// NextId never repeats; a taken name would be a bug of ours.
		done(nil, actor.ErrDeadLetter)
		return
	}
	p.mu.Lock()
	p.self = self
	p.timer = time.AfterFunc(timeout, func() { p.finish(nil, actor.ErrTimeout) })
	p.mu.Unlock()
	sys.Root.RequestWithCustomSender(pid, message, self)
}

// oneShot is the sender of one Post: the first reply, dead letter or
// timeout ends it and leaves the process registry.
type oneShot struct {
	sys  *actor.ActorSystem
	done func(any, error)

	mu    sync.Mutex
	self  *actor.PID
	timer *time.Timer
	ended bool
}

var _ actor.Process = (*oneShot)(nil)

func (p *oneShot) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if _, dead := msg.(*actor.DeadLetterResponse); dead {
		p.finish(nil, actor.ErrDeadLetter)
		return
	}
	p.finish(msg, nil)
}

func (p *oneShot) SendSystemMessage(*actor.PID, any) {}

// Stop comes from nobody but the registry's users; it ends the Post as a
// timeout would.
func (p *oneShot) Stop(*actor.PID) { p.finish(nil, actor.ErrTimeout) }

func (p *oneShot) finish(reply any, err error) {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	p.timer.Stop()
	self := p.self
	p.mu.Unlock()
	p.sys.ProcessRegistry.Remove(self)
	p.done(reply, err)
}
