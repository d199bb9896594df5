//go:build !race

package node

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// failoverWorld is one node with three Lavalink nodes and n guilds, each
// with a listener in voice and a track playing through the real session
// grains.
type failoverWorld struct {
	w      *world
	emus   map[string]*lavalinkemu.Emulator
	guilds []discordemu.Snowflake
}

func sessionsFromEnv(def int) int {
	if v, err := strconv.Atoi(os.Getenv("POOL_E2E_SESSIONS")); err == nil && v > 0 {
		return v
	}
	return def
}

func newFailoverWorld(t testing.TB, n int) *failoverWorld {
	t.Helper()
	// The emulators outlive the world's 40 s context.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	d, err := discordemu.Start(ctx, discordemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	emus := map[string]*lavalinkemu.Emulator{}
	for _, name := range []string{"emu", "emu2", "emu3"} {
		l, err := lavalinkemu.Start(ctx, lavalinkemu.Config{Password: lavalinkPassword, PlayerUpdateInterval: 200 * time.Millisecond, MaxRecordedRequests: 1000})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		emus[name] = l
	}
	w := newWorld(t, worldOpts{discord: d, lava: emus["emu"]})
	w.stop()
	// Discord allows 120 gateway sends a minute per shard, and every
	// voice join is one: spread the guilds over enough shards.
	shards := max(1, (n+99)/100*2)
	w.cfg.Discord.ShardCount = shards
	for _, name := range []string{"emu2", "emu3"} {
		w.cfg.Lavalink.Nodes = append(w.cfg.Lavalink.Nodes, w.cfg.Lavalink.Nodes[0])
		last := &w.cfg.Lavalink.Nodes[len(w.cfg.Lavalink.Nodes)-1]
		last.Name, last.Address = name, emus[name].Addr()
	}
	w.start()
	fw := &failoverWorld{w: w, emus: emus}
	poll(t, "three Lavalink nodes usable", func() bool {
		ns, err := w.node.audio.Nodes(context.Background())
		up := 0
		for _, s := range ns {
			if s.Up {
				up++
			}
		}
		return err == nil && up == 3
	})

	var ixs []*discordemu.Interaction
	for i := range n {
		g, text, voice, user := discordemu.SnowflakeForShard(i%shards, shards), discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake()
		err := d.AddGuild(discordemu.Guild{ID: g, Name: fmt.Sprint("guild ", i),
			Channels: []discordemu.Channel{{ID: text, Name: "music", Type: discordemu.ChannelText}, {ID: voice, Name: "Lounge", Type: discordemu.ChannelVoice}},
			Members:  []discordemu.Member{{User: discordemu.User{ID: user, Username: fmt.Sprint("listener", i)}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.JoinVoice(g, user, voice); err != nil {
			t.Fatal(err)
		}
		fw.guilds = append(fw.guilds, g)
		ix, err := d.InvokeCommand(g, user, text, "play", discordemu.StringOption("query", fmt.Sprint("failover anthem ", i)))
		if err != nil {
			t.Fatal(err)
		}
		ixs = append(ixs, ix)
	}
	for i, ix := range ixs {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := ix.Wait(wctx)
		cancel()
		if err != nil {
			t.Fatalf("/play %d: %v", i, err)
		}
		if r.Ephemeral() {
			t.Fatalf("/play %d refused: %q", i, r.Content)
		}
	}
	poll(t, "every guild playing", func() bool { return len(fw.playing()) == n })
	return fw
}

// playing maps each guild to its single playing player (guilds with none
// or with two players are left out) and the emulator holding it.
func (fw *failoverWorld) playing() map[uint64]struct {
	node string
	p    lavalinkemu.PlayerInfo
} {
	type np = struct {
		node string
		p    lavalinkemu.PlayerInfo
	}
	count := map[uint64]int{}
	out := map[uint64]np{}
	for name, e := range fw.emus {
		for _, p := range e.Players("") {
			count[p.GuildID]++
			if p.Track != nil && p.Connected && !p.Paused {
				out[p.GuildID] = np{name, p}
			}
		}
	}
	for g, c := range count {
		if c != 1 {
			delete(out, g)
		}
	}
	return out
}

type nodeFailover struct {
	moved                 int
	resumeMs, posErrMs    []float64
	lastResumedMs, maxErr float64
}

// killBusiest kills the Lavalink node with the most players and measures
// each of its guilds until it plays on a survivor.
func (fw *failoverWorld) killBusiest(t testing.TB) nodeFailover {
	t.Helper()
	// Every player has played a while, so its session has had player
	// updates (every 200 ms) to know its position from.
	poll(t, "every player 500 ms in", func() bool {
		ps := fw.playing()
		for _, v := range ps {
			if v.p.Position < 500 {
				return false
			}
		}
		return len(ps) == len(fw.guilds)
	})
	before := fw.playing()
	per := map[string]int{}
	for _, v := range before {
		per[v.node]++
	}
	victim := ""
	for n, c := range per {
		if victim == "" || c > per[victim] {
			victim = n
		}
	}
	pos := map[uint64]int64{}
	for _, p := range fw.emus[victim].Players("") {
		pos[p.GuildID] = p.Position
	}
	killAt := time.Now()
	fw.emus[victim].Kill()
	res := nodeFailover{moved: len(pos)}
	seen := map[uint64]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < len(pos) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions resumed after 30 s", len(seen), len(pos))
		}
		now := time.Now()
		for g, v := range fw.playing() {
			at, ok := pos[g]
			if !ok || seen[g] || v.node == victim {
				continue
			}
			seen[g] = true
			res.resumeMs = append(res.resumeMs, float64(now.Sub(killAt).Microseconds())/1000)
			res.posErrMs = append(res.posErrMs, float64(v.p.Position-(at+now.Sub(killAt).Milliseconds())))
		}
		time.Sleep(5 * time.Millisecond)
	}
	sort.Float64s(res.resumeMs)
	res.lastResumedMs = res.resumeMs[len(res.resumeMs)-1]
	for _, e := range res.posErrMs {
		res.maxErr = math.Max(res.maxErr, math.Abs(e))
	}
	// None lost: every guild still has exactly one playing player.
	if got := len(fw.playing()); got != len(fw.guilds) {
		t.Fatalf("%d of %d guilds playing after the kill", got, len(fw.guilds))
	}
	return res
}

func absAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Abs(x)
	}
	sort.Float64s(out)
	return out
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(p*float64(len(sorted)-1)+0.5), len(sorted)-1)]
}

