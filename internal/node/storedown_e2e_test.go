//go:build !race

package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestNodeStartsWithRedisDown: a node started while Redis is down runs
// (it used to exit 1), says in /readyz that the store is unreachable,
// connects to Discord all the same (a single node: no other member can
// hold its shards) and answers users "try again"; once Redis comes up it
// is ready by itself, takes its shard's lease and plays.
func TestNodeStartsWithRedisDown(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.Stop()
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: srv, unready: true})
	rep := w.node.Readiness().Snapshot()
	if rep.Ready || rep.Components[compStore].Ready || !strings.Contains(rep.Components[compStore].Detail, "redis unreachable") {
		t.Fatalf("readiness with Redis down: %+v", rep)
	}
	poll(t, "the shard connected without its lease", func() bool {
		return w.node.Readiness().Snapshot().Components[compDiscord].Ready && len(w.discord.Commands(0)) > 0
	})
	w.join(w.listener, w.voice)
	// Ephemeral "try again": at once, or (the session's activation is
	// slow to fail) as a follow-up replacing the public "thinking".
	ix, err := w.discord.InvokeCommand(w.guild, w.listener, w.text, "play", discordemu.StringOption("query", "during the outage"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	defer cancel()
	res, err := ix.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := discordemu.Message{Content: res.Content, Flags: res.Flags}
	if res.Type == discordemu.ResponseDeferredMessage {
		follow, err := ix.WaitFollowups(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		msg = follow[0]
	}
	if !msg.Ephemeral() || !strings.Contains(msg.Content, "try again") {
		t.Fatalf("/play with the store down: %+v (first answer %+v); want an ephemeral try again", msg, res)
	}

	srv.Restart(t) // the same address
	w.waitReady()
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	poll(t, "the shard's lease taken once Redis answers", func() bool {
		return rc.Exists(w.ctx, "ensemble:{shard-0}:lease").Val() == 1
	})
	if logs := w.logs.String(); strings.Count(logs, "store unreachable") != 1 || !strings.Contains(logs, "store answers again") {
		t.Fatalf("want one warning for the outage and one note for its end:\n%s", logs)
	}
	wantContains(t, w.run(w.listener, "play", discordemu.StringOption("query", "after the outage")), "after the outage")
	w.player(playing("after the outage"))
}
