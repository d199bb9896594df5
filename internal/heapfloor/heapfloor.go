// Package heapfloor keeps the garbage collector's heap goal from falling
// below a floor.
//
// With GOGC=100 the next collection starts when the heap is twice the live
// heap. A node with a few hundred guilds has a live heap of a few MB and
// allocates tens of MB a second answering interactions, so it collects about
// eight times a second; each cycle's marking takes CPU from the goroutines
// waiting to answer, and most answers slower than a few ms fall inside one
// (BENCHMARKS.md). A floor lets such a node grow its heap to the floor before
// collecting, while a node whose live heap is large enough keeps the GOGC it
// was started with: after every cycle, GOGC is set to the larger of that
// base and the percentage that puts the goal at the floor. GOMEMLIMIT, when
// set, still caps the heap.
//
// It is what a heap ballast did, without the ballast: nothing is allocated,
// and the floor is a goal, not memory in use.
package heapfloor

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Percent is the GOGC that puts the next heap goal at floor, or base when
// base already puts it there or above. The runtime's goal is
// live + (live + roots) × GOGC/100, where roots is the goroutine stacks and
// globals it scans. A base below 0 (collection off) is kept.
func Percent(live, roots, floor uint64, base int) int {
	if base < 0 || live == 0 || floor <= live {
		return base
	}
	// Rounded down so the goal stays at or under the floor; capped so a
	// near-empty heap cannot ask for an absurd value.
	p := (floor - live) * 100 / (live + roots)
	const maxPercent = 100_000
	return max(base, int(min(p, maxPercent)))
}

// active is whether a Run keeps the floor: GOGC is process-wide, and a
// second Run would take the first one's raised GOGC for its base.
var active atomic.Bool

// Run keeps the heap goal at or above floor until ctx ends, then restores
// the GOGC the process had. It returns at once when floor is 0, the
// collector is off (GOGC=off), or another Run is active in the process
// (several nodes in one test binary).
func Run(ctx context.Context, floor uint64, log *slog.Logger) {
	if floor == 0 || !active.CompareAndSwap(false, true) {
		return
	}
	defer active.Store(false)
	base := gogc()
	if base < 0 {
		return
	}
	cycles := make(chan struct{}, 1)
	onCycle(ctx, func() {
		select {
		case cycles <- struct{}{}:
		default: // one adjustment pending is enough
		}
	})
	t := tuner{floor: floor, base: base, current: base, read: lastCycle, set: debug.SetGCPercent}
	t.adjust()
	log.Info("GC heap floor set", "floor_bytes", floor, "base_gogc", base, "gogc", t.current)
	for {
		select {
		case <-ctx.Done():
			debug.SetGCPercent(base)
			return
		case <-cycles:
			t.adjust()
		}
	}
}

// tuner sets GOGC from the last cycle's figures.
type tuner struct {
	floor         uint64
	base, current int
	// read returns the live heap and the roots (stacks and globals) the
	// last cycle scanned.
	read func() (live, roots uint64)
	set  func(int) int
}

func (t *tuner) adjust() {
	live, roots := t.read()
	p := Percent(live, roots, t.floor, t.base)
	// Small changes are not worth a call: the live heap moves a little
	// every cycle. A return to the base always is.
	if p == t.current || (p != t.base && p*10 > t.current*9 && p*10 < t.current*11) {
		return
	}
	t.set(p)
	t.current = p
}

// lastCycle reads the live heap and the scanned stacks and globals of the
// last cycle (0 before the first).
func lastCycle() (live, roots uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return v(0), v(1) + v(2)
}

// gogc is the GOGC in force (-1: off), read without setting it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// onCycle calls f after every garbage collection until ctx ends: an object
// nothing refers to becomes unreachable in each cycle, and its cleanup
// makes the next one.
func onCycle(ctx context.Context, f func()) {
	type sentinel struct{ _ [32]byte } // not a tiny allocation, so collected on its own
	var arm func()
	arm = func() {
		runtime.AddCleanup(new(sentinel), func(struct{}) {
			if ctx.Err() != nil {
				return
			}
			f()
			arm()
		}, struct{}{})
	}
	arm()
}
