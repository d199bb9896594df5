package heapfloor

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name               string
		live, roots, floor uint64
		base, want         int
	}{
		{"small live heap: goal raised to the floor", 6 * mib, 0, 64 * mib, 100, 966},
		{"stacks and globals count towards the goal", 6 * mib, 2 * mib, 64 * mib, 100, 725},
		{"goal already at the floor", 32 * mib, 0, 64 * mib, 100, 100},
		{"large live heap: the base", 200 * mib, 4 * mib, 64 * mib, 100, 100},
		{"live heap at the floor", 64 * mib, 0, 64 * mib, 100, 100},
		{"a higher base wins", 6 * mib, 0, 64 * mib, 2000, 2000},
		{"collection off stays off", 6 * mib, 0, 64 * mib, -1, -1},
		{"before the first cycle", 0, 0, 64 * mib, 100, 100},
		{"near-empty heap: capped", 1, 0, 64 * mib, 100, 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Percent(tc.live, tc.roots, tc.floor, tc.base)
			if got != tc.want {
				t.Fatalf("Percent(%d, %d, %d, %d) = %d, want %d", tc.live, tc.roots, tc.floor, tc.base, got, tc.want)
			}
			// The runtime's goal for it is at or under the floor when raised.
			if goal := tc.live + (tc.live+tc.roots)*uint64(got)/100; got > tc.base && goal > tc.floor {
				t.Fatalf("goal %d over the floor %d", goal, tc.floor)
			}
		})
	}
}

func TestTunerSetsOnlyWorthwhileChanges(t *testing.T) {
	var live uint64
	var sets []int
	tu := tuner{floor: 64 * mib, base: 100, current: 100,
		read: func() (uint64, uint64) { return live, 0 },
		set:  func(p int) int { sets = append(sets, p); return 0 }}
	for _, step := range []struct {
		live uint64
		want []int // calls so far
	}{
		{0, nil},                               // no cycle yet: base
		{6 * mib, []int{966}},                  // raised
		{6*mib + mib/4, []int{966}},            // 924: within 10 %, kept
		{4 * mib, []int{966, 1500}},            // a real change
		{40 * mib, []int{966, 1500, 100}},      // back to the base
		{45 * mib, []int{966, 1500, 100}},      // still the base
		{30 * mib, []int{966, 1500, 100, 113}}, // 113 is more than 10 % over 100
	} {
		live = step.live
		tu.adjust()
		if !slices.Equal(sets, step.want) {
			t.Fatalf("live %d: GOGC set to %v, want %v", step.live, sets, step.want)
		}
	}
}

// Run against the real runtime: after a few collections GOGC is raised
// (read back from runtime/metrics), and the base is restored when it stops.
func TestRunRaisesGOGCAndRestoresIt(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 1<<40, slog.New(slog.DiscardHandler)) // far above any test's live heap
	}()
	deadline := time.Now().Add(time.Minute) // a bound for a broken build, not a timing
	for gogc() <= 100 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("GOGC still %d after a minute of collections", gogc())
		}
		runtime.GC()
	}
	// A second Run in the same process leaves the first one in charge.
	second := make(chan struct{})
	go func() {
		defer close(second)
		Run(context.Background(), 64*mib, slog.New(slog.DiscardHandler))
	}()
	<-second
	if got := gogc(); got <= 100 {
		t.Fatalf("GOGC = %d after a second Run returned, want the first one's raised value", got)
	}
	cancel()
	<-done
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after Run stopped = %d, want the base 100", got)
	}
}

func TestRunLeavesGOGCOffAlone(t *testing.T) {
	prev := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(context.Background(), 64*mib, slog.New(slog.DiscardHandler))
	}()
	<-done // returns at once: nothing to keep running
	if got := gogc(); got != -1 {
		t.Fatalf("GOGC = %d, want it still off (-1)", got)
	}
}

func TestOnCycleFollowsCollections(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan struct{}, 16)
	onCycle(ctx, func() { calls <- struct{}{} })
	deadline := time.Now().Add(time.Minute) // a bound for a broken build, not a timing
	for n := 0; n < 3; {
		select {
		case <-calls:
			n++
		default:
			if time.Now().After(deadline) {
				t.Fatalf("%d calls after a minute of collections, want 3", n)
			}
			runtime.GC()
		}
	}
}
