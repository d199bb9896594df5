package music_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestNewQueue(t *testing.T) {
	for _, limit := range []int{-1, 0} {
		if _, err := music.NewQueue(limit); !errors.Is(err, music.ErrQueueLimit) {
			t.Errorf("NewQueue(%d) error = %v, want ErrQueueLimit", limit, err)
		}
	}
	q, err := music.NewQueue(3)
	if err != nil {
		t.Fatal(err)
	}
	if q.Len() != 0 || q.Max() != 3 || q.Remaining() != 3 {
		t.Fatalf("new queue: Len %d Max %d Remaining %d", q.Len(), q.Max(), q.Remaining())
	}
	if got := q.Tracks(); got == nil || len(got) != 0 {
		t.Fatalf("Tracks() of empty queue = %#v, want empty non-nil", got)
	}
}

func TestRestoreQueue(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		tracks  []music.Track
		wantErr error
	}{
		{"empty", 2, nil, nil},
		{"exactly full", 2, trs("a b"), nil},
		{"over the limit", 2, trs("a b c"), music.ErrQueueFull},
		{"bad limit", 0, nil, music.ErrQueueLimit},
		{"invalid track", 3, []music.Track{tr("a"), {Title: "no encoded"}}, music.ErrInvalidTrack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := music.RestoreQueue(tt.max, tt.tracks)
			checkErr(t, err, tt.wantErr)
			if err == nil && ids(q.Tracks()) != ids(tt.tracks) {
				t.Fatalf("restored %q, want %q", ids(q.Tracks()), ids(tt.tracks))
			}
		})
	}
}

func TestRestoreQueueCopiesAndTracksCopies(t *testing.T) {
	in := trs("a b")
	q, err := music.RestoreQueue(5, in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Identifier = "mutated"
	out := q.Tracks()
	out[1].Identifier = "mutated"
	if got := ids(q.Tracks()); got != "a b" {
		t.Fatalf("queue aliased caller slices: %q", got)
	}
}

func TestAppendInsertNext(t *testing.T) {
	q := queueOf(t, 3, "")
	checkErr(t, q.Append(tr("a")), nil)
	checkErr(t, q.Append(tr("b")), nil)
	checkErr(t, q.InsertNext(tr("n")), nil)
	if got := ids(q.Tracks()); got != "n a b" {
		t.Fatalf("queue = %q, want %q", got, "n a b")
	}
	err := q.Append(tr("x"))
	checkErr(t, err, music.ErrQueueFull)
	if !strings.Contains(err.Error(), "3") {
		t.Errorf("full error %q does not name the limit", err)
	}
	checkErr(t, q.InsertNext(tr("y")), music.ErrQueueFull)
	if got := ids(q.Tracks()); got != "n a b" {
		t.Fatalf("full queue changed to %q", got)
	}
	checkErr(t, queueOf(t, 3, "").Append(music.Track{}), music.ErrInvalidTrack)
	checkErr(t, queueOf(t, 3, "").InsertNext(music.Track{Encoded: "x", Length: -1}), music.ErrInvalidTrack)
}

func TestAppendAll(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		start     string
		add       []music.Track
		next      bool
		wantN     int
		wantErr   error
		wantQueue string
	}{
		{"fits", 5, "a", trs("b c"), false, 2, nil, "a b c"},
		{"fills exactly", 3, "a", trs("b c"), false, 2, nil, "a b c"},
		{"truncated", 3, "a", trs("b c d e"), false, 2, music.ErrQueueFull, "a b c"},
		{"already full", 1, "a", trs("b"), false, 0, music.ErrQueueFull, "a"},
		{"empty playlist", 1, "a", nil, false, 0, nil, "a"},
		{"invalid track adds nothing", 5, "a", []music.Track{tr("b"), {}}, false, 0, music.ErrInvalidTrack, "a"},
		{"next keeps order", 5, "a b", trs("x y"), true, 2, nil, "x y a b"},
		{"next truncated", 4, "a b", trs("x y z"), true, 2, music.ErrQueueFull, "x y a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(t, tt.max, tt.start)
			add := q.AppendAll
			if tt.next {
				add = q.InsertNextAll
			}
			n, err := add(tt.add)
			checkErr(t, err, tt.wantErr)
			if n != tt.wantN {
				t.Errorf("added %d, want %d", n, tt.wantN)
			}
			if got := ids(q.Tracks()); got != tt.wantQueue {
				t.Errorf("queue = %q, want %q", got, tt.wantQueue)
			}
		})
	}
}

