package cluster

import (
	"fmt"
	"sync"
	"testing"
)

func TestOrderedKeepsPerKeyOrder(t *testing.T) {
	o := NewOrdered(4, 8)
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
				o.Submit(key, func() {
					mu.Lock()
					seen[key] = append(seen[key], i)
					mu.Unlock()
				})
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

func TestOrderedCloseDrains(t *testing.T) {
	o := NewOrdered(1, 100)
	n := 0
	for i := 0; i < 100; i++ {
		o.Submit("k", func() { n++ })
	}
	o.Close()
	o.Close() // idempotent
	if n != 100 {
		t.Fatalf("ran %d of 100 before Close returned", n)
	}
	o.Submit("k", func() { n++ }) // dropped, not a panic
	if n != 100 {
		t.Fatal("work submitted after Close ran")
	}
}
