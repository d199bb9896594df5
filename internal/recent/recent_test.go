package recent

import (
	"fmt"
	"testing"
	"time"
	"unsafe"
)

// The guild grain's deduplication bounds, which the first tests were
// written for.
var ids = Bounds{Window: 30 * time.Second, Max: 1024}

func TestSetAdd(t *testing.T) {
	type add struct {
		id  string
		at  time.Duration
		new bool
	}
	tests := []struct {
		name string
		adds []add
		held int
	}{
		{"new then retried", []add{{"a", 0, true}, {"a", time.Second, false}}, 1},
		{"retried within the window", []add{{"a", 0, true}, {"b", 0, true}, {"a", ids.Window - 1, false}}, 2},
		{"forgotten after the window", []add{{"a", 0, true}, {"a", ids.Window, true}}, 1},
		{"others expire as time passes", []add{{"a", 0, true}, {"b", time.Second, true}, {"c", ids.Window + time.Second, true}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set[struct{}]
			for i, a := range tt.adds {
				if _, got := s.Add(a.id, struct{}{}, a.at, ids); got != a.new {
					t.Fatalf("add %d (%s at %v) = %v, want %v", i, a.id, a.at, got, a.new)
				}
			}
			if s.Len() != tt.held {
				t.Fatalf("holds %d, want %d", s.Len(), tt.held)
			}
		})
	}
}

// TestSetBoundedAndIndexed: past indexAt keys the set uses a map, past Max
// it forgets the oldest, and when the keys expire it gives all the memory
// back.
func TestSetBoundedAndIndexed(t *testing.T) {
	var s Set[struct{}]
	for i := 0; i < 3*ids.Max; i++ {
		if _, added := s.Add(fmt.Sprint(i), struct{}{}, time.Duration(i), ids); !added {
			t.Fatalf("new ID %d reported seen", i)
		}
		if s.Len() > ids.Max {
			t.Fatalf("%d IDs held, bound %d", s.Len(), ids.Max)
		}
		if (s.idx != nil) != (s.Len() > indexAt) {
			t.Fatalf("%d IDs, index %v", s.Len(), s.idx != nil)
		}
		if s.idx != nil && len(s.idx.pos) != s.Len() {
			t.Fatalf("index holds %d, slice %d", len(s.idx.pos), s.Len())
		}
	}
	// The newest are still known, through the index; the oldest are not.
	now := time.Duration(3 * ids.Max)
	if _, added := s.Add(fmt.Sprint(3*ids.Max-1), struct{}{}, now, ids); added {
		t.Fatal("the newest was forgotten")
	}
	if _, added := s.Add("0", struct{}{}, now, ids); !added {
		t.Fatal("the oldest was remembered")
	}
	s.Add("late", struct{}{}, ids.Window+now, ids)
	if s.Len() != 1 || s.idx != nil || cap(s.entries) > 16 {
		t.Fatalf("after the window: %d IDs, index %v, capacity %d", s.Len(), s.idx != nil, cap(s.entries))
	}
	s.Expire(time.Hour, ids)
	if s.entries != nil || s.idx != nil {
		t.Fatal("an empty set holds memory")
	}
}

// TestSetValues: Get and Add find a key's value and when it was added,
// through the slice and through the index, until it expires.
func TestSetValues(t *testing.T) {
	b := Bounds{Window: time.Minute, Max: 64}
	for _, n := range []int{3, indexAt + 10} {
		t.Run(fmt.Sprint(n, " keys"), func(t *testing.T) {
			var s Set[string]
			for i := range n {
				s.Add(fmt.Sprint("k", i), fmt.Sprint("v", i), time.Duration(i)*time.Second, b)
			}
			now := time.Duration(n) * time.Second
			for i := range n {
				if v, ok := s.Get(fmt.Sprint("k", i), now, b); !ok || v != fmt.Sprint("v", i) {
					t.Fatalf("Get(k%d) = %q, %v", i, v, ok)
				}
				at, added := s.Add(fmt.Sprint("k", i), "other", now, b)
				if added || at != time.Duration(i)*time.Second {
					t.Fatalf("Add(k%d) again = %v, %v", i, at, added)
				}
			}
			if v, _ := s.Get("k0", now, b); v != "v0" {
				t.Fatalf("adding a held key replaced its value with %q", v)
			}
			if _, ok := s.Get("k0", b.Window, b); ok {
				t.Fatal("k0 outlived its window")
			}
			if v, ok := s.Get(fmt.Sprint("k", n-1), b.Window, b); !ok || v != fmt.Sprint("v", n-1) {
				t.Fatalf("the newest key after the oldest expired: %q, %v", v, ok)
			}
		})
	}
}

// TestSetGivesMemoryBack: once most keys expired the set shrinks, and once
// all did it holds nothing.
func TestSetGivesMemoryBack(t *testing.T) {
	b := Bounds{Window: time.Second, Max: 1000}
	var s Set[struct{}]
	for i := 0; i < 500; i++ {
		s.Add(fmt.Sprint("user", i), struct{}{}, 0, b)
	}
	s.Add("late", struct{}{}, 2*time.Second, b)
	if s.Len() != 1 || cap(s.entries) > 16 {
		t.Fatalf("after expiry: %d entries, capacity %d", s.Len(), cap(s.entries))
	}
	s.Expire(time.Hour, b)
	if s.entries != nil {
		t.Fatalf("nothing is held, yet %d entries (capacity %d) are", s.Len(), cap(s.entries))
	}
}

// TestSetZeroSizeValue: a set of bare keys costs no more per key than the
// key and its time.
func TestSetZeroSizeValue(t *testing.T) {
	var e entry[struct{}]
	if size := unsafe.Sizeof(e); size != 24 {
		t.Fatalf("entry of a zero-size value is %d bytes, want 24", size)
	}
}
