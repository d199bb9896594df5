package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// TestEtcdOutageEjectsNoOne: etcd stopped for 15 s (longer than the
// members' 2 s lease TTL) and started again with its data. The members
// keep the membership they had and go on serving meanwhile; none is
// ejected or starts again as a new member; every guild plays on with one
// player, and the cluster answers again right after etcd's return.
func TestEtcdOutageEjectsNoOne(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := startCluster(ctx, t, clustertest.Config{Node: bin})
	guilds, err := cl.Discord.AddLoadGuilds(10, 1)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*clustertest.Node{startNode(ctx, t, cl), startNode(ctx, t, cl)}
	answer := answerer(ctx, t, cl)
	for i, g := range guilds {
		answer(g, "play", discordemu.StringOption("query", fmt.Sprintf("outage song %d", i)))
	}
	onePlayerEach := func(when string) {
		t.Helper()
		waitFor(t, "one player per guild "+when, func() bool {
			live, on := cl.LiveSessions(), cl.Players()
			for _, g := range guilds {
				if ps := on[uint64(g.ID)]; len(ps) != 1 || !live[ps[0].SessionID] {
					return false
				}
			}
			return true
		})
	}
	onePlayerEach("before the outage")

	cl.Etcd.Stop()
	// Meanwhile the members serve from the membership they have.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		g := guilds[i%len(guilds)]
		if q := answer(g, "queue"); !strings.Contains(q, "outage song") {
			t.Fatalf("/queue in %s during the outage: %s", g.ID, q)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := cl.Etcd.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for _, g := range guilds {
		if q := answer(g, "queue"); !strings.Contains(q, "outage song") {
			t.Fatalf("/queue in %s after the outage: %s", g.ID, q)
		}
	}
	t.Logf("every guild answered again %s after etcd's return", time.Since(back).Round(time.Millisecond))
	onePlayerEach("after the outage")
	started := regexp.MustCompile(`msg="cluster member started"`)
	for _, n := range nodes {
		if !n.Running() {
			t.Fatalf("node %s exited", n.Admin)
		}
		if k := len(started.FindAllString(n.Output(), -1)); k != 1 {
			t.Fatalf("node %s started %d members; want 1 (no ejection)", n.Admin, k)
		}
	}
}
