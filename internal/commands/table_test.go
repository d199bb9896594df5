package commands

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// TestCommandTable checks the table's own consistency; the guild and
// session packages check their handlers against it.
func TestCommandTable(t *testing.T) {
	names, buttons := map[Name]bool{}, map[string]bool{}
	for _, c := range Table() {
		if names[c.Name] {
			t.Errorf("%s declared twice", c.Name)
		}
		names[c.Name] = true
		if err := music.Authorize(music.Member{}, music.DefaultSettings(), c.Action); errors.Is(err, music.ErrUnknownAction) {
			t.Errorf("%s: action %v is not one music.Authorize knows", c.Name, c.Action)
		}
		if c.Where != InSession && c.Where != InGuild {
			t.Errorf("%s runs nowhere (Where %d)", c.Name, c.Where)
		}
		if c.IdleAnswer && c.Where != InSession {
			t.Errorf("%s: only a session command can be answered for an idle session", c.Name)
		}
		// The guild defers when it hands a command to the session; it
		// never does for its own.
		if c.DeferAtOnce && c.Where != InSession {
			t.Errorf("%s: only a session command can be deferred at once", c.Name)
		}
		// Refusals name the command by its rule's name.
		if c.Slash() && c.Action.String() != string(c.Name) {
			t.Errorf("/%s is refused as /%s", c.Name, c.Action)
		}
		if !c.Slash() && c.Button == "" {
			t.Errorf("%s is neither a slash command nor a button's: nothing can run it", c.Name)
		}
		if c.Button != "" {
			if buttons[c.Button] {
				t.Errorf("button %s runs two commands", c.Button)
			}
			buttons[c.Button] = true
		}
	}
	for _, b := range []string{ButtonPauseResume, ButtonSkip, ButtonStop, ButtonLoop, ButtonShuffle, ButtonAutoplay} {
		if !buttons[b] {
			t.Errorf("button %s runs no command", b)
		}
	}
}

// TestCommandWireFormat pins what crosses the cluster and Discord: the
// command names sessions of other versions read, and the command each
// button of an already-posted message runs.
func TestCommandWireFormat(t *testing.T) {
	want := map[Name]string{
		"play": "", "pause": "", "resume": "", "skip": "skip", "stop": "stop", "queue": "", "nowplaying": "",
		"volume": "", "loop": "", "shuffle": "shuffle", "remove": "", "move": "", "seek": "", "clear": "",
		"autoplay": "", "leave": "", "settings": "",
		"pause_resume": "pause_resume", "loop_cycle": "loop", "autoplay_toggle": "autoplay",
	}
	got := map[Name]string{}
	for _, c := range Table() {
		got[c.Name] = c.Button
	}
	if len(got) != len(want) {
		t.Errorf("%d commands, want %d", len(got), len(want))
	}
	for name, button := range want {
		if b, ok := got[name]; !ok || b != button {
			t.Errorf("%s: button %q (declared %v), want %q", name, b, ok, button)
		}
	}
}

// TestQueueAnswer: pages of QueuePageSize, and the parser's and the
// queue's refusals as errors.
func TestQueueAnswer(t *testing.T) {
	q, _ := music.NewQueue(100)
	for i := range 25 {
		if err := q.Append(music.Track{Encoded: "QAAA", Identifier: fmt.Sprint("t", i), Title: fmt.Sprint("Track ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	page := func(v string) []*clusterpb.Option { return []*clusterpb.Option{{Name: optPage, Value: v}} }
	for _, tc := range []struct {
		name string
		opts []*clusterpb.Option
		want string
	}{
		{"first page", nil, "Page 1 of 3 · 25 tracks"},
		{"last page", page("3"), "Page 3 of 3 · 25 tracks"},
		{"no such page", page("4"), "no page 4"},
		{"not a number", page("x"), "whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := QueueAnswer(q, nil, tc.opts)
			text := r.GetContent()
			if len(r.GetEmbeds()) > 0 {
				text += r.GetEmbeds()[0].GetFooter()
			}
			if !strings.Contains(text, tc.want) {
				t.Fatalf("%q, want %q", text, tc.want)
			}
		})
	}
}
