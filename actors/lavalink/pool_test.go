package lavalink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/audio"
)

func TestScore(t *testing.T) {
	tests := []struct {
		name        string
		a, b        Load
		aBetterThan bool
	}{
		{"fewer players", Load{PlayingPlayers: 3}, Load{PlayingPlayers: 5}, true},
		{"idle CPU beats a few players on a hot CPU", Load{PlayingPlayers: 10, SystemLoad: 0.1}, Load{PlayingPlayers: 2, SystemLoad: 0.9}, true},
		{"frame deficit is worse than players", Load{PlayingPlayers: 50}, Load{PlayingPlayers: 1, Deficit: 3000}, true},
		{"equal loads are not better", Load{PlayingPlayers: 1}, Load{PlayingPlayers: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Score(tc.a) < Score(tc.b); got != tc.aBetterThan {
				t.Fatalf("Score(%+v)=%v < Score(%+v)=%v is %v", tc.a, Score(tc.a), tc.b, Score(tc.b), got)
			}
		})
	}
	for _, l := range []Load{{SystemLoad: 1e9, Deficit: 1 << 40}, {PlayingPlayers: -5, SystemLoad: -1, Deficit: -9}} {
		if s := Score(l); s != s || s > 1e300 || s < 0 { // NaN, Inf or negative
			t.Fatalf("Score(%+v) = %v", l, s)
		}
	}
}

func upTable(names ...string) *table {
	t := newTable(names)
	for _, n := range t.nodes {
		n.up, n.link = true, &link{name: n.name}
	}
	return t
}

