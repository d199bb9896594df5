package music_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/music"
)

// FuzzQueueOps runs a byte-encoded sequence of queue operations against the
// Queue and against a plain-slice model of the documented semantics. After
// every operation it checks the limit, the exact order against the model,
// and conservation: every track ever added is in exactly one place — the
// queue, the playing slot, or the set removed by an explicit operation
// (pop, remove, clear, a finished or skipped track with loop off). Loop-queue
// re-appends move the playing track back into the queue, so nothing is ever
// counted twice.
func FuzzQueueOps(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 2, 7, 5, 2, 5, 2, 5, 2, 5, 2})
	f.Add([]byte{4, 2, 6, 5, 1, 6, 3, 2, 7, 2, 8, 1, 3, 9, 1, 2, 10})
	f.Add([]byte{7, 0, 0, 0, 1, 5, 0, 6, 2, 2, 7, 0, 7, 255, 8, 0, 4, 8, 2, 2})
	f.Add([]byte{1, 5, 0, 5, 2, 5, 2, 6, 1, 2, 0, 6, 1, 0})
	f.Add([]byte{5, 3, 4, 9, 7, 7, 5, 2, 6, 3, 2, 3, 3, 10, 4})
	// Full queue, then skips of 3 under each loop mode and loop-queue Next.
	f.Add([]byte{3, 0, 0, 0, 0, 5, 0, 6, 3, 0, 2, 3, 6, 3, 1, 2, 3, 6, 3, 2, 5, 2, 5, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := &byteReader{data: data}
		limit := 1 + int(r.next()%8)
		q, err := music.NewQueue(limit)
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, q: q, max: limit, where: map[string]string{}}
		for step := 0; !r.done() && step < 200; step++ {
			h.step = step
			h.apply(r)
			h.check()
		}
	})
}

type byteReader struct {
	data []byte
	i    int
}

func (r *byteReader) done() bool { return r.i >= len(r.data) }

func (r *byteReader) next() byte {
	if r.done() {
		return 0
	}
	b := r.data[r.i]
	r.i++
	return b
}

type harness struct {
	t     *testing.T
	q     *music.Queue
	max   int
	step  int
	op    string
	model []string // expected queue order
	cur   string   // playing track, "" for none
	// where maps each track ever added to "queue", "current" or "gone".
	where  map[string]string
	nextID int
}

func (h *harness) fresh() music.Track {
	h.nextID++
	return tr(fmt.Sprintf("t%d", h.nextID))
}

func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("step %d (%s): %s", h.step, h.op, fmt.Sprintf(format, args...))
}

func (h *harness) wantErr(err, want error) {
	h.t.Helper()
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		h.fatalf("error = %v, want %v", err, want)
	}
}

func (h *harness) current() *music.Track {
	if h.cur == "" {
		return nil
	}
	return ptr(tr(h.cur))
}

func (h *harness) setCurrent(id string) {
	if h.cur != "" && h.where[h.cur] == "current" {
		h.where[h.cur] = "gone"
	}
	h.cur = id
	if id != "" {
		h.where[id] = "current"
	}
}

func (h *harness) insert(at int, ts []music.Track, n int) {
	var added []string
	for _, t := range ts[:n] {
		added = append(added, t.Identifier)
		h.where[t.Identifier] = "queue"
	}
	h.model = slices.Insert(h.model, at, added...)
}

