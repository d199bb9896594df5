package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// TestPartitionedMemberIsFenced cuts a member off, in two ways. First
// from etcd and from the other members while it still reaches Redis,
// Discord and Lavalink: the split brain fencing exists for. The others
// see it leave, take its shards (resuming their Discord sessions) and its
// sessions (taking its players over); it keeps its old view of the
// cluster, and the store's epochs must stop it. Then from everything, as
// when its host loses the network: its shard leases and its Lavalink
// session lapse, and the others take over from what the store holds. Throughout, no guild ever has two players playing
// and no shard two ready gateway connections. When the partition heals,
// the member finds itself dropped, rejoins as a new member, and takes its
// share back; every guild plays once, each queue holds what was queued,
// including what users added during the partition.
func TestPartitionedMemberIsFenced(t *testing.T) {
	if err := clustertest.CanPartition(); err != nil {
		t.Skipf("cannot partition here: %v", err)
	}
	bin := buildNode(t)
	for _, tc := range []struct {
		name    string
		targets []clustertest.Target
	}{
		{"from etcd and the members", []clustertest.Target{clustertest.TargetEtcd, clustertest.TargetPeers}},
		{"from everything", clustertest.AllTargets},
	} {
		t.Run(tc.name, func(t *testing.T) { partitionAMember(t, bin, tc.targets) })
	}
}

