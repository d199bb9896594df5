package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestProcessRestartKeepsTheMusic kills the node process (SIGKILL) in the
// middle of a track and starts a new one on the same store, with each
// store: the queue is intact and the track resumes where it would have
// been. The emulators live in this test process; the node binary is built
// without -race because disgo's gateway races inside the library.
const lavalinkSecret = "SECRET-lavalink-password-4242"

func TestProcessRestartKeepsTheMusic(t *testing.T) {
	bin := buildNode(t)
	for _, storeKind := range []string{"bbolt", "redis"} {
		t.Run(storeKind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			e := startEmulated(ctx, t, lavalinkemu.Config{PlayerUpdateInterval: 200 * time.Millisecond})
			dc, lava, guild, text, voice, user := e.dc, e.lava, e.guild, e.text, e.voice, e.user

			storeYAML := "store: {kind: bbolt, bbolt: {path: " + filepath.Join(t.TempDir(), "ensemble.db") + "}}"
			if storeKind == "redis" {
				storeYAML = "store: {kind: redis, redis: {addr: " + testserver.StartRedis(t).Addr + "}}"
			}
			cfgPath := filepath.Join(t.TempDir(), "cluster.yaml")
			cfg := fmt.Sprintf(`node: {admin_addr: "127.0.0.1:0"}
%s
discord: {rest_url: %q, gateway_url: %q}
lavalink: {nodes: [{name: emu, address: %q}]}
limits: {command_cooldown: 0s, user_commands: 0, guild_commands: 0, shard_max_lag: 2500ms}
`, storeYAML, dc.RESTURL(), dc.GatewayURL(), lava.Addr())
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}

			start := func() (*exec.Cmd, *bytes.Buffer) {
				t.Helper()
				addr := freeAddr(t)
				var out bytes.Buffer
				// At debug level, the most a node prints (libraries stay
				// floored at INFO/WARN), all searched for the secrets below.
				cmd := exec.Command(bin, "--config", cfgPath, "--admin-addr", addr, "--log-level", "debug")
				cmd.Env = cleanEnv("DISCORD_TOKEN="+dc.Token(), "LAVALINK_PASSWORD="+lavalinkSecret)
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					res, err := http.Get("http://" + addr + "/readyz")
					if err == nil {
						res.Body.Close()
						if res.StatusCode == 200 {
							return cmd, &out
						}
					}
					if time.Now().After(deadline) {
						_ = cmd.Process.Kill()
						_ = cmd.Wait()
						t.Fatalf("node never ready:\n%s", out.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			var interactions []string
			answer := func(name string, opts ...discordemu.Option) string {
				t.Helper()
				ix, err := dc.InvokeCommand(guild, user, text, name, opts...)
				if err != nil {
					t.Fatal(err)
				}
				interactions = append(interactions, ix.Token)
				wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
				defer wcancel()
				res, err := ix.Wait(wctx)
				if err != nil {
					t.Fatalf("/%s: %v", name, err)
				}
				if res.Type == discordemu.ResponseDeferredMessage {
					msg, err := ix.WaitAnswer(wctx)
					if err != nil {
						t.Fatal(err)
					}
					return fmt.Sprint(msg.Content, msg.Embeds)
				}
				return fmt.Sprint(res.Content, res.Embeds)
			}
			player := func(cond func(lavalinkemu.PlayerInfo) bool) lavalinkemu.PlayerInfo {
				t.Helper()
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					for _, s := range lava.Sessions() {
						for _, p := range lava.Players(s.ID) {
							if p.GuildID == uint64(guild) && cond(p) {
								return p
							}
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				t.Fatal("player never reached the expected state")
				return lavalinkemu.PlayerInfo{}
			}
			playingAt := func(min int64) func(lavalinkemu.PlayerInfo) bool {
				return func(p lavalinkemu.PlayerInfo) bool {
					return p.Track != nil && p.Connected && !p.Paused && p.Position >= min
				}
			}

			node, out := start()
			outputs := []*bytes.Buffer{out}
			if err := dc.JoinVoice(guild, user, voice); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			for _, q := range []string{"first song", "second song", "third song"} {
				answer("play", discordemu.StringOption("query", q))
			}
			queueBefore := answer("queue")
			before := player(playingAt(1500))

			killedAt := time.Now()
			if err := node.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = node.Wait()

			node, out = start()
			outputs = append(outputs, out)
			defer func() {
				_ = node.Process.Signal(syscall.SIGTERM)
				_ = node.Wait()
				// Secrets never appear in any output (SECURITY.md), even
				// at debug level: the bot token, the Lavalink password,
				// and interaction tokens.
				for _, o := range outputs {
					if !strings.Contains(o.String(), "msg=\"cluster member started\"") {
						t.Errorf("node output not captured; the secret check below would prove nothing")
					}
					for _, secret := range []string{dc.Token(), lavalinkSecret} {
						if strings.Contains(o.String(), secret) {
							t.Errorf("a secret appears in the node's output")
						}
					}
					for _, ix := range interactions {
						if strings.Contains(o.String(), ix) {
							t.Errorf("an interaction token appears in the node's output")
						}
					}
				}
				if t.Failed() {
					t.Logf("node output:\n%s", out.String())
				}
			}()
			after := player(func(p lavalinkemu.PlayerInfo) bool {
				return playingAt(0)(p) && p.SessionID != before.SessionID
			})
			if after.Track.Info.Identifier != before.Track.Info.Identifier {
				t.Fatalf("after restart playing %s, want %s", after.Track.Info.Identifier, before.Track.Info.Identifier)
			}
			// The killed process's session waits for a resume (until its
			// timeout) with its player playing on: the new activation took
			// that player over (destroyed it) before creating its own, so
			// the guild has one player, not two fighting over the voice
			// connection.
			var guildPlayers []lavalinkemu.PlayerInfo
			for _, p := range lava.Players("") {
				if p.GuildID == uint64(guild) {
					guildPlayers = append(guildPlayers, p)
				}
			}
			if len(guildPlayers) != 1 || guildPlayers[0].SessionID != after.SessionID {
				t.Fatalf("players of the guild after the restart: %+v (the new one is in session %s, the killed process's in %s)",
					guildPlayers, after.SessionID, before.SessionID)
			}
			expected := before.Position + time.Since(killedAt).Milliseconds()
			diff := after.Position - expected
			t.Logf("resumed at %d ms, expected about %d ms (error %+d ms)", after.Position, expected, diff)
			if diff < -2000 || diff > 2000 {
				t.Fatalf("resumed %d ms away from where the track would be", diff)
			}
			q := answer("queue")
			for _, title := range []string{"second song", "third song"} {
				if !strings.Contains(queueBefore, title) || !strings.Contains(q, title) {
					t.Fatalf("%q missing from the queue; after restart:\n%s\nbefore:\n%s", title, q, queueBefore)
				}
			}
		})
	}
}