func TestTablePlace(t *testing.T) {
	t.Run("least loaded, then sticky", func(t *testing.T) {
		tb := upTable("a", "b")
		tb.setLoad("a", Load{PlayingPlayers: 10})
		node, prev, ok := tb.place("g1")
		if !ok || node != "b" || prev != "" {
			t.Fatalf("place = %q %q %v", node, prev, ok)
		}
		tb.setLoad("b", Load{PlayingPlayers: 100}) // b is now busier: g1 stays (no flapping)
		if node, _, _ := tb.place("g1"); node != "b" {
			t.Fatalf("g1 moved to %q while b was healthy", node)
		}
	})
	t.Run("a burst spreads over the nodes", func(t *testing.T) {
		tb := upTable("a", "b", "c")
		count := map[string]int{}
		for i := range 300 {
			node, _, ok := tb.place(fmt.Sprint("g", i))
			if !ok {
				t.Fatal("no node")
			}
			count[node]++
		}
		for _, n := range []string{"a", "b", "c"} {
			if count[n] != 100 {
				t.Fatalf("burst placement uneven: %v", count)
			}
		}
	})
	t.Run("only closed and connected nodes are chosen", func(t *testing.T) {
		tb := upTable("a", "b", "c")
		tb.nodes["a"].breaker = supervisor.Open
		tb.nodes["b"].up = false
		for i := range 10 {
			if node, _, _ := tb.place(fmt.Sprint("g", i)); node != "c" {
				t.Fatalf("placed on %q", node)
			}
		}
		tb.nodes["c"].breaker = supervisor.HalfOpen
		if _, _, ok := tb.place("new"); ok {
			t.Fatal("placed a new guild on a half-open node")
		}
	})
	t.Run("a lost node's guilds move and the counts follow", func(t *testing.T) {
		tb := upTable("a", "b")
		for i := range 4 {
			tb.place(fmt.Sprint("g", i))
		}
		tb.nodes["a"].up = false
		lost := tb.lose("a")
		sort.Strings(lost)
		if len(lost) != 2 {
			t.Fatalf("lost %v", lost)
		}
		if again := tb.lose("a"); len(again) != 0 {
			t.Fatalf("second loss notified again: %v", again)
		}
		for _, g := range lost {
			node, prev, ok := tb.place(g)
			if !ok || node != "b" || prev != "a" {
				t.Fatalf("%s: %q %q %v", g, node, prev, ok)
			}
		}
		if tb.nodes["a"].placed != 0 || tb.nodes["b"].placed != 4 {
			t.Fatalf("placed a=%d b=%d", tb.nodes["a"].placed, tb.nodes["b"].placed)
		}
		// a comes back: the moved guilds stay on b.
		tb.nodes["a"].up = true
		for _, g := range lost {
			if node, _, _ := tb.place(g); node != "b" {
				t.Fatalf("%s flapped back to %s", g, node)
			}
		}
		tb.release(lost[0], true)
		if tb.nodes["b"].placed != 3 {
			t.Fatalf("release: placed %d", tb.nodes["b"].placed)
		}
	})
	t.Run("avoid moves off a node, unless it is the only one", func(t *testing.T) {
		tb := upTable("a", "b")
		node, _, _ := tb.place("g")
		tb.avoid["g"] = node
		other, _, _ := tb.place("g")
		if other == node {
			t.Fatalf("avoid ignored: still on %s", node)
		}
		solo := upTable("a")
		solo.place("g")
		solo.avoid["g"] = "a"
		if n, _, ok := solo.place("g"); !ok || n != "a" {
			t.Fatalf("single node: %q %v", n, ok)
		}
	})
	t.Run("strays: guilds that left a node and did not come back", func(t *testing.T) {
		tb := upTable("a", "b")
		tb.place("g1")
		tb.place("g2") // g1 on a, g2 on b
		tb.nodes["a"].breaker = supervisor.Open
		tb.place("g1") // moves to b
		tb.nodes["a"].breaker = supervisor.Closed
		tb.release("g2", false) // its destroy was not confirmed
		if got := tb.strays("a"); fmt.Sprint(got) != "[g1]" {
			t.Fatalf("strays(a) = %v", got)
		}
		// Kept until the destroy is confirmed (a sweep that could not
		// run must not lose the list).
		if got := tb.strays("a"); fmt.Sprint(got) != "[g1]" {
			t.Fatalf("strays(a) after an unconfirmed sweep = %v", got)
		}
		tb.forget("a", "g1")
		if got := tb.strays("a"); len(got) != 0 || tb.left["a"] != nil {
			t.Fatalf("strays after confirmation: %v %v", got, tb.left)
		}
		if got := tb.strays("b"); fmt.Sprint(got) != "[g2]" {
			t.Fatalf("strays(b) = %v (released guild)", got)
		}
	})
	t.Run("none usable", func(t *testing.T) {
		tb := newTable([]string{"a"})
		if _, _, ok := tb.place("g"); ok {
			t.Fatal("placed on a node never connected")
		}
		if tb.selectable() != 0 {
			t.Fatal("selectable")
		}
	})
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassify(t *testing.T) {
	tests := []struct {
		err     error
		kind    string
		failure bool
	}{
		{nil, "", false},
		{lavalink.Error{Status: 500}, "rest_5xx", true},
		{fmt.Errorf("play: %w", lavalink.Error{Status: 503}), "rest_5xx", true},
		{lavalink.Error{Status: 404}, "", false},
		{lavalink.Error{Status: 400}, "", false},
		{context.DeadlineExceeded, "timeout", true},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, "timeout", true},
		{context.Canceled, "", false},
		{errors.New("connection refused"), "transport", true},
	}
	for _, tc := range tests {
		kind, failure := classify(tc.err)
		if kind != tc.kind || failure != tc.failure {
			t.Errorf("classify(%v) = %q %v; want %q %v", tc.err, kind, failure, tc.kind, tc.failure)
		}
	}
}