func TestPop(t *testing.T) {
	q := queueOf(t, 3, "a b")
	for _, want := range []string{"a", "b"} {
		n := q.Len()
		if got, ok := q.Peek(); !ok || got.Identifier != want || q.Len() != n {
			t.Fatalf("Peek() = %q, %v, leaving %d tracks; want %q, true, leaving %d", got.Identifier, ok, q.Len(), want, n)
		}
		got, ok := q.Pop()
		if !ok || got.Identifier != want {
			t.Fatalf("Pop() = %q, %v; want %q, true", got.Identifier, ok, want)
		}
	}
	if got, ok := q.Pop(); ok || got != (music.Track{}) {
		t.Fatalf("Pop() on empty = %+v, %v; want zero, false", got, ok)
	}
	if got, ok := q.Peek(); ok || got != (music.Track{}) {
		t.Fatalf("Peek() on empty = %+v, %v; want zero, false", got, ok)
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name      string
		queue     string
		current   string // "" for nothing playing
		loop      music.LoopMode
		want      string // "" for nothing to play
		wantQueue string
	}{
		{"off pops head", "a b", "c", music.LoopOff, "a", "b"},
		{"off at end", "", "c", music.LoopOff, "", ""},
		{"off nothing playing", "a", "", music.LoopOff, "a", ""},
		{"off empty nothing playing", "", "", music.LoopOff, "", ""},
		{"track repeats", "a b", "c", music.LoopTrack, "c", "a b"},
		{"track at end repeats", "", "c", music.LoopTrack, "c", ""},
		{"track nothing playing pops", "a", "", music.LoopTrack, "a", ""},
		{"queue rotates", "a b", "c", music.LoopQueue, "a", "b c"},
		{"queue one track repeats", "", "c", music.LoopQueue, "c", ""},
		{"queue two tracks alternate", "a", "c", music.LoopQueue, "a", "c"},
		{"queue nothing playing", "a b", "", music.LoopQueue, "a", "b"},
		{"queue empty nothing playing", "", "", music.LoopQueue, "", ""},
		{"unknown mode is off", "a", "c", music.LoopMode(9), "a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(t, 2, tt.queue)
			var cur *music.Track
			if tt.current != "" {
				cur = ptr(tr(tt.current))
			}
			got, ok := q.Next(cur, tt.loop)
			if ok != (tt.want != "") || got.Identifier != tt.want {
				t.Fatalf("Next = %q, %v; want %q", got.Identifier, ok, tt.want)
			}
			if g := ids(q.Tracks()); g != tt.wantQueue {
				t.Fatalf("queue = %q, want %q", g, tt.wantQueue)
			}
			if q.Len() > q.Max() {
				t.Fatalf("Len %d over Max %d", q.Len(), q.Max())
			}
		})
	}
}

func TestNextLoopQueueCycles(t *testing.T) {
	q := queueOf(t, 3, "b c")
	cur := tr("a")
	var played []string
	for range 7 {
		next, ok := q.Next(&cur, music.LoopQueue)
		if !ok {
			t.Fatal("loop queue ran dry")
		}
		cur = next
		played = append(played, cur.Identifier)
	}
	if got := strings.Join(played, " "); got != "b c a b c a b" {
		t.Fatalf("played %q", got)
	}
}

