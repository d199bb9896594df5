package cluster

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Go runs f on a goroutine, reusing one that finished earlier work and is
// waiting for more. A goroutine starts with a small stack and grows it on
// the deep calls grains hand off (Discord REST, the store, grain calls);
// a fresh goroutine per job grows it again every time, which cost a busy
// node about an eighth of its CPU. A worker with nothing to do for 10 s
// exits, so an idle member holds none. At most maxWarm are kept: a
// burst (the idle sweep ticks every guild at once) runs the rest on
// goroutines that end with their job, instead of leaving thousands of
// grown stacks waiting for work that does not come.
func Go(f func()) { workers.Go(f) }

// maxWarm bounds the workers kept: far above the jobs a steady load runs
// at once (tens at 1000 interactions/s), far below a burst's.
const maxWarm = 128

// Workers is how many of Go's goroutines are alive (busy or waiting for a
// job): a member-wide number, at most maxWarm, which footprint
// measurements set apart from per-grain goroutines.
func Workers() int { return int(workers.live.Load()) }

var workers = newPool(10*time.Second, maxWarm)

// pool is a set of warm goroutines that take jobs while they wait.
type pool struct {
	// jobs hands a job to a waiting worker; unbuffered, so a send
	// succeeds only when one is idle.
	jobs chan func()
	idle time.Duration
	max  int32
	live atomic.Int32 // workers alive
}

func newPool(idle time.Duration, max int) *pool {
	return &pool{jobs: make(chan func()), idle: idle, max: int32(max)}
}

// Go runs f on an idle worker, or on a new one; past max workers, on a
// goroutine of its own.
func (p *pool) Go(f func()) {
	select {
	case p.jobs <- f:
		return
	default:
	}
	if p.live.Add(1) > p.max {
		p.live.Add(-1)
		go f()
		return
	}
	go p.work(f)
}

func (p *pool) work(f func()) {
	defer p.live.Add(-1)
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		f = nil
		t.Reset(p.idle)
		select {
		case f = <-p.jobs:
		case <-t.C:
			return
		}
	}
}

// Dispatcher runs actors' mailboxes on Go's warm goroutines. protoactor's
// default dispatcher starts a goroutine each time a mailbox gets work, and
// a grain's Receive is deep enough (protoactor's middleware chain, then
// the grain's own calls) that every such goroutine grew its stack again:
// about 7 % of a busy node's CPU went to copying stacks. Every kind's
// activations use it (the identity lookup adds it to their Props).
var Dispatcher actor.Dispatcher = warmDispatcher(300)

// warmDispatcher is protoactor's default dispatcher on Go's goroutines; its
// value is the mailbox's throughput (messages per turn before it yields),
// protoactor's default.
type warmDispatcher int

func (warmDispatcher) Schedule(fn func()) { Go(fn) }
func (d warmDispatcher) Throughput() int  { return int(d) }
