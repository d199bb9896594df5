package guild

import (
	"fmt"
	"testing"
	"time"
)

func TestCooldowns(t *testing.T) {
	type take struct {
		key  string
		at   time.Duration
		d    time.Duration
		wait time.Duration
	}
	tests := []struct {
		name    string
		takes   []take
		entries int
	}{
		{"first use is free", []take{{"u1/skip", 0, 2 * time.Second, 0}}, 1},
		{"second use waits the rest", []take{
			{"u1/skip", 0, 2 * time.Second, 0},
			{"u1/skip", 500 * time.Millisecond, 2 * time.Second, 1500 * time.Millisecond},
		}, 1},
		{"other command is free", []take{
			{"u1/skip", 0, 2 * time.Second, 0},
			{"u1/pause", 0, 2 * time.Second, 0},
		}, 2},
		{"free again once it ended, and the ended entry is gone", []take{
			{"u1/skip", 0, 2 * time.Second, 0},
			{"u2/skip", 0, time.Second, 0},
			{"u1/skip", 2 * time.Second, 2 * time.Second, 0},
		}, 1},
		{"zero cooldown stores nothing", []take{{"u2/skip", 0, 0, 0}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c cooldowns
			for i, tk := range tt.takes {
				if w := c.take(tk.key, tk.at, tk.d, 3); w != tk.wait {
					t.Fatalf("take %d (%s at %v) waits %v, want %v", i, tk.key, tk.at, w, tk.wait)
				}
			}
			if len(c.entries) != tt.entries {
				t.Fatalf("%d entries, want %d", len(c.entries), tt.entries)
			}
		})
	}
}

func TestCooldownsStayBounded(t *testing.T) {
	var c cooldowns
	for i := 0; i < 1000; i++ {
		c.take(fmt.Sprint("user", i), time.Duration(i)*time.Millisecond, time.Hour, 10)
		if len(c.entries) > 10 {
			t.Fatalf("%d entries after %d takes", len(c.entries), i+1)
		}
	}
	// The newest entry is still cooling down.
	if w := c.take("user999", time.Second, time.Hour, 10); w == 0 {
		t.Fatal("newest entry was evicted")
	}
}

// TestCooldownsGiveMemoryBack: once everything expired, nothing is held.
func TestCooldownsGiveMemoryBack(t *testing.T) {
	var c cooldowns
	for i := 0; i < 500; i++ {
		c.take(fmt.Sprint("user", i), 0, time.Second, 1000)
	}
	c.take("late", 2*time.Second, time.Second, 1000)
	if len(c.entries) != 1 || cap(c.entries) > 16 {
		t.Fatalf("after expiry: %d entries, capacity %d", len(c.entries), cap(c.entries))
	}
	c.expire(time.Hour)
	if c.entries != nil {
		t.Fatalf("nothing cools down, yet %d entries (capacity %d) are held", len(c.entries), cap(c.entries))
	}
}

func TestRecentIDs(t *testing.T) {
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
		{"retried within the window", []add{{"a", 0, true}, {"b", 0, true}, {"a", dedupWindow - 1, false}}, 2},
		{"forgotten after the window", []add{{"a", 0, true}, {"a", dedupWindow, true}}, 1},
		{"others expire as time passes", []add{{"a", 0, true}, {"b", time.Second, true}, {"c", dedupWindow + time.Second, true}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recentIDs
			for i, a := range tt.adds {
				if got := r.add(a.id, a.at); got != a.new {
					t.Fatalf("add %d (%s at %v) = %v, want %v", i, a.id, a.at, got, a.new)
				}
			}
			if r.len() != tt.held {
				t.Fatalf("holds %d, want %d", r.len(), tt.held)
			}
		})
	}
}

// TestRecentIDsBoundedAndIndexed: past dedupIndexAt IDs the set uses a
// map, past dedupMax it forgets the oldest, and when the IDs expire it
// gives all the memory back.
func TestRecentIDsBoundedAndIndexed(t *testing.T) {
	var r recentIDs
	for i := 0; i < 3*dedupMax; i++ {
		if !r.add(fmt.Sprint(i), time.Duration(i)) {
			t.Fatalf("new ID %d reported seen", i)
		}
		if r.len() > dedupMax {
			t.Fatalf("%d IDs held, bound %d", r.len(), dedupMax)
		}
		if (r.index != nil) != (r.len() > dedupIndexAt) {
			t.Fatalf("%d IDs, index %v", r.len(), r.index != nil)
		}
		if r.index != nil && len(r.index) != r.len() {
			t.Fatalf("index holds %d, slice %d", len(r.index), r.len())
		}
	}
	// The newest are still known, through the index; the oldest are not.
	if r.add(fmt.Sprint(3*dedupMax-1), 3*dedupMax) || !r.add("0", 3*dedupMax) {
		t.Fatal("the newest was forgotten or the oldest remembered")
	}
	r.add("late", dedupWindow+3*dedupMax)
	if r.len() != 1 || r.index != nil || cap(r.entries) > 16 {
		t.Fatalf("after the window: %d IDs, index %v, capacity %d", r.len(), r.index != nil, cap(r.entries))
	}
	r.expire(time.Hour)
	if r.entries != nil || r.index != nil {
		t.Fatal("an empty set holds memory")
	}
}
