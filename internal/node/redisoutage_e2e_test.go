//go:build !race

package node

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/store"
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

// TestHungRedisOpensTheStoreBreaker: store calls that time out on a hung
// Redis open the store's breaker; once Redis answers pings again /readyz
// says the store is ready but degraded (the breaker still open), and the
// first store call after the reset probes and closes it.
func TestHungRedisOpensTheStoreBreaker(t *testing.T) {
	srv := testserver.StartRedis(t)
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: srv})
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	// min_requests (10) calls, all at once, each waits out its timeout.
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = w.node.store.LoadGuild(w.ctx, w.guild.String())
		}()
	}
	wg.Wait()
	t.Logf("ten store calls on a frozen Redis took %s (store.redis.timeout 2s)", time.Since(start).Round(time.Millisecond))
	if _, err := w.node.store.LoadGuild(w.ctx, w.guild.String()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a store call after ten timeouts: %v; want ErrUnavailable at once", err)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	poll(t, "the store ready but degraded", func() bool {
		c := w.node.Readiness().Snapshot().Components[compStore]
		return c.Ready && strings.Contains(c.Detail, "circuit breaker")
	})
	// After the reset (5 s) a command's store call is the probe.
	poll(t, "the breaker closed by a probe", func() bool {
		if _, err := w.node.store.LoadGuild(w.ctx, w.guild.String()); err != nil {
			return false
		}
		return w.node.breaker.State() == supervisor.Closed
	})
	poll(t, "the store ready, not degraded", func() bool {
		c := w.node.Readiness().Snapshot().Components[compStore]
		return c.Ready && c.Detail == "redis"
	})
	if m := metricsText(t, w); !strings.Contains(m, `ensemble_store_breaker_transitions_total{to="open"} 1`) {
		t.Fatalf("/metrics:\n%s", grepLines(m, "ensemble_store"))
	}
}