func partitionAMember(t *testing.T, bin string, targets []clustertest.Target) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const shards = 4
	cl := startCluster(ctx, t, clustertest.Config{Node: bin, Shards: shards, Partitionable: true})
	dc := cl.Discord
	guilds, err := dc.AddLoadGuilds(24, 1)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*clustertest.Node{startNode(ctx, t, cl), startNode(ctx, t, cl), startNode(ctx, t, cl)}
	answer := answerer(ctx, t, cl)
	for i, g := range guilds {
		answer(g, "play", discordemu.StringOption("query", fmt.Sprintf("song %d", i)))
	}
	onePlayerEach := func(what string, ok func(sessionID string) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			on, live := cl.Players(), cl.LiveSessions()
			for _, g := range guilds {
				if ps := on[uint64(g.ID)]; len(ps) != 1 || !live[ps[0].SessionID] || !ok(ps[0].SessionID) {
					return false
				}
			}
			return true
		})
	}
	onePlayerEach("every guild playing once", func(string) bool { return true })
	shardsUp := func(when string) map[int]string {
		t.Helper()
		var sessions map[int]discordemu.SessionInfo
		waitFor(t, "one ready gateway connection per shard "+when, func() bool {
			sessions = cl.ShardSessions()
			return len(sessions) == shards
		})
		ids := map[int]string{}
		for shard, s := range sessions {
			ids[shard] = s.ID
		}
		return ids
	}
	sessionOf := shardsUp("at the start")

	// The member to cut off: the one holding the most players.
	count := map[string]int{}
	for _, ps := range cl.Players() {
		count[ps[0].SessionID]++
	}
	x := nodes[0]
	for _, n := range nodes {
		if count[n.LavalinkSession()] > count[x.LavalinkSession()] {
			x = n
		}
	}
	xLava := x.LavalinkSession()
	if count[xLava] == 0 {
		t.Fatalf("no member holds a player: %v", count)
	}

	// Watch the invariants from here to the end.
	var (
		mu         sync.Mutex
		violations []string
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			for gid, ps := range cl.Players() {
				if len(ps) > 1 {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("%s: guild %d has %d players playing: %+v", time.Now().Format("15:04:05.000"), gid, len(ps), ps))
					mu.Unlock()
				}
			}
			perShard := map[int]int{}
			for _, s := range dc.Sessions() {
				if s.Connected && s.Ready {
					perShard[s.Shard]++
				}
			}
			for shard, n := range perShard {
				if n > 1 {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("%s: shard %d has %d ready gateway connections", time.Now().Format("15:04:05.000"), shard, n))
					mu.Unlock()
				}
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	defer func() {
		stopWatch()
		<-watched
		mu.Lock()
		defer mu.Unlock()
		if len(violations) > 0 {
			t.Errorf("%d invariant violations, the first ones:\n%s", len(violations), strings.Join(violations[:min(len(violations), 20)], "\n"))
			// What Lavalink saw of the first guild with two players.
			if m := regexp.MustCompile(`guild (\d+) has`).FindStringSubmatch(violations[0]); m != nil {
				for _, ev := range cl.Lavalink.PlayerEvents(mustUint(m[1])) {
					t.Logf("guild %s event at %s %s %s %s play %s pos %d", m[1], ev.Time.Format("15:04:05.000"), ev.SessionID, ev.Type, ev.Reason, ev.UserData, ev.Position)
				}
				for _, r := range cl.Lavalink.Requests() {
					if strings.Contains(r.Path, m[1]) {
						t.Logf("guild %s request at %s %s %s %.120s", m[1], r.Time.Format("15:04:05.000"), r.Method, r.Path, r.Body)
					}
				}
			}
		}
	}()

	holdersStored(ctx, t, cl, guilds)
	cut := time.Now()
	if err := x.Partition(targets...); err != nil {
		t.Fatal(err)
	}
	onePlayerEach("every guild playing once, none on the cut-off member", func(id string) bool { return id != xLava })
	t.Logf("the cut-off member's %d players moved within %s", count[xLava], time.Since(cut).Round(time.Millisecond))
	for shard, id := range shardsUp("during the partition") {
		if id != sessionOf[shard] {
			t.Fatalf("shard %d has Discord session %s during the partition; want %s resumed", shard, id, sessionOf[shard])
		}
	}
	// Every guild is served; what users queue now must outlive the cut-off
	// member's old view. Until the others hold its shards, the cut-off
	// member still gets some guilds' interactions (its Discord sessions
	// are the same ones, resumed elsewhere within a renewal) and answers
	// them "try again" once its grains find themselves fenced: a user
	// tries again, and so does this test.
	retries := 0
	for i, g := range guilds {
		waitFor(t, fmt.Sprintf("/play in %s answered during the partition", g.ID), func() bool {
			q := answer(g, "play", discordemu.StringOption("query", fmt.Sprintf("split %d", i)))
			if strings.Contains(q, fmt.Sprintf("split %d", i)) {
				return true
			}
			if !strings.Contains(q, "try again") {
				t.Fatalf("/play in %s during the partition: %s", g.ID, q)
			}
			retries++
			return false
		})
	}
	t.Logf("%d /play answers during the partition were \"try again\"", retries)

	healed := time.Now()
	x.Heal()
	waitFor(t, "the cut-off member to rejoin as a new member", func() bool {
		return len(regexp.MustCompile(`msg="cluster member started"`).FindAllString(x.Output(), -1)) >= 2
	})
	if err := x.WaitReady(ctx, "discord", "lavalink"); err != nil {
		t.Fatal(err)
	}
	t.Logf("rejoined %s after the heal", time.Since(healed).Round(time.Millisecond))
	// Its share comes back: some guild plays on its (new) Lavalink session.
	waitFor(t, "a guild playing on the rejoined member", func() bool {
		id := x.LavalinkSession()
		for _, ps := range cl.Players() {
			for _, p := range ps {
				if p.SessionID == id && id != xLava {
					return true
				}
			}
		}
		return false
	})
	onePlayerEach("every guild playing once after the heal", func(string) bool { return true })
	for shard, id := range shardsUp("after the heal") {
		if id != sessionOf[shard] {
			t.Fatalf("shard %d has Discord session %s after the heal; want %s resumed", shard, id, sessionOf[shard])
		}
	}
	for i, g := range guilds {
		// (song i may have ended by now: tracks last a minute or more.)
		// For a moment after the heal a member may still count the
		// rejoined one (at the address of the one it replaced) as
		// unreachable, until protoactor's gossip reconnects to it, and
		// answer its guilds "busy, try again": a user would, and so does
		// the test. What it checks is that nothing queued was lost.
		var q string
		waitFor(t, "an answer that is not busy", func() bool {
			q = answer(g, "queue")
			return !commands.IsBusy(q)
		})
		if n := len(regexp.MustCompile(fmt.Sprintf(`split %d\b`, i)).FindAllString(q, -1)); n != 1 {
			t.Fatalf("/queue in %s after the heal: %s; want split %d queued or playing once", g.ID, q, i)
		}
	}
}

func mustUint(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}