// TestPoolKill200SessionsNode: 200 guilds play through real session grains
// on three Lavalink nodes; killing the busiest moves every one of its
// sessions to the survivors, each within 1 s of its position, none lost.
// Positions are observed by polling the emulators (5 ms), so the resume
// times include up to that much polling delay.
func TestPoolKill200SessionsNode(t *testing.T) {
	n := sessionsFromEnv(200)
	fw := newFailoverWorld(t, n)
	r := fw.killBusiest(t)
	sort.Float64s(r.resumeMs)
	errs := absAll(r.posErrMs)
	t.Logf("%d sessions, %d on the killed node; kill→resumed p50 %.0f ms p99 %.0f ms, last %.0f ms; |position error| p50 %.0f ms p99 %.0f ms max %.0f ms",
		n, r.moved, pct(r.resumeMs, .5), pct(r.resumeMs, .99), r.lastResumedMs, pct(errs, .5), pct(errs, .99), r.maxErr)
	if r.maxErr > 1000 {
		t.Fatalf("a session resumed %.0f ms off its position", r.maxErr)
	}
}

// BenchmarkPoolFailover200Node reports, over b.N kills of the busiest of
// three Lavalink nodes under 200 sessions played by real session grains,
// kill → last player resumed (p50/p99 over kills), per-player resume
// times and the position error.
//
//	go test -run '^$' -bench PoolFailover200Node -benchtime 5x ./internal/node/
func BenchmarkPoolFailover200Node(b *testing.B) {
	n := sessionsFromEnv(200)
	var last, resume, errs []float64
	for range b.N {
		b.StopTimer()
		fw := newFailoverWorld(b, n)
		b.StartTimer()
		r := fw.killBusiest(b)
		last = append(last, r.lastResumedMs)
		resume = append(resume, r.resumeMs...)
		errs = append(errs, r.posErrMs...)
		b.StopTimer()
		fw.w.stop()
	}
	sort.Float64s(last)
	sort.Float64s(resume)
	ae := absAll(errs)
	b.ReportMetric(pct(last, .5), "last-resumed-p50-ms")
	b.ReportMetric(pct(last, .99), "last-resumed-p99-ms")
	b.ReportMetric(pct(resume, .5), "resume-p50-ms")
	b.ReportMetric(pct(resume, .99), "resume-p99-ms")
	b.ReportMetric(pct(ae, .5), "poserr-p50-ms")
	b.ReportMetric(pct(ae, .99), "poserr-p99-ms")
	b.Logf("%d kills, %d moved sessions; last resumed per kill %v ms; |position error| max %.0f ms", len(last), len(resume), last, pct(ae, 1))
}
