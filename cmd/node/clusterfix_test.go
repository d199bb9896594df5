package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// startCluster starts a clustertest cluster (2 shards unless cfg says
// otherwise, in a temporary directory), closed when the test ends (with
// the nodes' output logged if it failed).
func startCluster(ctx context.Context, t *testing.T, cfg clustertest.Config) *clustertest.Cluster {
	t.Helper()
	if cfg.Shards == 0 {
		cfg.Shards = 2
	}
	cfg.Dir = t.TempDir()
	cl, err := clustertest.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		if t.Failed() {
			for _, n := range cl.Nodes() {
				t.Logf("node %s output:\n%s", n.Admin, n.Output())
			}
		}
	})
	return cl
}

// startNode starts a node and waits until Discord and Lavalink are ready
// on it.
func startNode(ctx context.Context, t *testing.T, cl *clustertest.Cluster) *clustertest.Node {
	t.Helper()
	n, err := cl.StartNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx, "discord", "lavalink"); err != nil {
		t.Fatal(err)
	}
	return n
}

// answerer returns a function that runs a command in a guild and returns
// its answer, failing the test after 30 s.
func answerer(ctx context.Context, t *testing.T, cl *clustertest.Cluster) func(g discordemu.LoadGuild, name string, opts ...discordemu.Option) string {
	return func(g discordemu.LoadGuild, name string, opts ...discordemu.Option) string {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		text, err := cl.Answer(actx, g, name, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
}

// holdersStored waits until every guild's session has stored which
// Lavalink session holds the player now playing (written right after the
// play starts): a survivor needs it to take the player over. A member
// killed or cut off in the milliseconds between a play and that write
// leaves its player playing until Lavalink's resume timeout (a limit,
// said in the README), which the tests do not measure, so they wait for
// it before they kill or cut.
func holdersStored(ctx context.Context, t *testing.T, cl *clustertest.Cluster, guilds []discordemu.LoadGuild) {
	t.Helper()
	st, err := store.Open(ctx, config.Store{Kind: config.StoreRedis, Redis: config.Redis{Addr: cl.Redis.Addr, Timeout: 5 * time.Second}}, secret.String{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitFor(t, "every session's player holder stored", func() bool {
		players := cl.Players()
		for _, g := range guilds {
			ps := players[uint64(g.ID)]
			data, err := st.LoadSession(ctx, g.ID.String())
			var snap clusterpb.SessionSnapshot
			if len(ps) != 1 || err != nil || proto.Unmarshal(data, &snap) != nil || snap.GetLavalinkSessionId() != ps[0].SessionID {
				return false
			}
		}
		return true
	})
}
