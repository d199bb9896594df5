package session

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// fakeGuilds records the views the session pushes.
type fakeGuilds struct {
	mu    sync.Mutex
	views []*clusterpb.SessionView
	// changed is closed and replaced at every push.
	changed chan struct{}
}

func (f *fakeGuilds) View(_ context.Context, v *clusterpb.SessionView) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views = append(f.views, v)
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
	return nil
}

// waitFor returns the pushed views once cond holds for them.
func (f *fakeGuilds) waitFor(t *testing.T, what string, cond func([]*clusterpb.SessionView) bool) []*clusterpb.SessionView {
	t.Helper()
	for {
		f.mu.Lock()
		views := slices.Clone(f.views)
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		f.mu.Unlock()
		if cond(views) {
			return views
		}
		select {
		case <-changed:
		case <-t.Context().Done():
			t.Fatalf("no push: %s", what)
		}
	}
}

func (f *fakeGuilds) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.views)
}

func viewIDs(v *clusterpb.SessionView) (current string, queue []string) {
	for _, t := range v.GetQueue() {
		queue = append(queue, t.GetIdentifier())
	}
	return v.GetCurrent().GetIdentifier(), queue
}

// TestRepliesCarryTheView: every reply brings the view after the command
// (the guild answers /queue and /nowplaying from it), numbered so the
// guild can order views; a guild that has the current view gets only its
// number; and a change that no reply brings (a track's end) is pushed.
func TestRepliesCarryTheView(t *testing.T) {
	guilds := &fakeGuilds{}
	h := newHarness(t, func(d *Deps) { d.Guilds = guilds })
	r := h.execAs(nil, "play", opt("query", "mix playlist"))
	v := r.GetView()
	cur, q := viewIDs(v)
	if v.GetGuildId() != testGuild || v.GetEpoch() == 0 || v.GetSeq() == 0 || v.GetSame() ||
		cur != "mix playlist-0" || !slices.Equal(q, []string{"mix playlist-1", "mix playlist-2", "mix playlist-3"}) {
		t.Fatalf("view after /play: %v", v)
	}
	if v.GetQueueLen() != 3 || v.GetCurrent().GetEncoded() != "" || v.GetQueue()[0].GetEncoded() != "" {
		t.Fatalf("view after /play: length %d, encoded tracks %v", v.GetQueueLen(), v)
	}
	// Nothing changed: a guild with that view hears only that it is current.
	same := h.execAs(func(req *clusterpb.SessionRequest) { req.ViewEpoch, req.ViewSeq = v.GetEpoch(), v.GetSeq() }, "queue").GetView()
	if !same.GetSame() || same.GetSeq() != v.GetSeq() || same.GetEpoch() != v.GetEpoch() || len(same.GetQueue()) > 0 {
		t.Fatalf("view for a guild that has it: %v", same)
	}
	// A guild with an older view gets the whole one.
	if full := h.execAs(func(req *clusterpb.SessionRequest) { req.ViewEpoch, req.ViewSeq = v.GetEpoch(), v.GetSeq()-1 }, "queue").GetView(); full.GetSame() || len(full.GetQueue()) != 3 {
		t.Fatalf("view for a guild with an older one: %v", full)
	}
	// The playing track ends: the next one's view is pushed.
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	h.finished()
	views := guilds.waitFor(t, "the next track", func(vs []*clusterpb.SessionView) bool {
		return len(vs) > 0 && vs[len(vs)-1].GetCurrent().GetIdentifier() == "mix playlist-1"
	})
	last := views[len(views)-1]
	if _, q := viewIDs(last); last.GetSeq() <= v.GetSeq() || last.GetEpoch() != v.GetEpoch() || !slices.Equal(q, []string{"mix playlist-2", "mix playlist-3"}) {
		t.Fatalf("pushed view %v after %v", last, v)
	}
	// /volume's reply brings its change, numbered after the push.
	vol := h.execAs(nil, "volume", opt("level", "40")).GetView()
	if vol.GetVolume() != 40 || vol.GetSeq() <= last.GetSeq() {
		t.Fatalf("view after /volume: %v (last push seq %d)", vol, last.GetSeq())
	}
	// A long queue: the view holds its first page and its length.
	for i := range 3 {
		h.exec("play", opt("query", fmt.Sprint("list ", i, " playlist")))
	}
	long := h.execAs(nil, "queue").GetView()
	if _, q := viewIDs(long); long.GetQueueLen() != 14 || len(q) != commands.QueuePageSize || q[0] != "mix playlist-2" {
		t.Fatalf("view of a 14-track queue: length %d, tracks %v", long.GetQueueLen(), q)
	}
}

// TestNoPushesWithoutAReplyLately: the session pushes its view only for
// ViewPushFor after a reply; past it the guild no longer trusts its view,
// and a session nobody asks sends nothing.
func TestNoPushesWithoutAReplyLately(t *testing.T) {
	guilds := &fakeGuilds{}
	clk := &fakeClock{}
	h := newHarness(t, func(d *Deps) { d.Guilds = guilds; d.Now = clk.Now })
	h.exec("play", opt("query", "mix playlist"))
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	clk.advance(ViewPushFor)
	before := guilds.count()
	h.finished()
	if got := h.playing(); got == "" {
		t.Fatal("nothing plays after the first track")
	}
	// /nowplaying's reply is sent after the track change was handled: a
	// push of that change would have been started before it.
	if n := guilds.count(); n != before {
		t.Fatalf("%d pushes past ViewPushFor", n-before)
	}
}
