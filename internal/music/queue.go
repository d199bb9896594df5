package music

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"time"
)

var (
	// ErrQueueFull reports that a track did not fit under the queue's limit.
	ErrQueueFull = errors.New("the queue is full")
	// ErrPosition reports a 1-based queue position outside 1..Len.
	ErrPosition = errors.New("position out of range")
	// ErrSkipCount reports a /skip count outside what the queue allows.
	ErrSkipCount = errors.New("skip count out of range")
	// ErrPage reports a /queue page that does not exist.
	ErrPage = errors.New("page out of range")
	// ErrQueueLimit reports a queue limit below 1 (a configuration error).
	ErrQueueLimit = errors.New("queue limit must be at least 1")
)

// Queue holds a session's upcoming tracks, position 1 first, never more than
// its limit. The playing track is not part of it: callers pass it to Next and
// Skip, so that loop semantics live here and not in the session actor.
//
// A Queue is not safe for concurrent use; its owner is a single actor.
// Use NewQueue or RestoreQueue: the zero Queue has a limit of 0 and is full.
type Queue struct {
	tracks []Track
	max    int
	rev    uint64
}

// NewQueue returns an empty queue that holds at most limit tracks.
func NewQueue(limit int) (*Queue, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w (got %d)", ErrQueueLimit, limit)
	}
	return &Queue{max: limit}, nil
}

// RestoreQueue rebuilds a queue from a snapshot taken with Tracks. It refuses
// a snapshot longer than limit rather than dropping tracks silently; a caller
// whose configured limit shrank can pass max(limit, len(tracks)) to keep
// every queued track.
func RestoreQueue(limit int, tracks []Track) (*Queue, error) {
	q, err := NewQueue(limit)
	if err != nil {
		return nil, err
	}
	if len(tracks) > limit {
		return nil, fmt.Errorf("%w: the snapshot has %d tracks, the limit is %d", ErrQueueFull, len(tracks), limit)
	}
	for i, t := range tracks {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("position %d: %w", i+1, err)
		}
	}
	q.tracks = slices.Clone(tracks)
	return q, nil
}

// Rev counts the changes made to q: while it stays the same, so do q's
// tracks. A session compares it to tell whether its view changed.
func (q *Queue) Rev() uint64 { return q.rev }

// Len is the number of upcoming tracks.
func (q *Queue) Len() int { return len(q.tracks) }

// Max is the queue's limit.
func (q *Queue) Max() int { return q.max }

// Remaining is how many more tracks fit.
func (q *Queue) Remaining() int { return max(q.max-len(q.tracks), 0) }

// Tracks returns a copy of the upcoming tracks, position 1 first. It is never
// nil, so a snapshot of an empty queue encodes as an empty list.
func (q *Queue) Tracks() []Track {
	out := make([]Track, len(q.tracks))
	copy(out, q.tracks)
	return out
}

// All yields the tracks in order, position 1 first, without copying
// them; q must not change meanwhile.
func (q *Queue) All() iter.Seq[Track] {
	return func(yield func(Track) bool) {
		for _, t := range q.tracks {
			if !yield(t) {
				return
			}
		}
	}
}

// Append adds t at the end.
func (q *Queue) Append(t Track) error {
	_, err := q.insertAll(len(q.tracks), []Track{t})
	return err
}

// InsertNext adds t at position 1 (/play next).
func (q *Queue) InsertNext(t Track) error {
	_, err := q.insertAll(0, []Track{t})
	return err
}

// AppendAll adds a playlist at the end. When it does not all fit, the first
// tracks that fit are added and ErrQueueFull is returned with the count added:
// users expect a 500-track playlist to fill the queue up to the limit, not to
// be refused. If any track is invalid nothing is added.
func (q *Queue) AppendAll(ts []Track) (int, error) {
	return q.insertAll(len(q.tracks), ts)
}

// InsertNextAll adds a playlist at position 1 onwards, keeping its order, with
// the same truncation rule as AppendAll.
func (q *Queue) InsertNextAll(ts []Track) (int, error) {
	return q.insertAll(0, ts)
}

func (q *Queue) insertAll(at int, ts []Track) (int, error) {
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			return 0, err
		}
	}
	n := min(len(ts), q.Remaining())
	q.tracks = slices.Insert(q.tracks, at, ts[:n]...)
	q.rev++
	if n < len(ts) {
		return n, fmt.Errorf("%w: it holds at most %d tracks, %d of %d added", ErrQueueFull, q.max, n, len(ts))
	}
	return n, nil
}

// Peek returns the track at position 1 without removing it; ok is false when
// the queue is empty. /nowplaying shows it without copying the queue.
func (q *Queue) Peek() (t Track, ok bool) {
	if len(q.tracks) == 0 {
		return Track{}, false
	}
	return q.tracks[0], true
}

// Pop removes and returns the track at position 1; ok is false when the queue
// is empty.
func (q *Queue) Pop() (t Track, ok bool) {
	if len(q.tracks) == 0 {
		return Track{}, false
	}
	t = q.tracks[0]
	q.tracks = slices.Delete(q.tracks, 0, 1)
	q.rev++
	return t, true
}

