package music_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/music"
)

// tr is a valid track whose identity is id.
func tr(id string) music.Track {
	return music.Track{Encoded: "enc-" + id, Identifier: id, Title: id, Length: time.Minute}
}

// trs builds tracks from a space-separated list of ids.
func trs(ids string) []music.Track {
	var out []music.Track
	for _, id := range strings.Fields(ids) {
		out = append(out, tr(id))
	}
	return out
}

func ids(ts []music.Track) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.Identifier
	}
	return strings.Join(s, " ")
}

// queueOf builds a queue with the given limit holding the given ids.
func queueOf(t testing.TB, limit int, idList string) *music.Queue {
	t.Helper()
	q, err := music.RestoreQueue(limit, trs(idList))
	if err != nil {
		t.Fatalf("RestoreQueue(%d, %q): %v", limit, idList, err)
	}
	return q
}

func ptr(t music.Track) *music.Track { return &t }

func checkErr(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}
