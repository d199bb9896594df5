//go:build !race

// End-to-end tests of the Lavalink pool inside a whole node (real session
// grains, disgo and disgolink against the emulators). Without -race for
// the reasons in world_test.go; the pool's own concurrency is tested with
// -race in actors/lavalink and actors/supervisor.

package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/admin"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// startWithoutAudio starts the world's node like world.start, but waits
// only for Discord and the commands: its Lavalink nodes are down.
func startWithoutAudio(w *world) {
	w.t.Helper()
	w.logs = &strings.Builder{}
	var out io.Writer = &syncWriter{b: w.logs}
	if os.Getenv("E2E_LOGS") != "" {
		out = io.MultiWriter(out, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := Start(w.ctx, w.cfg, Options{Log: log, GatewayOpts: []gateway.ConfigOpt{
		gateway.WithIdentifyRateLimiter(gateway.NewNoopIdentifyRateLimiter()),
	}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.node = n
	w.t.Cleanup(func() { w.stop() })
	poll(w.t, "discord ready", func() bool { return n.Readiness().Snapshot().Components[compDiscord].Ready })
	poll(w.t, "commands registered", func() bool { return len(w.discord.Commands(0)) > 0 })
}

func readyz(t *testing.T, w *world) (int, admin.Report) {
	t.Helper()
	resp, err := http.Get("http://" + w.node.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep admin.Report
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("readyz %q: %v", b, err)
	}
	return resp.StatusCode, rep
}

// TestPoolAllNodesDown: a node that starts while every Lavalink node is
// down answers /play with a clear "no audio node" error and says so on
// /readyz; when a node appears, the stored session's music starts by
// itself, without a restart.
func TestPoolAllNodesDown(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.join(w.listener, w.voice)
	w.run(w.listener, "play", discordemu.StringOption("query", "survivor song"))
	before := w.player(playing(""))

	w.lava.Kill()
	w.stop()
	startWithoutAudio(w)

	code, rep := readyz(t, w)
	detail := rep.Components[compLavalink].Detail
	if code != http.StatusServiceUnavailable || rep.Components[compLavalink].Ready || !strings.Contains(detail, "no audio node available") {
		t.Fatalf("/readyz %d, lavalink %+v", code, rep.Components[compLavalink])
	}
	r := w.run(w.listener, "play", discordemu.StringOption("query", "another song"))
	wantRefusal(t, r, "no audio node is available")

	if err := w.lava.Restart(); err != nil {
		t.Fatal(err)
	}
	// By itself, within the two backoffs: the pool's reconnection to
	// the node (up to 30 s apart) and the session's play retries (up to
	// 15 s apart).
	after := w.playerWithin(time.Minute, func(p lavalinkemu.PlayerInfo) bool {
		return playing("")(p) && p.Track.Info.Identifier == before.Track.Info.Identifier
	})
	t.Logf("playback resumed by itself at %d ms", after.Position)
	waitFor(t, "/readyz ready", func() bool { c, _ := readyz(t, w); return c == http.StatusOK })
}

// allPlayers finds the guild's players on every emulator.
func allPlayers(w *world, emus map[string]*lavalinkemu.Emulator) map[string]lavalinkemu.PlayerInfo {
	out := map[string]lavalinkemu.PlayerInfo{}
	for name, e := range emus {
		for _, p := range e.Players("") {
			if p.GuildID == uint64(w.guild) {
				out[name] = p
			}
		}
	}
	return out
}

// withSecondNode restarts the world's node with a second Lavalink node.
func withSecondNode(t *testing.T, w *world, breaker *config.Breaker) map[string]*lavalinkemu.Emulator {
	t.Helper()
	l2, err := lavalinkemu.Start(w.ctx, lavalinkemu.Config{Password: lavalinkPassword, PlayerUpdateInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l2.Close)
	w.stop()
	w.cfg.Lavalink.Nodes = append(w.cfg.Lavalink.Nodes, config.LavalinkNode{Name: "emu2", Address: l2.Addr(), Password: secret.New(lavalinkPassword)})
	if breaker != nil {
		w.cfg.Lavalink.Breaker = *breaker
	}
	w.start()
	waitFor(t, "both Lavalink nodes usable", func() bool {
		ns, err := w.node.audio.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, n := range ns {
			if !n.Up || n.Breaker != supervisor.Closed {
				return false
			}
		}
		return true
	})
	return map[string]*lavalinkemu.Emulator{"emu": w.lava, "emu2": l2}
}

// TestPoolKillNodeMovesSession: the real session grain moves its player
// when the Lavalink node playing it dies, at its position (within 1 s).
func TestPoolKillNodeMovesSession(t *testing.T) {
	w := newWorld(t, worldOpts{})
	emus := withSecondNode(t, w, nil)
	w.join(w.listener, w.voice)
	w.run(w.listener, "play", discordemu.StringOption("query", "failover song"))
	w.run(w.listener, "play", discordemu.StringOption("query", "queued song"))
	var victim string
	var cur lavalinkemu.PlayerInfo
	waitFor(t, "playing past 1.5 s", func() bool {
		for name, p := range allPlayers(w, emus) {
			if playing("")(p) && p.Position >= 1500 {
				victim, cur = name, p
				return true
			}
		}
		return false
	})
	queue := queueText(w)
	killedAt := time.Now()
	emus[victim].Kill()
	var moved lavalinkemu.PlayerInfo
	var movedAt time.Time
	waitFor(t, "the player on the surviving node", func() bool {
		for name, p := range allPlayers(w, emus) {
			if name != victim && playing("")(p) && p.Track.Info.Identifier == cur.Track.Info.Identifier {
				moved, movedAt = p, time.Now()
				return true
			}
		}
		return false
	})
	expected := cur.Position + movedAt.Sub(killedAt).Milliseconds()
	t.Logf("moved after %v at %d ms, expected %d ms (error %+d ms)", movedAt.Sub(killedAt).Round(time.Millisecond), moved.Position, expected, moved.Position-expected)
	if d := moved.Position - expected; d < -1000 || d > 1000 {
		t.Fatalf("resumed %d ms off its position", d)
	}
	if moved.Voice.SessionID != cur.Voice.SessionID || moved.Volume != cur.Volume || moved.Paused != cur.Paused {
		t.Fatalf("state not restored: before %+v after %+v", cur, moved)
	}
	if got := queueText(w); got != queue {
		t.Fatalf("queue changed:\n%s\nwant:\n%s", got, queue)
	}
}

// TestPoolBreakerThroughNode: a node answering 5xx opens its breaker
// (published to subscribers and in /metrics), the session moves off it,
// and after it heals the probe closes it again.
func TestPoolBreakerThroughNode(t *testing.T) {
	w := newWorld(t, worldOpts{})
	br := config.Breaker{Window: 10 * time.Second, FailureRatio: 0.5, MinRequests: 3, ResetTimeout: 500 * time.Millisecond}
	emus := withSecondNode(t, w, &br)
	changes := make(chan supervisor.Change, 64)
	cancel := w.node.audio.Subscribe(func(c supervisor.Change) { changes <- c })
	defer cancel()
	w.join(w.listener, w.voice)
	w.run(w.listener, "play", discordemu.StringOption("query", "breaker song"))
	var victim string
	waitFor(t, "playing", func() bool {
		for name, p := range allPlayers(w, emus) {
			if playing("")(p) {
				victim = name
				return true
			}
		}
		return false
	})
	emus[victim].FailREST(1<<30, 503)
	// Requests of the session fail now: each /volume is one failure for
	// the breaker (health polls add theirs every 5 s).
	w.join(w.dj, w.voice)
	opened := false
	for i := 0; i < 10 && !opened; i++ {
		w.run(w.dj, "volume", discordemu.IntOption("level", int64(50+i)))
		select {
		case c := <-changes:
			opened = c.Node == victim && c.To == supervisor.Open
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !opened {
		t.Fatal("ten failed requests did not open the breaker")
	}
	next := func(want supervisor.State) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case c := <-changes:
				if c.Node == victim && c.To == want {
					return
				}
			case <-deadline:
				t.Fatalf("no transition to %v", want)
			}
		}
	}
	if !strings.Contains(metricsText(t, w), `ensemble_lavalink_breaker_state{node="`+victim+`"} 2`) {
		t.Fatalf("metrics do not show %s open", victim)
	}
	waitFor(t, "the session moved off the failing node", func() bool {
		for name, p := range allPlayers(w, emus) {
			if name != victim && playing("")(p) {
				return true
			}
		}
		return false
	})
	next(supervisor.HalfOpen)
	emus[victim].FailREST(0, 0)
	next(supervisor.Closed)
	m := metricsText(t, w)
	for _, s := range []string{
		`ensemble_lavalink_breaker_state{node="` + victim + `"} 0`,
		`ensemble_lavalink_breaker_transitions_total{from="closed",node="` + victim + `",to="open"} 1`,
		`ensemble_lavalink_breaker_transitions_total{from="half-open",node="` + victim + `",to="closed"} 1`,
		`ensemble_lavalink_player_migrations_total{from="` + victim + `"`,
	} {
		if !strings.Contains(m, s) {
			t.Fatalf("/metrics lacks %s", s)
		}
	}
}

func metricsText(t *testing.T, w *world) string {
	t.Helper()
	resp, err := http.Get("http://" + w.node.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