func TestSkip(t *testing.T) {
	tests := []struct {
		name      string
		queue     string
		current   string
		n         int
		loop      music.LoopMode
		want      string
		wantErr   error
		wantQueue string
	}{
		{"one", "a b c", "x", 1, music.LoopOff, "a", nil, "b c"},
		{"two drops one", "a b c", "x", 2, music.LoopOff, "b", nil, "c"},
		{"to last", "a b c", "x", 3, music.LoopOff, "c", nil, ""},
		{"past end", "a b c", "x", 4, music.LoopOff, "", music.ErrSkipCount, "a b c"},
		{"zero", "a b c", "x", 0, music.LoopOff, "", music.ErrSkipCount, "a b c"},
		{"negative", "a b c", "x", -1, music.LoopOff, "", music.ErrSkipCount, "a b c"},
		{"empty skip one stops", "", "x", 1, music.LoopOff, "", nil, ""},
		{"empty skip two", "", "x", 2, music.LoopOff, "", music.ErrSkipCount, ""},
		{"nothing playing", "a b", "", 1, music.LoopOff, "a", nil, "b"},
		{"loop track advances", "a b", "x", 1, music.LoopTrack, "a", nil, "b"},
		{"loop track empty stops", "", "x", 1, music.LoopTrack, "", nil, ""},
		{"loop queue rotates current", "a b c", "x", 1, music.LoopQueue, "a", nil, "b c x"},
		{"loop queue rotates skipped in order", "a b c", "x", 3, music.LoopQueue, "c", nil, "x a b"},
		{"loop queue single replays", "", "x", 1, music.LoopQueue, "x", nil, ""},
		{"loop queue nothing playing", "a b c", "", 2, music.LoopQueue, "b", nil, "c a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(t, 3, tt.queue)
			var cur *music.Track
			if tt.current != "" {
				cur = ptr(tr(tt.current))
			}
			got, ok, err := q.Skip(cur, tt.n, tt.loop)
			checkErr(t, err, tt.wantErr)
			if ok != (tt.want != "") || got.Identifier != tt.want {
				t.Fatalf("Skip = %q, %v; want %q", got.Identifier, ok, tt.want)
			}
			if g := ids(q.Tracks()); g != tt.wantQueue {
				t.Fatalf("queue = %q, want %q", g, tt.wantQueue)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name      string
		queue     string
		pos       int
		want      string
		wantErr   error
		wantQueue string
	}{
		{"first", "a b c", 1, "a", nil, "b c"},
		{"middle", "a b c", 2, "b", nil, "a c"},
		{"last", "a b c", 3, "c", nil, "a b"},
		{"zero", "a b c", 0, "", music.ErrPosition, "a b c"},
		{"negative", "a b c", -1, "", music.ErrPosition, "a b c"},
		{"len+1", "a b c", 4, "", music.ErrPosition, "a b c"},
		{"huge", "a b c", math.MaxInt, "", music.ErrPosition, "a b c"},
		{"empty", "", 1, "", music.ErrPosition, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(t, 5, tt.queue)
			got, err := q.Remove(tt.pos)
			checkErr(t, err, tt.wantErr)
			if got.Identifier != tt.want {
				t.Fatalf("Remove = %q, want %q", got.Identifier, tt.want)
			}
			if g := ids(q.Tracks()); g != tt.wantQueue {
				t.Fatalf("queue = %q, want %q", g, tt.wantQueue)
			}
		})
	}
}

func TestPositionErrorNamesRange(t *testing.T) {
	_, err := queueOf(t, 5, "a b c").Remove(7)
	if err == nil || !strings.Contains(err.Error(), "7") || !strings.Contains(err.Error(), "1 to 3") {
		t.Fatalf("error %q should name position 7 and range 1 to 3", err)
	}
	_, err = queueOf(t, 5, "").Remove(1)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("error %q should say the queue is empty", err)
	}
}

func TestMove(t *testing.T) {
	tests := []struct {
		name      string
		queue     string
		from, to  int
		want      string
		wantErr   error
		wantQueue string
	}{
		{"forward", "a b c d", 1, 3, "a", nil, "b c a d"},
		{"backward", "a b c d", 4, 1, "d", nil, "d a b c"},
		{"to end", "a b c d", 2, 4, "b", nil, "a c d b"},
		{"same position", "a b c d", 2, 2, "b", nil, "a b c d"},
		{"from zero", "a b c", 0, 1, "", music.ErrPosition, "a b c"},
		{"to zero", "a b c", 1, 0, "", music.ErrPosition, "a b c"},
		{"from len+1", "a b c", 4, 1, "", music.ErrPosition, "a b c"},
		{"to len+1", "a b c", 1, 4, "", music.ErrPosition, "a b c"},
		{"negative", "a b c", -2, 1, "", music.ErrPosition, "a b c"},
		{"empty", "", 1, 1, "", music.ErrPosition, ""},
		{"single same", "a", 1, 1, "a", nil, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(t, 5, tt.queue)
			got, err := q.Move(tt.from, tt.to)
			checkErr(t, err, tt.wantErr)
			if got.Identifier != tt.want {
				t.Fatalf("Move = %q, want %q", got.Identifier, tt.want)
			}
			if g := ids(q.Tracks()); g != tt.wantQueue {
				t.Fatalf("queue = %q, want %q", g, tt.wantQueue)
			}
		})
	}
}

