package guild

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// fakeSearch answers searches with n tracks per query, or fails those it
// is told to; it records what was searched.
type fakeSearch struct {
	mu       sync.Mutex
	searched []string
	fail     map[string]bool
}

func (f *fakeSearch) Load(_ context.Context, id string) (audio.Loaded, error) {
	f.mu.Lock()
	f.searched = append(f.searched, id)
	f.mu.Unlock()
	if f.fail[id] {
		return audio.Loaded{}, errors.New("lavalink: 500")
	}
	var l audio.Loaded
	l.Search = true
	for i := range 12 {
		t := music.Track{Title: fmt.Sprintf("Song %d", i), URI: fmt.Sprintf("https://example.test/%d", i)}
		switch i {
		case 0:
			t.Author = "Artist"
		case 1:
			t.URI = "" // a source without URIs: the typed text is the value
		}
		l.Tracks = append(l.Tracks, t)
	}
	return l, nil
}

func (f *fakeSearch) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.searched...)
}

// TestAutocomplete: /play suggestions are at most ten search results, named
// "author - title", valued by URI (or the typed text), answered within
// Discord's 3 s of the arrival; no search runs for what is not a search
// (a URL) and a failed search answers no choices rather than nothing.
func TestAutocomplete(t *testing.T) {
	search := &fakeSearch{fail: map[string]bool{"ytsearch:broken": true}}
	h := newHarness(t, func(d *Deps) { d.Search = search }, nil)
	focused := func(v string) *clusterpb.Option { return &clusterpb.Option{Name: "query", Value: v, Focused: true} }
	answer := func(typed string) call {
		t.Helper()
		id := h.send(listener, clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE, "play", focused(typed))
		calls := h.replier.wait(t, "the autocomplete answer", func(cs []call) bool {
			for _, c := range cs {
				if c.token == tokenOf(id) {
					return true
				}
			}
			return false
		})
		for _, c := range calls {
			if c.token == tokenOf(id) {
				if c.kind != "autocomplete" {
					t.Fatalf("%q answered with %s", typed, c.kind)
				}
				if c.deadline.IsZero() || c.deadline.After(h.clock.Now().Add(ackWithin)) {
					t.Errorf("%q answered under deadline %v; want within %v of the arrival", typed, c.deadline, ackWithin)
				}
				return c
			}
		}
		panic("unreachable")
	}

	c := answer("lofi")
	if len(c.choices) != 10 {
		t.Fatalf("%d choices; want the first 10 results", len(c.choices))
	}
	if got := c.choices[0]; got.GetName() != "Artist - Song 0" || got.GetValue() != "https://example.test/0" {
		t.Errorf("first choice %v; want \"Artist - Song 0\" valued by its URI", got)
	}
	if got := c.choices[1]; got.GetName() != "Song 1" || got.GetValue() != "lofi" {
		t.Errorf("second choice %v; want its title, valued by the typed text", got)
	}
	if c := answer("broken"); len(c.choices) != 0 {
		t.Errorf("failed search: %d choices; want none", len(c.choices))
	}
	if c := answer("https://example.test/song.mp3"); len(c.choices) != 0 {
		t.Errorf("URL: %d choices; want none", len(c.choices))
	}
	want := []string{"ytsearch:lofi", "ytsearch:broken"}
	if got := search.queries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("searched %v; want %v (no search for a URL)", got, want)
	}
}