func (h *harness) apply(r *byteReader) {
	switch op := r.next() % 11; op {
	case 0, 1:
		t := h.fresh()
		full := len(h.model) == h.max
		var err error
		if op == 0 {
			h.op, err = "append", h.q.Append(t)
		} else {
			h.op, err = "insertNext", h.q.InsertNext(t)
		}
		if full {
			h.wantErr(err, music.ErrQueueFull)
			return
		}
		h.wantErr(err, nil)
		h.insert(map[bool]int{true: len(h.model), false: 0}[op == 0], []music.Track{t}, 1)
	case 2, 3:
		k := int(r.next() % 8)
		ts := make([]music.Track, k)
		for i := range ts {
			ts[i] = h.fresh()
		}
		fit := min(k, h.max-len(h.model))
		var n int
		var err error
		at := len(h.model)
		if op == 2 {
			h.op = fmt.Sprintf("appendAll %d", k)
			n, err = h.q.AppendAll(ts)
		} else {
			h.op, at = fmt.Sprintf("insertNextAll %d", k), 0
			n, err = h.q.InsertNextAll(ts)
		}
		if n != fit {
			h.fatalf("added %d, want %d", n, fit)
		}
		if fit < k {
			h.wantErr(err, music.ErrQueueFull)
		} else {
			h.wantErr(err, nil)
		}
		h.insert(at, ts, n)
	case 4:
		h.op = "pop"
		got, ok := h.q.Pop()
		h.expectTrack(got, ok, h.popModel())
		if ok {
			h.where[got.Identifier] = "gone"
		}
	case 5:
		loop := music.LoopMode(r.next() % 3)
		h.op = "next " + loop.String()
		got, ok := h.q.Next(h.current(), loop)
		want := h.cur
		if h.cur == "" || loop != music.LoopTrack {
			if h.cur != "" && loop == music.LoopQueue {
				h.model = append(h.model, h.cur)
				h.where[h.cur] = "queue"
			}
			want = h.popModel()
		}
		h.expectTrack(got, ok, want)
		h.setCurrent(want)
	case 6:
		n := int(int8(r.next()))
		loop := music.LoopMode(r.next() % 3)
		h.op = fmt.Sprintf("skip %d %s", n, loop)
		got, ok, err := h.q.Skip(h.current(), n, loop)
		if n < 1 || n > max(len(h.model), 1) {
			h.wantErr(err, music.ErrSkipCount)
			return
		}
		h.wantErr(err, nil)
		skipped := slices.Clone(h.model[:n-1])
		h.model = h.model[n-1:]
		if loop == music.LoopQueue {
			if h.cur != "" {
				h.model = append(h.model, h.cur)
				h.where[h.cur] = "queue"
			}
			h.model = append(h.model, skipped...)
		} else {
			for _, id := range skipped {
				h.where[id] = "gone"
			}
		}
		want := h.popModel()
		h.expectTrack(got, ok, want)
		h.setCurrent(want)
	case 7:
		pos := int(int8(r.next()))
		h.op = fmt.Sprintf("remove %d", pos)
		got, err := h.q.Remove(pos)
		if pos < 1 || pos > len(h.model) {
			h.wantErr(err, music.ErrPosition)
			return
		}
		h.wantErr(err, nil)
		want := h.model[pos-1]
		h.model = slices.Delete(h.model, pos-1, pos)
		h.expectTrack(got, true, want)
		h.where[want] = "gone"
	case 8:
		from, to := int(int8(r.next())), int(int8(r.next()))
		h.op = fmt.Sprintf("move %d %d", from, to)
		got, err := h.q.Move(from, to)
		if from < 1 || from > len(h.model) || to < 1 || to > len(h.model) {
			h.wantErr(err, music.ErrPosition)
			return
		}
		h.wantErr(err, nil)
		want := h.model[from-1]
		h.model = slices.Insert(slices.Delete(h.model, from-1, from), to-1, want)
		h.expectTrack(got, true, want)
	case 9:
		seed := uint64(r.next())<<8 | uint64(r.next())
		h.op = "shuffle"
		h.q.Shuffle(rand.New(rand.NewPCG(seed, seed)).IntN)
		got := strings.Fields(ids(h.q.Tracks()))
		a, b := slices.Clone(got), slices.Clone(h.model)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			h.fatalf("shuffle is not a permutation: %v from %v", got, h.model)
		}
		h.model = got
	case 10:
		h.op = "clear"
		if n := h.q.Clear(); n != len(h.model) {
			h.fatalf("Clear() = %d, want %d", n, len(h.model))
		}
		for _, id := range h.model {
			h.where[id] = "gone"
		}
		h.model = nil
	}
}

func (h *harness) popModel() string {
	if len(h.model) == 0 {
		return ""
	}
	id := h.model[0]
	h.model = h.model[1:]
	return id
}

func (h *harness) expectTrack(got music.Track, ok bool, want string) {
	h.t.Helper()
	if ok != (want != "") || got.Identifier != want {
		h.fatalf("got %q (ok %v), want %q", got.Identifier, ok, want)
	}
}

func (h *harness) check() {
	h.t.Helper()
	if h.q.Len() > h.max || h.q.Len() != len(h.model) {
		h.fatalf("Len %d, model %d, max %d", h.q.Len(), len(h.model), h.max)
	}
	got := strings.Fields(ids(h.q.Tracks()))
	if !slices.Equal(got, h.model) {
		h.fatalf("queue %v, model %v", got, h.model)
	}
	// Conservation: count each track's occurrences across queue, current
	// and gone; every added track must appear exactly once.
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
		if h.where[id] != "queue" {
			h.fatalf("track %s is in the queue but recorded as %q", id, h.where[id])
		}
	}
	if h.cur != "" {
		seen[h.cur]++
	}
	for id, w := range h.where {
		if w == "gone" {
			seen[id]++
		}
	}
	for id := range h.where {
		if seen[id] != 1 {
			h.fatalf("track %s accounted for %d times", id, seen[id])
		}
	}
	for id := range seen {
		if _, ok := h.where[id]; !ok {
			h.fatalf("track %s appeared without being added", id)
		}
	}
}