// Next decides what plays after current ends by itself. current is nil when
// nothing was playing.
//
//   - LoopOff: pop position 1; ok is false when the queue is empty.
//   - LoopTrack: current again; the queue is unchanged.
//   - LoopQueue: current goes to the end, then position 1 is popped, so a
//     one-track queue (or an empty queue with a current track) repeats.
//
// An unknown mode behaves as LoopOff. Next never grows the queue beyond its
// limit: under LoopQueue one track leaves for each that joins.
func (q *Queue) Next(current *Track, loop LoopMode) (t Track, ok bool) {
	if current != nil {
		switch loop {
		case LoopTrack:
			return *current, true
		case LoopQueue:
			q.tracks = append(q.tracks, *current)
			q.rev++
		}
	}
	return q.Pop()
}

// Skip implements /skip n: the current track and the n-1 tracks after it are
// skipped and position n plays. n must be in 1..Len, or exactly 1 when the
// queue is empty (which skips the current track and leaves nothing to play).
//
// Skipping is an explicit request to move on, so LoopTrack does not repeat the
// current track: it behaves as LoopOff here (the loop mode stays on and applies
// to the new track). Under LoopQueue nothing is lost: the current track and the
// skipped ones move to the end in play order, as if they had played.
func (q *Queue) Skip(current *Track, n int, loop LoopMode) (t Track, ok bool, err error) {
	if limit := max(len(q.tracks), 1); n < 1 || n > limit {
		if len(q.tracks) == 0 {
			return Track{}, false, fmt.Errorf("%w: the queue is empty, so you can only skip 1", ErrSkipCount)
		}
		return Track{}, false, fmt.Errorf("%w: you can skip 1 to %d tracks, not %d", ErrSkipCount, limit, n)
	}
	skipped := q.tracks[:n-1]
	if loop == LoopQueue {
		rest := make([]Track, 0, len(q.tracks)+1)
		rest = append(rest, q.tracks[n-1:]...)
		if current != nil {
			rest = append(rest, *current)
		}
		q.tracks = append(rest, skipped...)
	} else {
		q.tracks = slices.Delete(q.tracks, 0, len(skipped))
	}
	q.rev++
	t, ok = q.Pop()
	return t, ok, nil
}

// Remove removes and returns the track at pos.
func (q *Queue) Remove(pos int) (Track, error) {
	if err := q.checkPosition(pos); err != nil {
		return Track{}, err
	}
	t := q.tracks[pos-1]
	q.tracks = slices.Delete(q.tracks, pos-1, pos)
	q.rev++
	return t, nil
}

// Move moves the track at from to position to, shifting the tracks between
// them, and returns it. Moving a track to its own position is allowed and
// changes nothing.
func (q *Queue) Move(from, to int) (Track, error) {
	if err := q.checkPosition(from); err != nil {
		return Track{}, err
	}
	if err := q.checkPosition(to); err != nil {
		return Track{}, err
	}
	t := q.tracks[from-1]
	q.tracks = slices.Insert(slices.Delete(q.tracks, from-1, from), to-1, t)
	q.rev++
	return t, nil
}

// Shuffle permutes the queue uniformly (Fisher–Yates). intn must behave like
// rand.IntN, returning a value in [0, n); pass a seeded (*rand.Rand).IntN for
// reproducible tests.
func (q *Queue) Shuffle(intn func(n int) int) {
	for i := len(q.tracks) - 1; i > 0; i-- {
		j := intn(i + 1)
		q.tracks[i], q.tracks[j] = q.tracks[j], q.tracks[i]
	}
	q.rev++
}

// Clear empties the queue and returns how many tracks it removed.
func (q *Queue) Clear() int {
	n := len(q.tracks)
	clear(q.tracks)
	q.tracks = q.tracks[:0]
	q.rev++
	return n
}

// TotalDuration is the summed length of the upcoming tracks. Streams have no
// length and count as zero; the sum saturates rather than overflows.
func (q *Queue) TotalDuration() time.Duration {
	var total time.Duration
	for _, t := range q.tracks {
		if t.IsStream || t.Length <= 0 {
			continue
		}
		if t.Length > math.MaxInt64-total {
			return math.MaxInt64
		}
		total += t.Length
	}
	return total
}

// QueuePage is one page of /queue.
type QueuePage struct {
	Tracks []Track
	// First is the 1-based queue position of Tracks[0].
	First int
	// Number is this page, 1-based, of Pages. An empty queue has one empty page.
	Number, Pages int
	// Total is the queue length.
	Total int
}

// Page returns page (1-based) of the queue, perPage tracks to a page. An empty
// queue has exactly one, empty, page so that /queue without a page works.
func (q *Queue) Page(page, perPage int) (QueuePage, error) {
	if perPage < 1 {
		return QueuePage{}, fmt.Errorf("%w: %d tracks per page", ErrPage, perPage)
	}
	pages := max((len(q.tracks)+perPage-1)/perPage, 1)
	if page < 1 || page > pages {
		return QueuePage{}, fmt.Errorf("%w: there is no page %d, choose 1 to %d", ErrPage, page, pages)
	}
	start := (page - 1) * perPage
	end := min(start+perPage, len(q.tracks))
	return QueuePage{
		Tracks: slices.Clone(q.tracks[start:end:end]),
		First:  start + 1,
		Number: page,
		Pages:  pages,
		Total:  len(q.tracks),
	}, nil
}

func (q *Queue) checkPosition(pos int) error {
	if len(q.tracks) == 0 {
		return fmt.Errorf("%w: the queue is empty", ErrPosition)
	}
	if pos < 1 || pos > len(q.tracks) {
		return fmt.Errorf("%w: there is no position %d, choose 1 to %d", ErrPosition, pos, len(q.tracks))
	}
	return nil
}
