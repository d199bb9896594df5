package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// hungServer accepts TCP connections on loopback and never answers: a
// Lavalink node that hangs.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestShutdownAtAnyMoment stops the node process (SIGTERM) at different
// moments of its life — at once, while it starts, once it is up with one
// Lavalink node hung and another unreachable, and with music playing —
// and each time it exits 0: its stop, bounded by node.shutdown_timeout,
// completed.
func TestShutdownAtAnyMoment(t *testing.T) {
	// Without -race: the node talks to the emulators through disgo and
	// disgolink, which race inside the libraries (the race detector would
	// make the exit status 66).
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startEmulated(ctx, t, lavalinkemu.Config{})
	dc, lava, guild, text, voice, user := e.dc, e.lava, e.guild, e.text, e.voice, e.user
	if err := dc.JoinVoice(guild, user, voice); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "cluster.yaml")
	cfg := fmt.Sprintf(`node: {admin_addr: "127.0.0.1:0", shutdown_timeout: 5s}
store: {kind: bbolt, bbolt: {path: %q}}
discord: {rest_url: %q, gateway_url: %q}
lavalink: {nodes: [{name: hung, address: %q}, {name: closed, address: %q}, {name: emu, address: %q}]}
limits: {command_cooldown: 0s, user_commands: 0, guild_commands: 0, shard_max_lag: 2500ms}
`, filepath.Join(t.TempDir(), "ensemble.db"), dc.RESTURL(), dc.GatewayURL(), hungServer(t), freeAddr(t), lava.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, moment := range []struct {
		name string
		// reach waits for the moment to stop at (nil: at once).
		reach func(t *testing.T, admin string)
	}{
		{"while starting", func(t *testing.T, admin string) { waitHTTP(t, "http://"+admin+"/healthz") }},
		{"up, with a hung and an unreachable Lavalink node", func(t *testing.T, admin string) {
			waitReady(t, admin, "discord")
			waitReady(t, admin, "lavalink")
		}},
		{"with music playing", func(t *testing.T, admin string) {
			waitReady(t, admin, "discord")
			waitReady(t, admin, "lavalink")
			waitFor(t, "commands registered", func() bool { return len(dc.Commands(0)) > 0 })
			ix, err := dc.InvokeCommand(guild, user, text, "play", discordemu.StringOption("query", "last song"))
			if err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			defer wcancel()
			if _, err := ix.Wait(wctx); err != nil {
				t.Fatalf("no answer to /play: %v", err)
			}
			waitFor(t, "the track playing", func() bool {
				for _, p := range lava.Players("") {
					if p.GuildID == uint64(guild) && p.Track != nil {
						return true
					}
				}
				return false
			})
		}},
	} {
		t.Run(moment.name, func(t *testing.T) {
			admin := freeAddr(t)
			var out bytes.Buffer
			cmd := exec.Command(bin, "--config", cfgPath, "--admin-addr", admin, "--log-format", "json")
			cmd.Env = cleanEnv("DISCORD_TOKEN="+dc.Token(), "LAVALINK_PASSWORD="+lavalinkSecret)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-exited
				}
			}()
			if moment.reach != nil {
				moment.reach(t, admin)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("exit after SIGTERM %s: %v\n%s", moment.name, err, out.String())
				}
			case <-time.After(time.Minute):
				t.Fatalf("no exit after SIGTERM %s\n%s", moment.name, out.String())
			}
			if !strings.Contains(out.String(), `"msg":"stopped`) {
				t.Fatalf("no clean stop logged:\n%s", out.String())
			}
		})
	}
}

// waitHTTP waits until url answers at all.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	waitFor(t, url+" answering", func() bool {
		code, _ := tryGet(url)
		return code != 0
	})
}

// waitReady waits until /readyz says component is ready.
func waitReady(t *testing.T, admin, component string) {
	t.Helper()
	waitFor(t, component+" ready", func() bool {
		_, body := tryGet("http://" + admin + "/readyz")
		return strings.Contains(body, `"`+component+`":{"ready":true`)
	})
}

// tryGet is a GET that reports 0 when nothing answers.
func tryGet(url string) (int, string) {
	res, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitFor polls cond (a condition, not a duration) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
