package cluster

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestGoReusesIdleWorkers: jobs run one after another reuse the worker
// that finished the last one instead of starting a goroutine each.
func TestGoReusesIdleWorkers(t *testing.T) {
	p := newPool(time.Minute, 64)
	base := runtime.NumGoroutine()
	for i := 0; i < 200; i++ {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
	}
	// Jobs handed to a worker while it was still between jobs may have
	// started a second one, never a goroutine per job.
	if n := runtime.NumGoroutine() - base; n > 4 {
		t.Fatalf("%d goroutines for 200 sequential jobs", n)
	}
}

// TestGoRunsConcurrentJobs: jobs that wait for each other all run (a busy
// worker never holds a job back), beyond the workers kept too; a burst
// leaves at most max workers waiting.
func TestGoRunsConcurrentJobs(t *testing.T) {
	const n, max = 50, 10
	var wg sync.WaitGroup
	wg.Add(n)
	release := make(chan struct{})
	p := newPool(time.Minute, max)
	for i := 0; i < n; i++ {
		p.Go(func() { wg.Done(); <-release })
	}
	wg.Wait() // all n started while every one of them is blocked
	if live := p.live.Load(); live != max {
		t.Fatalf("%d workers for %d jobs at once, want the %d kept", live, n, max)
	}
	close(release)
}

// TestIdleWorkersExit: with nothing to do, workers go away.
func TestIdleWorkersExit(t *testing.T) {
	p := newPool(20*time.Millisecond, 64)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	deadline := time.Now().Add(10 * time.Second)
	for p.live.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers did not exit", p.live.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
