//go:build !race

package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// The music keeps playing by itself: a queue plays through to its end
// with no command typed, tracks ending on their own as Lavalink ends them
// (the emulator's clock runs fast, and every event carries the track
// re-encoded with its position, as Lavalink's do).
//
// Each case asserts the order of the plays from the Lavalink emulator's
// own record of the events it sent. No track can have started because of
// the session's lost-TrackEnd fallback: that fallback counts in wall time
// (the track's length, a minute or more, plus 10 s), far beyond each of
// these runs, so every track here started because an event said the one
// before had ended. The log is checked for the fallback's line as well.

// playthroughSpeed makes a track of one to six minutes last 0.12 to 0.72 s.
const playthroughSpeed = 500

// trackPlay is one play of a track: one play ID (a watchdog nudge re-sends
// a play; a move, a loop or a replay is a new one).
type trackPlay struct {
	id    string
	track string
	seq   int64
}

func playID(userData json.RawMessage) string {
	var ud struct {
		PlayID string `json:"ensemblePlayId"`
	}
	_ = json.Unmarshal(userData, &ud)
	return ud.PlayID
}

// plays lists the guild's plays in the order they started, from event
// after on.
func (w *world) plays(after int64) []trackPlay {
	var out []trackPlay
	seen := map[string]bool{}
	for _, ev := range w.lava.PlayerEvents(uint64(w.guild)) {
		if ev.Seq <= after || ev.Type != "TrackStartEvent" {
			continue
		}
		id := playID(ev.UserData)
		if id == "" {
			w.t.Fatalf("TrackStartEvent without the session's play ID: %+v", ev)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, trackPlay{id: id, track: ev.Identifier, seq: ev.Seq})
	}
	return out
}

// waitPlays waits for n plays after the mark, each new one signalled by a
// TrackStartEvent.
func (w *world) waitPlays(after int64, n int) []trackPlay {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	last := after
	for {
		ps := w.plays(after)
		if len(ps) >= n {
			return ps
		}
		ev, err := w.lava.WaitPlayerEvent(ctx, uint64(w.guild), func(ev lavalinkemu.PlayerEventRecord) bool {
			return ev.Seq > last && ev.Type == "TrackStartEvent"
		})
		if err != nil {
			w.t.Fatalf("waiting for %d plays, have %v: %v\nlogs:\n%s", n, ps, err, w.logs.String())
		}
		last = ev.Seq
	}
}

// lastSeq is the newest event of the guild so far.
func (w *world) lastSeq() int64 {
	evs := w.lava.PlayerEvents(uint64(w.guild))
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// playlistOf finds a YouTube playlist of the emulator's catalogue with at
// least n tracks and returns its URL and the tracks' identifiers.
func playlistOf(t *testing.T, n int) (string, []string) {
	t.Helper()
	for i := range 200 {
		url := fmt.Sprintf("https://www.youtube.com/playlist?list=PLplaythrough%d", i)
		res := lavalinkemu.Resolve(url)
		if res.LoadType != lavalinkemu.LoadPlaylist {
			t.Fatalf("%s loads as %s", url, res.LoadType)
		}
		raw, err := json.Marshal(res.Data)
		if err != nil {
			t.Fatal(err)
		}
		var pl struct {
			Tracks []lavalinkemu.Track `json:"tracks"`
		}
		if err := json.Unmarshal(raw, &pl); err != nil {
			t.Fatal(err)
		}
		if len(pl.Tracks) < n {
			continue
		}
		var ids []string
		for _, tr := range pl.Tracks {
			ids = append(ids, tr.Info.Identifier)
		}
		return url, ids
	}
	t.Fatalf("no playlist of %d tracks in the catalogue", n)
	return "", nil
}

func identifiers(ps []trackPlay) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.track)
	}
	return out
}

// collapse drops consecutive repeats of a track (a stuck track is played
// again by the watchdog's move before it is given up).
func collapse(ids []string) []string { return slices.Compact(slices.Clone(ids)) }

