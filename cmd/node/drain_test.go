package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// shutdownTimeout is node.shutdown_timeout in clustertest's configuration
// (the default).
const shutdownTimeout = 5 * time.Second

// stopInTime stops n (SIGTERM) and fails the test unless it exits 0, which
// it does only when its drain ended within node.shutdown_timeout.
// If it still runs near the deadline, every goroutine's stack is fetched
// from its admin server (it serves until the drain's very end) and
// logged with the drain's log lines: they show what the drain waits for.
func stopInTime(t *testing.T, n *clustertest.Node) time.Duration {
	t.Helper()
	mark := len(n.Output())
	const before = 700 * time.Millisecond
	stacks := make(chan string, 1)
	started := time.Now()
	go func() {
		time.Sleep(shutdownTimeout - before)
		if !n.Running() {
			stacks <- ""
			return
		}
		_, body := tryGet("http://" + n.Admin + "/debug/pprof/goroutine?debug=2")
		stacks <- body
	}()
	err := n.Stop(time.Minute)
	took := time.Since(started)
	// A drain past node.shutdown_timeout makes the node exit 1 ("node
	// stop: context deadline exceeded"): the exit status is the check,
	// not the wall clock of a busy machine.
	if err != nil {
		t.Errorf("node stopped in %s (shutdown timeout %s): %v\ndrain log:\n%s\ngoroutines %s before the deadline:\n%s",
			took.Round(time.Millisecond), shutdownTimeout, err, n.Output()[mark:], before, <-stacks)
	}
	return took
}

// playingGuilds adds twenty guilds and plays a track in each, on the
// nodes running, and waits until each session has stored the Lavalink
// session holding its player.
func playingGuilds(ctx context.Context, t *testing.T, cl *clustertest.Cluster) []discordemu.LoadGuild {
	t.Helper()
	guilds, err := cl.Discord.AddLoadGuilds(20, 1)
	if err != nil {
		t.Fatal(err)
	}
	answer := answerer(ctx, t, cl)
	for i, g := range guilds {
		answer(g, "play", discordemu.StringOption("query", fmt.Sprintf("song %d", i)))
	}
	holdersStored(ctx, t, cl, guilds)
	return guilds
}

// TestStopDuringTakeovers stops a member (SIGTERM) while its sessions are
// in the middle of moving: activations loading, taking the previous
// players over (resuming the previous member's Lavalink session to reach
// them), playing and storing, or being stopped by the cluster itself. The
// drain must end within node.shutdown_timeout however far each session
// got. Once in CI a member stopped about 80 ms after taking twenty
// sessions over overran it: the drain's wait for a session was for an
// answer that a session stopped meanwhile never gives (see
// session.StopLocalIf), and it took the whole timeout.
func TestStopDuringTakeovers(t *testing.T) {
	bin := buildNode(t)
	// The member that takes over the sessions of a member killed (SIGKILL),
	// stopped just after it restored the first of them.
	t.Run("after a kill", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl := startCluster(ctx, t, clustertest.Config{Node: bin})
		a, b := startNode(ctx, t, cl), startNode(ctx, t, cl)
		playingGuilds(ctx, t, cl)
		mark := len(b.Output())
		if err := a.Kill(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the survivor restoring the killed member's sessions", func() bool {
			return strings.Contains(b.Output()[mark:], `msg="session restored"`)
		})
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		took := stopInTime(t, b)
		out := b.Output()[mark:]
		t.Logf("stopped in %s; %d sessions restored and %d players taken over before",
			took.Round(time.Millisecond), strings.Count(out, `msg="session restored"`), strings.Count(out, `msg="took over the previous player"`))
	})
	// A rolling restart, as TestTwoNodesShareTheGuildsAndFailOver's: the
	// member that joined, stopped just after the member it replaces
	// exited (SIGTERM), while it takes that member's sessions over.
	t.Run("after a stop", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl := startCluster(ctx, t, clustertest.Config{Node: bin})
		b := startNode(ctx, t, cl)
		playingGuilds(ctx, t, cl)
		c := startNode(ctx, t, cl)
		// Its share of the sessions, taken over as it joined.
		waitFor(t, "the new member waking its sessions", func() bool {
			return strings.Contains(c.Output(), `msg="stored sessions woken"`)
		})
		mark := len(c.Output())
		stopped := make(chan error, 1)
		go func() { stopped <- b.Stop(time.Minute) }()
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(c.Output()[mark:], `msg="session restored"`) {
			if time.Now().After(deadline) {
				t.Fatal("the new member never restored the stopped member's sessions")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		took := stopInTime(t, c)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		out := c.Output()[mark:]
		t.Logf("stopped in %s; %d sessions restored and %d players taken over before",
			took.Round(time.Millisecond), strings.Count(out, `msg="session restored"`), strings.Count(out, `msg="took over the previous player"`))
	})
	// A member stopped just as another joins: protoactor stops the
	// activations the join moved away from it, its hand-over stores them,
	// and its drain begins meanwhile.
	t.Run("during a join", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl := startCluster(ctx, t, clustertest.Config{Node: bin})
		b := startNode(ctx, t, cl)
		playingGuilds(ctx, t, cl)
		c, err := cl.StartNode()
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the new member in etcd", func() bool {
			return strings.Contains(c.Output(), `msg="joined the cluster in etcd"`)
		})
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		stopInTime(t, b)
		if err := c.WaitReady(ctx, "discord", "lavalink"); err != nil {
			t.Fatal(err)
		}
		stopInTime(t, c)
	})
}

// TestHandOverEndsWhenSessionsStopFirst: when a member joins, protoactor
// stops at once the activations the join moved away from a member (its
// placement actor poisons them), while the member's own hand-over asks
// them to store and stop. The hand-over must end as soon as they have
// stopped, whoever stopped them: it used to wait for an answer they never
// gave, for node.shutdown_timeout, and the member's work on the membership
// change (waking the sessions it now owns) waited as long.
func TestHandOverEndsWhenSessionsStopFirst(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := startCluster(ctx, t, clustertest.Config{Node: bin})
	b := startNode(ctx, t, cl)
	playingGuilds(ctx, t, cl)
	mark := len(b.Output())
	startNode(ctx, t, cl)
	// After a membership change b hands over what moved, then wakes the
	// sessions it still owns (it owns some of the twenty but for a chance
	// of 2^-20): the wake's line marks the hand-over's end, which used to
	// come after node.shutdown_timeout, with its error logged.
	var after []string
	waitFor(t, "b to wake its sessions after the join", func() bool {
		after = strings.Split(b.Output()[mark:], "\n")
		for _, l := range after {
			if strings.Contains(l, `msg="stored sessions woken"`) {
				return true
			}
		}
		return false
	})
	for _, l := range after {
		if strings.Contains(l, `msg="stored sessions woken"`) {
			break
		}
		if strings.Contains(l, `msg="sessions handed over"`) && !strings.Contains(l, "err=<nil>") {
			t.Fatalf("hand-over of the sessions the join moved: %s", l)
		}
	}
}