func TestShuffle(t *testing.T) {
	t.Run("empty and single", func(t *testing.T) {
		for _, start := range []string{"", "a"} {
			q := queueOf(t, 5, start)
			q.Shuffle(func(int) int { t.Fatal("source called for < 2 tracks"); return 0 })
			if g := ids(q.Tracks()); g != start {
				t.Fatalf("queue = %q, want %q", g, start)
			}
		}
	})
	t.Run("deterministic with a seeded source", func(t *testing.T) {
		shuffled := func() string {
			q := queueOf(t, 10, "a b c d e f g h")
			q.Shuffle(rand.New(rand.NewPCG(1, 2)).IntN)
			return ids(q.Tracks())
		}
		first := shuffled()
		if second := shuffled(); first != second {
			t.Fatalf("same seed gave %q then %q", first, second)
		}
		if first == "a b c d e f g h" {
			t.Fatalf("shuffle left the order unchanged")
		}
	})
	t.Run("is a permutation", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for range 50 {
			q := queueOf(t, 10, "a b c d e f g")
			q.Shuffle(rng.IntN)
			got := strings.Fields(ids(q.Tracks()))
			slices.Sort(got)
			if strings.Join(got, " ") != "a b c d e f g" {
				t.Fatalf("not a permutation: %v", got)
			}
		}
	})
	t.Run("every order reachable", func(t *testing.T) {
		// Fisher–Yates with a fair source gives each of the 6 orders of 3
		// tracks; an off-by-one (intn(i) instead of intn(i+1)) would give 2.
		seen := map[string]int{}
		rng := rand.New(rand.NewPCG(5, 6))
		for range 600 {
			q := queueOf(t, 3, "a b c")
			q.Shuffle(rng.IntN)
			seen[ids(q.Tracks())]++
		}
		if len(seen) != 6 {
			t.Fatalf("saw %d orders, want 6: %v", len(seen), seen)
		}
		for order, n := range seen {
			if n < 50 {
				t.Errorf("order %q seen only %d/600 times", order, n)
			}
		}
	})
}

func TestClear(t *testing.T) {
	q := queueOf(t, 3, "a b c")
	if n := q.Clear(); n != 3 {
		t.Fatalf("Clear() = %d, want 3", n)
	}
	if q.Len() != 0 || q.Remaining() != 3 {
		t.Fatalf("after Clear: Len %d Remaining %d", q.Len(), q.Remaining())
	}
	if n := q.Clear(); n != 0 {
		t.Fatalf("Clear() of empty = %d", n)
	}
	checkErr(t, q.Append(tr("d")), nil)
	if g := ids(q.Tracks()); g != "d" {
		t.Fatalf("queue after clear+append = %q", g)
	}
}