func TestQueuePlaysThroughByItself(t *testing.T) {
	d := discordemu.StringOption
	samePlaylist := func(t *testing.T, ids []string, got []string) {
		t.Helper()
		if !slices.Equal(got, ids) {
			t.Fatalf("played %v, want the playlist %v once, in order", got, ids)
		}
	}
	for _, c := range []struct {
		name     string
		loop     string
		autoplay bool
		// fault is set up before the playlist is queued.
		fault func(w *world, ids []string)
		// plays is how many plays to wait for; the queue ends after them
		// when ends is set (loop off, no autoplay).
		plays func(ids []string) int
		ends  bool
		want  func(t *testing.T, ids []string, ps []trackPlay)
	}{
		{name: "loop off", loop: "off", ends: true,
			plays: func(ids []string) int { return len(ids) },
			want:  func(t *testing.T, ids []string, ps []trackPlay) { samePlaylist(t, ids, identifiers(ps)) }},
		{name: "loop queue", loop: "queue",
			plays: func(ids []string) int { return 2*len(ids) + 1 },
			want: func(t *testing.T, ids []string, ps []trackPlay) {
				got := identifiers(ps)
				for i, id := range got {
					if id != ids[i%len(ids)] {
						t.Fatalf("play %d is %s; played %v, want the playlist %v over and over", i, id, got, ids)
					}
				}
			}},
		{name: "loop track", loop: "track",
			plays: func([]string) int { return 4 },
			want: func(t *testing.T, ids []string, ps []trackPlay) {
				for i, p := range ps {
					if p.track != ids[0] {
						t.Fatalf("play %d is %s, want %s again (loop track)", i, p.track, ids[0])
					}
				}
			}},
		{name: "autoplay", loop: "off", autoplay: true,
			plays: func(ids []string) int { return len(ids) + 2 },
			want: func(t *testing.T, ids []string, ps []trackPlay) {
				got := identifiers(ps)
				samePlaylist(t, ids, got[:len(ids)])
				picks := got[len(ids):]
				for _, p := range picks {
					if slices.Contains(ids, p) {
						t.Fatalf("autoplay picked %s, a track played recently (%v)", p, got)
					}
				}
				if picks[0] == picks[1] {
					t.Fatalf("autoplay picked %s twice in a row", picks[0])
				}
			}},
		{name: "exception in the middle", loop: "off", ends: true,
			fault: func(w *world, ids []string) {
				// 20 s in: audio was produced, so Lavalink follows the
				// exception with a TrackEnd "finished" of the same play.
				w.lava.FailWhenPlayed(ids[2], 20_000, "Something broke when playing the track.")
			},
			plays: func(ids []string) int { return len(ids) },
			want:  func(t *testing.T, ids []string, ps []trackPlay) { samePlaylist(t, ids, identifiers(ps)) }},
		{name: "stuck track in the middle", loop: "off", ends: true,
			fault: func(w *world, ids []string) { w.lava.StickWhenPlayed(ids[2], 20_000) },
			plays: func(ids []string) int { return len(ids) },
			want: func(t *testing.T, ids []string, ps []trackPlay) {
				// The watchdog re-plays a stuck track before it gives up on
				// it: repeats of it in a row are that, not a replay.
				samePlaylist(t, ids, collapse(identifiers(ps)))
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{speed: playthroughSpeed})
			url, ids := playlistOf(t, 5)
			w.join(w.dj, w.voice)
			// The bot joins with a first track, which is stopped: the modes
			// are set while it sits in voice with nothing playing.
			w.run(w.dj, "play", d("query", "warm up"))
			w.run(w.dj, "stop") // or "Nothing is playing", if it ended already
			wantContains(t, w.run(w.dj, "loop", d("mode", c.loop)), "loop")
			if c.autoplay {
				wantContains(t, w.run(w.dj, "autoplay", d("state", "on")), "autoplay on")
			}
			if c.fault != nil {
				c.fault(w, ids)
			}
			mark, stops := w.lastSeq(), len(w.stops())
			wantContains(t, w.run(w.dj, "play", d("query", url)), "playlist")

			ps := w.waitPlays(mark, c.plays(ids))
			if c.ends {
				// The queue ran out: the session stops the player, and
				// nothing started after the last track.
				waitFor(t, "the player stopped at the end of the queue", func() bool { return len(w.stops()) > stops })
				ps = w.plays(mark)
				// The now-playing message follows.
				waitMessage(t, w, func(m discordemu.Message) bool {
					return m.InteractionID == 0 && strings.Contains(m.Content, "Nothing is playing")
				})
			}
			c.want(t, ids, ps)
			w.checkEachStartFollowsAnEnd(mark, ps)
			if strings.Contains(w.logs.String(), "no track end from Lavalink") {
				t.Fatalf("a track was moved on by the lost-TrackEnd fallback:\n%s", w.logs.String())
			}
		})
	}
}

// stops are the player updates that stopped the guild's track.
func (w *world) stops() []lavalinkemu.Request {
	var out []lavalinkemu.Request
	for _, r := range w.lava.RequestsTo("PATCH", "/v4/sessions/") {
		if strings.HasSuffix(r.Path, fmt.Sprintf("/players/%d", w.guild)) && strings.Contains(string(r.Body), `"encoded":null`) {
			out = append(out, r)
		}
	}
	return out
}

// checkEachStartFollowsAnEnd: every play after the first started after
// the emulator reported the end of the one before it (finished, or the
// exception or stuck report that made the session give it up).
func (w *world) checkEachStartFollowsAnEnd(mark int64, ps []trackPlay) {
	w.t.Helper()
	evs := w.lava.PlayerEvents(uint64(w.guild))
	for i := 1; i < len(ps); i++ {
		prev, cur := ps[i-1], ps[i]
		ended := false
		for _, ev := range evs {
			if ev.Seq <= mark || ev.Seq >= cur.seq || playID(ev.UserData) != prev.id {
				continue
			}
			switch {
			case ev.Type == "TrackEndEvent" && ev.Reason == lavalinkemu.EndFinished,
				ev.Type == "TrackExceptionEvent", ev.Type == "TrackStuckEvent":
				ended = true
			}
		}
		if !ended {
			w.t.Fatalf("play %d (%s, %s) started with no end, exception or stuck report for the play before it (%s, %s)",
				i, cur.id, cur.track, prev.id, prev.track)
		}
	}
}
