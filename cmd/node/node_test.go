package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildNode builds the node binary with the extra go build flags (-race
// where the test's own run has it and the node talks to no emulator).
func buildNode(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "node")
	args := append(append([]string{"build"}, flags...), "-o", bin, ".")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// emulated is the Discord and Lavalink emulators with one guild (a text
// and a voice channel) and one listener in it, as the process tests use
// them. Both emulators close when the test ends.
type emulated struct {
	dc                       *discordemu.Emulator
	lava                     *lavalinkemu.Emulator
	guild, text, voice, user discordemu.Snowflake
}

func startEmulated(ctx context.Context, t *testing.T, lavaCfg lavalinkemu.Config) emulated {
	t.Helper()
	dc, err := discordemu.Start(ctx, discordemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Close)
	lavaCfg.Password = lavalinkSecret
	lava, err := lavalinkemu.Start(ctx, lavaCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lava.Close)
	e := emulated{dc: dc, lava: lava, guild: discordemu.SnowflakeForShard(0, 1),
		text: discordemu.NewSnowflake(), voice: discordemu.NewSnowflake(), user: discordemu.NewSnowflake()}
	if err := dc.AddGuild(discordemu.Guild{ID: e.guild, Channels: []discordemu.Channel{
		{ID: e.text, Name: "music", Type: discordemu.ChannelText}, {ID: e.voice, Name: "Lounge", Type: discordemu.ChannelVoice},
	}, Members: []discordemu.Member{{User: discordemu.User{ID: e.user, Username: "listener"}}}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// cleanEnv is the test's environment without any real secret variables, so
// the node sees exactly the ones a test sets.
func cleanEnv(extra ...string) []string { return clustertest.Env(extra...) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestNodeLifecycle runs the real binary with the repository's default
// cluster.yaml and no Discord token or Lavalink server.
func TestNodeLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     []string
		discord string
	}{
		{"no token", nil, "not configured"},
		// Known fake secrets: none may appear in any output.
		{"with secrets", []string{"DISCORD_TOKEN=MTIzNDU2Nzg5MDEyMzQ1Njc4.fake-known.SECRET-d1sc0rd", "LAVALINK_PASSWORD=SECRET-l4v4link"}, "connecting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := buildNode(t, "-race")
			addr := freeAddr(t)
			var out bytes.Buffer
			cmd := exec.Command(bin, "--config", loopbackConfig(t), "--admin-addr", addr, "--log-format", "json")
			cmd.Env = cleanEnv(tc.env...)
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

			base := "http://" + addr
			deadline := time.Now().Add(30 * time.Second)
			for {
				res, err := http.Get(base + "/healthz")
				if err == nil {
					res.Body.Close()
					if res.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("node never answered /healthz; output:\n%s", out.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The cluster becomes ready after protoactor's start-up sleep.
			var rep struct {
				Ready      bool
				Unready    []string
				Components map[string]struct {
					Ready  bool
					Detail string
				}
			}
			for {
				code, body := get(t, base+"/readyz")
				if code != http.StatusServiceUnavailable {
					t.Fatalf("/readyz = %d %s, want 503", code, body)
				}
				if err := json.Unmarshal([]byte(body), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Components["cluster"].Ready {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cluster never ready: %s", body)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if strings.Join(rep.Unready, ",") != "discord,lavalink" {
				t.Fatalf("unready = %v, want discord and lavalink", rep.Unready)
			}
			if d := rep.Components["discord"].Detail; d != tc.discord {
				t.Fatalf("discord detail = %q, want %q", d, tc.discord)
			}
			code, metrics := get(t, base+"/metrics")
			if code != 200 || !strings.Contains(metrics, "\ngo_goroutines ") || !strings.Contains(metrics, "\nprotoactor_") {
				t.Fatalf("/metrics = %d, missing go_goroutines or protoactor_ series", code)
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("node did not exit after SIGTERM; output:\n%s", out.String())
			}
			all := out.String() + metrics
			for _, kv := range tc.env {
				secret := strings.SplitN(kv, "=", 2)[1]
				if strings.Contains(all, secret) || strings.Contains(all, "SECRET-") {
					t.Fatalf("a secret appears in the node's output")
				}
			}
			if !strings.Contains(out.String(), `"msg":"stopped"`) {
				t.Fatalf("no clean stop logged:\n%s", out.String())
			}
		})
	}
}

// loopbackConfig is the default cluster.yaml with Discord's endpoints on a
// closed loopback port: a node with a token must never dial the real
// Discord from a test.
func loopbackConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	closed := freeAddr(t)
	s := strings.Replace(string(b), `rest_url: ""`, `rest_url: "http://`+closed+`/api/v10"`, 1)
	s = strings.Replace(s, `gateway_url: ""`, `gateway_url: "ws://`+closed+`/gateway"`, 1)
	s = strings.Replace(s, "path: data/ensemble.db", "path: "+filepath.Join(t.TempDir(), "ensemble.db"), 1)
	if s == string(b) {
		t.Fatal("cluster.yaml no longer has the fields this test rewrites")
	}
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInvocationExits2WithOneLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile("../../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"shard count 0", []string{"--config", write("shards.yaml", strings.Replace(string(good), "shard_count: 1", "shard_count: 0", 1))}, "discord.shard_count"},
		{"unknown field", []string{"--config", write("unknown.yaml", string(good)+"extra: 1\n")}, "field extra not found"},
		{"bad provider", []string{"--config", write("provider.yaml", strings.Replace(string(good), "provider: single", "provider: consul", 1))}, "cluster.provider"},
		{"missing file", []string{"--config", filepath.Join(dir, "absent.yaml")}, "absent.yaml"},
		{"bad admin flag", []string{"--config", "../../cluster.yaml", "--admin-addr", "127.0.0.1:70000"}, "node.admin_addr"},
		{"bad advertise flag", []string{"--config", "../../cluster.yaml", "--advertise-addr", "0.0.0.0:7000"}, "cluster.advertise_addr"},
		{"bad log format", []string{"--log-format", "xml"}, "log format"},
		{"unknown flag", []string{"--nope"}, "nope"},
		{"stray argument", []string{"extra"}, "unexpected argument"},
		{"nodes without sandbox", []string{"--nodes", "3"}, "--nodes 3: only with --sandbox"},
		{"too many sandbox nodes", []string{"--sandbox", "--nodes", "12"}, "--nodes 12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, io.Discard, &stderr, func(string) string { return "" })
			if code != exitUsage {
				t.Fatalf("exit code %d, want %d; stderr %q", code, exitUsage, stderr.String())
			}
			out := strings.TrimSpace(stderr.String())
			if tc.name != "unknown flag" && strings.Count(out, "\n") != 0 {
				t.Fatalf("want one line, got %q", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("stderr %q does not mention %q", out, tc.want)
			}
		})
	}
}
