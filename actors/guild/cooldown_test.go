package guild

import (
	"fmt"
	"testing"
	"time"
)

func TestCooldowns(t *testing.T) {
	c := newCooldowns(3)
	t0 := time.Unix(1000, 0)
	if w := c.take("u1/skip", t0, 2*time.Second); w != 0 {
		t.Fatalf("first use waits %v", w)
	}
	if w := c.take("u1/skip", t0.Add(500*time.Millisecond), 2*time.Second); w != 1500*time.Millisecond {
		t.Fatalf("second use waits %v, want 1.5s", w)
	}
	if w := c.take("u1/pause", t0, 2*time.Second); w != 0 {
		t.Fatalf("other command waits %v", w)
	}
	if w := c.take("u1/skip", t0.Add(2*time.Second), 2*time.Second); w != 0 {
		t.Fatalf("after expiry waits %v", w)
	}
	if w := c.take("u2/skip", t0, 0); w != 0 || len(c.until) != 2 {
		t.Fatalf("zero cooldown: wait %v, entries %d", w, len(c.until))
	}
}

func TestCooldownsStayBounded(t *testing.T) {
	c := newCooldowns(10)
	t0 := time.Unix(1000, 0)
	for i := 0; i < 1000; i++ {
		c.take(fmt.Sprint("user", i), t0.Add(time.Duration(i)*time.Millisecond), time.Hour)
		if len(c.until) > 10 {
			t.Fatalf("%d entries after %d takes", len(c.until), i+1)
		}
	}
	// The newest entry is still cooling down.
	if w := c.take("user999", t0.Add(time.Second), time.Hour); w == 0 {
		t.Fatal("newest entry was evicted")
	}
}
