package main

import (
	"context"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
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
