package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestOrderedKeepsPerKeyOrder(t *testing.T) {
	o := NewOrdered(1000, 100)
	var mu sync.Mutex
	seen := map[string][]int{}
	const keys, per = 20, 200
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			key := fmt.Sprint("guild-", k)
			for i := 0; i < per; i++ {
				if !o.Submit(key, func() {
					mu.Lock()
					seen[key] = append(seen[key], i)
					mu.Unlock()
				}) {
					t.Errorf("%s: item %d refused", key, i)
				}
			}
		}(k)
	}
	wg.Wait()
	o.Close()
	if len(seen) != keys {
		t.Fatalf("%d keys ran, want %d", len(seen), keys)
	}
	for key, got := range seen {
		if len(got) != per {
			t.Fatalf("%s: %d items ran, want %d", key, len(got), per)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("%s: item %d ran at %d (out of order)", key, v, i)
			}
		}
	}
}

// TestOrderedSlowKeyDelaysOnlyItself: a key whose job is stuck holds up
// its own later jobs, never another key's, and Submit never blocks.
func TestOrderedSlowKeyDelaysOnlyItself(t *testing.T) {
	o := NewOrdered(2, 10)
	release := make(chan struct{})
	started := make(chan struct{})
	if !o.Submit("slow", func() { close(started); <-release }) {
		t.Fatal("first job refused")
	}
	<-started
	ranAfter := false
	o.Submit("slow", func() { ranAfter = true })
	// The slow key is at its bound: refused at once, not blocked.
	if o.Submit("slow", func() {}) {
		t.Fatal("a third job for a key bounded at 2 was accepted")
	}
	done := make(chan struct{})
	if !o.Submit("fast", func() { close(done) }) {
		t.Fatal("another key's job refused")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a slow key held up another key")
	}
	if ranAfter {
		t.Fatal("a later job of the slow key overtook its first")
	}
	close(release)
	o.Close()
	if !ranAfter {
		t.Fatal("Close returned before the slow key's queue ran")
	}
	if n := o.Pending("slow") + o.Pending("fast"); n != 0 {
		t.Fatalf("%d jobs left after Close", n)
	}
}

func TestOrderedCloseDrains(t *testing.T) {
	o := NewOrdered(100, 10)
	n := 0
	for i := 0; i < 100; i++ {
		o.Submit("k", func() { n++ })
	}
	o.Close()
	o.Close() // idempotent
	if n != 100 {
		t.Fatalf("ran %d of 100 before Close returned", n)
	}
	if o.Submit("k", func() { n++ }) || n != 100 {
		t.Fatal("work submitted after Close was accepted")
	}
}

// TestOrderedIdleKeyHoldsNothing: a key that ran out of work is
// forgotten (no goroutine, no queue).
func TestOrderedIdleKeyHoldsNothing(t *testing.T) {
	o := NewOrdered(4, 10)
	done := make(chan struct{})
	o.Submit("k", func() { close(done) })
	<-done
	o.Close()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.keys) != 0 {
		t.Fatalf("%d keys kept after their work ran", len(o.keys))
	}
}

// TestOrderedBoundsKeys: past maxKeys busy keys, a new key is refused;
// keys with work go on.
func TestOrderedBoundsKeys(t *testing.T) {
	o := NewOrdered(4, 2)
	release := make(chan struct{})
	for _, k := range []string{"a", "b"} {
		if !o.Submit(k, func() { <-release }) {
			t.Fatalf("key %s refused", k)
		}
	}
	if o.Submit("c", func() {}) {
		t.Fatal("a third key accepted past maxKeys 2")
	}
	if !o.Submit("a", func() {}) {
		t.Fatal("a busy key's next job refused")
	}
	close(release)
	o.Close()
}
