//go:build !race

package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// TestLoadFailuresAnswerInUserTerms: a load Lavalink answers with
// loadType "error" or "empty" is explained to the user (its reason, or
// what found nothing), privately, and nothing is queued or played.
func TestLoadFailuresAnswerInUserTerms(t *testing.T) {
	const dead = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lava, err := lavalinkemu.Start(ctx, lavalinkemu.Config{Password: lavalinkPassword, BrokenIdentifier: dead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lava.Close)
	w := newWorld(t, worldOpts{lava: lava})
	w.join(w.listener, w.voice)
	d := discordemu.StringOption

	r := w.run(w.listener, "play", d("query", dead))
	wantRefusal(t, r, "Couldn't load that track: This video is unavailable")
	r = w.run(w.listener, "play", d("query", "https://www.youtube.com/watch?v=gone"))
	wantRefusal(t, r, "No results for “https://www.youtube.com/watch?v=gone”")
	q := w.run(w.listener, "queue")
	wantContains(t, q, "The queue is empty")
	if strings.Contains(q.text(), "Now playing") {
		t.Fatalf("a failed load left a track playing: %q", q.text())
	}
	for _, p := range lava.Players("") {
		if p.GuildID == uint64(w.guild) && p.Track != nil {
			t.Fatalf("a failed load left a track playing: %+v", p)
		}
	}
}
