//go:build !race

package node

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestRedisOutageKeepsTheMusic: Redis stops mid-session and comes back
// (its data kept): the music plays on, commands are answered meanwhile,
// and what a user queued during the outage is in the store once it is
// back: a new activation of the session finds it.
func TestRedisOutageKeepsTheMusic(t *testing.T) {
	srv := testserver.StartDurableRedis(t)
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: srv})
	w.join(w.listener, w.voice)
	w.run(w.listener, "play", discordemu.StringOption("query", "first song"))
	w.run(w.listener, "play", discordemu.StringOption("query", "second song"))
	w.player(playing("first song"))

	srv.Stop()
	// Answered, and honest about it: queued in memory, not yet stored.
	r := w.run(w.listener, "play", discordemu.StringOption("query", "outage song"))
	wantContains(t, r, "outage song", "not saved yet")
	wantContains(t, w.run(w.listener, "queue"), "first song", "second song", "outage song")
	before := w.player(playing("first song")).Position
	w.player(func(p lavalinkemu.PlayerInfo) bool { return playing("first song")(p) && p.Position > before+1000 })

	srv.Restart(t) // the same address, the data kept
	w.waitReady()
	// The session stores what it holds once Redis is back, by itself.
	poll(t, "the snapshot with the track queued during the outage", func() bool {
		data, err := w.node.store.LoadSession(w.ctx, w.guild.String())
		var snap clusterpb.SessionSnapshot
		if err != nil || proto.Unmarshal(data, &snap) != nil {
			return false
		}
		for _, tr := range snap.GetQueue() {
			if tr.GetTitle() == "outage song" {
				return true
			}
		}
		return false
	})
	// A new activation (a new epoch) reads it back and plays on.
	c := w.node.member.Cluster
	pid := c.Get(w.guild.String(), "Session")
	if pid == nil {
		t.Fatal("no session activation")
	}
	c.ActorSystem.Root.Stop(pid)
	if q := queueText(w); !strings.Contains(q, "outage song") || !strings.Contains(q, "second song") {
		t.Fatalf("queue after the outage and a new activation:\n%s", q)
	}
	w.player(playing("first song"))
}
