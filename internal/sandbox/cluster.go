package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// ClusterOptions tune a cluster sandbox run.
type ClusterOptions struct {
	// Nodes is how many members to run (at least 2).
	Nodes int
	// Node is the cmd/node binary the members run (the sandbox's own).
	Node string
	// Pause between script steps, so a person can follow.
	Pause time.Duration
}

// ErrMissingServers is a cluster sandbox on a machine without etcd or
// redis-server.
var ErrMissingServers = errors.New("the cluster sandbox runs a throwaway etcd and Redis: install them first (Debian: apt-get install etcd-server redis-server, or make deps)")

// RunCluster runs opts.Nodes members as processes (etcd membership, Redis
// store, a throwaway etcd and Redis on loopback) against the emulators:
// a listener queues two tracks, the member playing them is killed
// mid-track, and the listener hears the music go on from another member
// at the same position, with the queue intact.
func RunCluster(ctx context.Context, out io.Writer, o ClusterOptions) error {
	if o.Nodes < 2 {
		return fmt.Errorf("a cluster sandbox needs at least 2 nodes, not %d", o.Nodes)
	}
	for _, bin := range []string{"etcd", "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found: %w", bin, ErrMissingServers)
		}
	}
	dir, err := os.MkdirTemp("", "ensemble-sandbox-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(out, "Cluster sandbox: starting a throwaway etcd and Redis, the emulators, and %d members...\n", o.Nodes)
	c, err := clustertest.Start(ctx, clustertest.Config{Node: o.Node, Dir: dir, Shards: 2})
	if err != nil {
		return err
	}
	defer c.Close()
	guilds, err := c.Discord.AddLoadGuilds(1, 1)
	if err != nil {
		return err
	}
	g := guilds[0]
	for i := range o.Nodes {
		n, err := c.StartNode()
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = n.WaitReady(rctx, "discord", "lavalink")
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  member %d up (admin http://%s)\n", i+1, n.Admin)
	}
	s := clusterScript{ctx: ctx, out: out, c: c, g: g, pause: o.Pause}
	return s.run()
}

type clusterScript struct {
	ctx   context.Context
	out   io.Writer
	c     *clustertest.Cluster
	g     discordemu.LoadGuild
	pause time.Duration
}

func (s *clusterScript) say(format string, a ...any) {
	fmt.Fprintf(s.out, format+"\n", a...)
	time.Sleep(s.pause)
}

func (s *clusterScript) ask(name string, opts ...discordemu.Option) (string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	ix, err := s.c.Discord.InvokeCommand(s.g.ID, s.g.Members[0], s.g.Text, name, opts...)
	if err != nil {
		return "", err
	}
	res, err := ix.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("/%s: %w", name, err)
	}
	content, embeds := res.Content, res.Embeds
	if res.Type == discordemu.ResponseDeferredMessage {
		msg, err := ix.WaitAnswer(ctx)
		if err != nil {
			return "", fmt.Errorf("/%s: %w", name, err)
		}
		content, embeds = msg.Content, msg.Embeds
	}
	text := render(content, embeds, nil)
	s.say("\n» listener: /%s%s\n%s", name, optionText(opts), indent(text))
	return text, nil
}

// playing waits for the guild's one playing player whose session is live
// and not old.
func (s *clusterScript) playing(old string, limit time.Duration) (lavalinkemu.PlayerInfo, error) {
	ctx, cancel := context.WithTimeout(s.ctx, limit)
	defer cancel()
	var p lavalinkemu.PlayerInfo
	err := clustertest.Poll(ctx, func() bool {
		live := s.c.LiveSessions()
		for _, q := range s.c.Players()[uint64(s.g.ID)] {
			if live[q.SessionID] && q.SessionID != old {
				p = q
				return true
			}
		}
		return false
	})
	return p, err
}

func (s *clusterScript) run() error {
	if _, err := s.ask("play", discordemu.StringOption("query", "cluster anthem")); err != nil {
		return err
	}
	if _, err := s.ask("play", discordemu.StringOption("query", "second song")); err != nil {
		return err
	}
	p, err := s.playing("", 30*time.Second)
	if err != nil {
		return fmt.Errorf("waiting for the music: %w", err)
	}
	var victim *clustertest.Node
	for _, n := range s.c.Nodes() {
		if n.LavalinkSession() == p.SessionID {
			victim = n
		}
	}
	if victim == nil {
		return fmt.Errorf("no member holds Lavalink session %s", p.SessionID)
	}
	s.say("Playing %q on the member at %s.", p.Track.Info.Title, victim.Admin)
	time.Sleep(2 * time.Second) // a little way into the track
	if p, err = s.playing("", 10*time.Second); err != nil {
		return err
	}
	killedAt, was := time.Now(), p.Position
	if err := victim.Kill(); err != nil {
		return err
	}
	s.say("Killed that member (SIGKILL) at %s into the track. Listening...", ms(was))
	now, err := s.playing(p.SessionID, time.Minute)
	if err != nil {
		return fmt.Errorf("the music did not continue: %w", err)
	}
	took := time.Since(killedAt)
	s.say("The music continues from another member %.1f s after the kill: %q at %s (it was at %s, plus the %.1f s since).",
		took.Seconds(), now.Track.Info.Title, ms(now.Position), ms(was), took.Seconds())
	q, err := s.ask("queue")
	if err != nil {
		return err
	}
	if !strings.Contains(strings.ToLower(q), "second song") {
		return fmt.Errorf("the queue lost its second track: %s", q)
	}
	for _, n := range s.c.Nodes() {
		if n.Running() {
			if err := n.Stop(10 * time.Second); err != nil {
				return err
			}
		}
	}
	s.say("Sandbox finished.")
	return nil
}

func ms(v int64) string {
	return (time.Duration(v) * time.Millisecond).Round(100 * time.Millisecond).String()
}
