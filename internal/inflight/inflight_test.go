package inflight

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Duration }

func (c *clock) now() time.Duration { return c.t }

func TestLimit(t *testing.T) {
	type step struct {
		op      string // "acquire", "release", "wait"
		id      string
		d       time.Duration
		want    bool // acquire's answer
		wantLen int
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"up to max, then refused", []step{
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "acquire", id: "b", want: true, wantLen: 2},
			{op: "acquire", id: "c", want: false, wantLen: 2},
		}},
		{"a release makes room", []step{
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "acquire", id: "b", want: true, wantLen: 2},
			{op: "release", id: "a", wantLen: 1},
			{op: "acquire", id: "c", want: true, wantLen: 2},
		}},
		{"the same id twice counts once", []step{
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "acquire", id: "b", want: true, wantLen: 2},
		}},
		{"an unknown release is ignored", []step{
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "release", id: "x", wantLen: 1},
		}},
		{"never answered: out at the deadline", []step{
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "wait", d: time.Second},
			{op: "acquire", id: "b", want: true, wantLen: 2},
			{op: "wait", d: 2 * time.Second}, // a is 3 s old
			{op: "acquire", id: "c", want: true, wantLen: 2},
			{op: "acquire", id: "d", want: false, wantLen: 2},
		}},
		{"released and taken again: the old expiry does not end the new flight", []step{
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "release", id: "a", wantLen: 0},
			{op: "wait", d: 2 * time.Second},
			{op: "acquire", id: "a", want: true, wantLen: 1},
			{op: "wait", d: time.Second}, // the first taking expires
			{op: "acquire", id: "b", want: true, wantLen: 2},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{}
			l := newLimit(2, 3*time.Second, c.now)
			for i, s := range tc.steps {
				switch s.op {
				case "acquire":
					if got := l.Acquire(s.id); got != s.want {
						t.Fatalf("step %d: Acquire(%s) = %v, want %v", i, s.id, got, s.want)
					}
				case "release":
					l.Release(s.id)
				case "wait":
					c.t += s.d
					continue
				}
				if n := l.Len(); n != s.wantLen {
					t.Fatalf("step %d: Len %d, want %d", i, n, s.wantLen)
				}
			}
		})
	}
}

// TestLimitGivesMemoryBack: expired takings leave the queue.
func TestLimitGivesMemoryBack(t *testing.T) {
	c := &clock{}
	l := newLimit(10, time.Second, c.now)
	for i := range 10_000 {
		id := strconv.Itoa(i)
		if !l.Acquire(id) {
			t.Fatalf("acquire %d refused", i)
		}
		l.Release(id)
		c.t += time.Millisecond
	}
	if n := len(l.order) - l.head; n > 1001 {
		t.Fatalf("%d takings kept, want at most a second's worth (1001)", n)
	}
	if cap(l.order) > 4096 {
		t.Fatalf("queue capacity %d after 10,000 takings a second apart from the oldest", cap(l.order))
	}
}

// TestLimitConcurrent: readers acquiring while answers release (run with
// -race) never exceed the bound.
func TestLimitConcurrent(t *testing.T) {
	l := New(8, time.Minute)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				id := strconv.Itoa(g) + "/" + strconv.Itoa(i)
				if l.Acquire(id) {
					if n := l.Len(); n > 8 {
						t.Errorf("%d in flight, bound 8", n)
						return
					}
					l.Release(id)
				}
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n != 0 {
		t.Fatalf("%d in flight after every release", n)
	}
}