func TestWatchEscalation(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := 10 * time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var w watch
	w.played(at(0), 5*time.Second)
	w.observe(at(time.Second), 6*time.Second, true) // baseline
	w.observe(at(2*time.Second), 7*time.Second, true)
	if a := w.due(at(11*time.Second), th); a != actNone {
		t.Fatalf("advancing player: %v", a)
	}
	w.observe(at(3*time.Second), 7*time.Second, true) // stalls from 2 s
	steps := []struct {
		at   time.Duration
		want action
	}{
		{11 * time.Second, actNone}, {12 * time.Second, actNudge}, {13 * time.Second, actNone},
		{22 * time.Second, actMove}, {31 * time.Second, actNone}, {32 * time.Second, actGiveUp},
		{60 * time.Second, actNone}, {600 * time.Second, actNone},
	}
	for _, s := range steps {
		if a := w.due(at(s.at), th); a != s.want {
			t.Fatalf("at %v: %v, want %v", s.at, a, s.want)
		}
	}
	// It plays again: the watchdog starts over.
	w.observe(at(601*time.Second), 8*time.Second, true)
	if w.step != actNone {
		t.Fatalf("step %v after progress", w.step)
	}

	t.Run("disconnected voice is not a stall", func(t *testing.T) {
		var w watch
		w.played(t0, 0)
		w.observe(t0, 0, false)
		if a := w.due(at(time.Hour), th); a != actNone {
			t.Fatalf("%v", a)
		}
	})
	t.Run("TrackStuck skips the wait and is forwarded only after giving up", func(t *testing.T) {
		var w watch
		w.played(t0, 0)
		w.observe(t0, 0, true)
		if !w.stuck(at(time.Second)) {
			t.Fatal("first stuck not handled")
		}
		if a := w.due(at(time.Second), th); a != actNudge {
			t.Fatalf("after stuck: %v", a)
		}
		w.stuck(at(2 * time.Second))
		if a := w.due(at(2*time.Second), th); a != actMove {
			t.Fatalf("after second stuck: %v", a)
		}
		w.played(at(3*time.Second), 0) // re-created on another node
		w.stuck(at(4 * time.Second))
		if a := w.due(at(4*time.Second), th); a != actGiveUp {
			t.Fatalf("after stuck on the new node: %v", a)
		}
		if w.stuck(at(5 * time.Second)) {
			t.Fatal("stuck after giving up must go to the session")
		}
	})
	t.Run("a replay's first report is a baseline, not progress", func(t *testing.T) {
		var w watch
		w.played(t0, 0)
		w.observe(t0, 0, true)
		w.due(at(th), th)   // nudge
		w.due(at(2*th), th) // move
		w.played(at(2*th+time.Second), 30*time.Second)
		w.observe(at(2*th+2*time.Second), 31*time.Second, true)
		if w.step != actMove {
			t.Fatalf("step reset by the new node's first report: %v", w.step)
		}
	})
}

// TestPlayUpdate: the one update that (re)creates a player carries voice,
// track, position, volume, pause state, and the filters kept from the old
// node when there are any.
func TestPlayUpdate(t *testing.T) {
	enc := realTrack(t).Encoded
	req := audio.PlayRequest{
		Track: realTrack(t), Position: 83500 * time.Millisecond, Volume: 70, Paused: true, PlayID: "3.9",
		Voice: audio.Voice{ChannelID: "800000000000000001", SessionID: "vs", Token: "tok", Endpoint: "ep:443"},
	}
	vol := lavalink.Volume(0.5)
	for _, tc := range []struct {
		name    string
		filters *lavalink.Filters
		want    string
	}{
		{"no filters", nil, `{"track":{"encoded":"` + enc + `","userData":{"ensemblePlayId":"3.9"}},"position":83500,"volume":70,"paused":true,"voice":{"token":"tok","endpoint":"ep:443","sessionId":"vs","channelId":"800000000000000001"}}`},
		{"filters restored", &lavalink.Filters{Volume: &vol}, `{"track":{"encoded":"` + enc + `","userData":{"ensemblePlayId":"3.9"}},"position":83500,"volume":70,"paused":true,"voice":{"token":"tok","endpoint":"ep:443","sessionId":"vs","channelId":"800000000000000001"},"filters":{"volume":0.5}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := playUpdate(req, tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(u)
			if string(b) != tc.want {
				t.Fatalf("update\n%s\nwant\n%s", b, tc.want)
			}
		})
	}
	if _, err := playUpdate(audio.PlayRequest{Voice: audio.Voice{ChannelID: "lounge"}}, nil); err == nil {
		t.Fatal("a non-snowflake channel was accepted")
	}
	if !isZeroFilters(lavalink.Filters{}) || isZeroFilters(lavalink.Filters{Volume: &vol}) {
		t.Fatal("isZeroFilters")
	}
}