func TestTotalDuration(t *testing.T) {
	stream := tr("s")
	stream.IsStream = true
	stream.Length = math.MaxInt64
	long := tr("l")
	long.Length = math.MaxInt64 - 1
	tests := []struct {
		name   string
		tracks []music.Track
		want   time.Duration
	}{
		{"empty", nil, 0},
		{"sum", trs("a b c"), 3 * time.Minute},
		{"streams count zero", []music.Track{tr("a"), stream}, time.Minute},
		{"saturates", []music.Track{long, tr("a")}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := music.RestoreQueue(5, tt.tracks)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.TotalDuration(); got != tt.want {
				t.Fatalf("TotalDuration = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPage(t *testing.T) {
	tests := []struct {
		name       string
		queue      string
		page, per  int
		wantErr    error
		wantTracks string
		wantFirst  int
		wantPages  int
	}{
		{"empty queue page 1", "", 1, 10, nil, "", 1, 1},
		{"empty queue page 2", "", 2, 10, music.ErrPage, "", 0, 0},
		{"first page", "a b c d e", 1, 2, nil, "a b", 1, 3},
		{"middle page", "a b c d e", 2, 2, nil, "c d", 3, 3},
		{"partial last page", "a b c d e", 3, 2, nil, "e", 5, 3},
		{"beyond last", "a b c d e", 4, 2, music.ErrPage, "", 0, 0},
		{"exact pages", "a b c d", 2, 2, nil, "c d", 3, 2},
		{"page zero", "a b", 0, 2, music.ErrPage, "", 0, 0},
		{"negative page", "a b", -1, 2, music.ErrPage, "", 0, 0},
		{"zero per page", "a b", 1, 0, music.ErrPage, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(t, 10, tt.queue)
			p, err := q.Page(tt.page, tt.per)
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if ids(p.Tracks) != tt.wantTracks || p.First != tt.wantFirst || p.Pages != tt.wantPages ||
				p.Number != tt.page || p.Total != q.Len() {
				t.Fatalf("Page = %+v (tracks %q)", p, ids(p.Tracks))
			}
		})
	}
}

func TestPageDoesNotAlias(t *testing.T) {
	q := queueOf(t, 10, "a b c")
	p, err := q.Page(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	p.Tracks[0].Identifier = "mutated"
	_ = append(p.Tracks, tr("z"))
	if g := ids(q.Tracks()); g != "a b c" {
		t.Fatalf("page aliased the queue: %q", g)
	}
}

func TestZeroQueueIsFull(t *testing.T) {
	var q music.Queue
	checkErr(t, q.Append(tr("a")), music.ErrQueueFull)
	if _, ok := q.Pop(); ok {
		t.Fatal("zero queue popped a track")
	}
}

// TestRevCountsChanges: a session tells from Rev whether its view of the
// queue changed, so every change must move it and no read may.
func TestRevCountsChanges(t *testing.T) {
	cur := tr("c")
	changes := []struct {
		name string
		do   func(q *music.Queue)
	}{
		{"Append", func(q *music.Queue) { checkErr(t, q.Append(tr("x")), nil) }},
		{"InsertNext", func(q *music.Queue) { checkErr(t, q.InsertNext(tr("y")), nil) }},
		{"AppendAll", func(q *music.Queue) { _, _ = q.AppendAll(trs("p q")) }},
		{"InsertNextAll", func(q *music.Queue) { _, _ = q.InsertNextAll(trs("r")) }},
		{"Pop", func(q *music.Queue) { q.Pop() }},
		{"Next", func(q *music.Queue) { q.Next(nil, music.LoopOff) }},
		{"Next under LoopQueue", func(q *music.Queue) { q.Next(&cur, music.LoopQueue) }},
		{"Skip", func(q *music.Queue) { _, _, _ = q.Skip(&cur, 2, music.LoopOff) }},
		{"Skip under LoopQueue", func(q *music.Queue) { _, _, _ = q.Skip(&cur, 2, music.LoopQueue) }},
		{"Remove", func(q *music.Queue) { _, _ = q.Remove(1) }},
		{"Move", func(q *music.Queue) { _, _ = q.Move(1, 2) }},
		{"Shuffle", func(q *music.Queue) { q.Shuffle(func(n int) int { return 0 }) }},
		{"Clear", func(q *music.Queue) { q.Clear() }},
	}
	for _, c := range changes {
		q := queueOf(t, 20, "a b c d")
		before := q.Rev()
		c.do(q)
		if q.Rev() == before {
			t.Errorf("%s: Rev stayed %d", c.name, before)
		}
	}
	q := queueOf(t, 20, "a b c d")
	before := q.Rev()
	q.Peek()
	q.Tracks()
	_, _ = q.Page(1, 2)
	q.Next(&cur, music.LoopTrack) // repeats the track, leaves the queue
	if _, _, err := q.Skip(&cur, 9, music.LoopOff); err == nil {
		t.Fatal("Skip past the end succeeded")
	}
	if q.Rev() != before {
		t.Fatalf("reads moved Rev from %d to %d", before, q.Rev())
	}
}
