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
			if c.set.Len() != tt.entries {
				t.Fatalf("%d entries, want %d", c.set.Len(), tt.entries)
			}
		})
	}
}

func TestCooldownsStayBounded(t *testing.T) {
	var c cooldowns
	for i := 0; i < 1000; i++ {
		c.take(fmt.Sprint("user", i), time.Duration(i)*time.Millisecond, time.Hour, 10)
		if c.set.Len() > 10 {
			t.Fatalf("%d entries after %d takes", c.set.Len(), i+1)
		}
	}
	// The newest entry is still cooling down.
	if w := c.take("user999", time.Second, time.Hour, 10); w == 0 {
		t.Fatal("newest entry was evicted")
	}
}
