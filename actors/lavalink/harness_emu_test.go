//go:build !race

// Tests and benchmarks of the pool against Lavalink emulators, driven by
// the real disgolink client. They run without -race: disgolink races
// internally (Makefile: node.go:274/330/318, node.go:115/235,
// node.go:111/360, player.go:133/211). The pool's own concurrency is
// covered by the -race tests that use no disgolink (pool_test.go,
// pool_actor_test.go, review_test.go, and fakelink_test.go, which runs the
// real node actors, Client, watchdog and sweeps against a fake
// lavalinkAPI).

package lavalink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

const emuPassword = "emu-pool-password"

// fakeSession does what the session grain does with its player (see
// actors/session/playback.go): it follows playerUpdates, and on NODE_LOST
// for its current node re-sends its track at the extrapolated position,
// retrying failed plays with backoff.
type fakeSession struct {
	guild string
	track music.Track
	voice audio.Voice

	pos   time.Duration
	posAt time.Time
	node  string
	// Filled on each successful play after a loss.
	resumedAt time.Time
	sentPos   time.Duration
	plays     int
	lost      int
	retries   int
}

type harness struct {
	t        testing.TB
	c        *Client
	reg      *prometheus.Registry
	emus     map[string]*lavalinkemu.Emulator
	ord      *ecluster.Ordered
	mu       sync.Mutex
	sessions map[string]*fakeSession
	changes  []supervisor.Change
	events   []*clusterpb.PlayerEvent
}

type harnessOpts struct {
	nodes   int
	emu     lavalinkemu.Config
	breaker config.Breaker
	timing  Timing
	// down lists nodes killed before the client starts.
	down []int
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, emus: map[string]*lavalinkemu.Emulator{}, sessions: map[string]*fakeSession{}, ord: ecluster.NewOrdered(8, 4096)}
	t.Cleanup(h.ord.Close)
	var nodes []config.LavalinkNode
	for i := range o.nodes {
		cfg := o.emu
		cfg.Password = emuPassword
		if cfg.PlayerUpdateInterval == 0 {
			cfg.PlayerUpdateInterval = 100 * time.Millisecond
		}
		if cfg.StatsInterval == 0 {
			cfg.StatsInterval = time.Second
		}
		cfg.MaxRecordedRequests = 1000
		e, err := lavalinkemu.Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		name := fmt.Sprintf("n%d", i)
		h.emus[name] = e
		nodes = append(nodes, config.LavalinkNode{Name: name, Address: e.Addr(), Password: secret.New(emuPassword)})
	}
	for _, i := range o.down {
		h.emus[fmt.Sprintf("n%d", i)].Kill()
	}
	br := o.breaker
	if br.Window == 0 {
		br = config.Default().Lavalink.Breaker
	}
	h.reg = prometheus.NewRegistry()
	var out = os.Stderr
	level := slog.LevelError
	if os.Getenv("POOL_LOGS") != "" {
		level = slog.LevelDebug
	}
	c, err := New(Options{
		BotUserID: "123456789012345678", Nodes: nodes, Breaker: br, RequestTimeout: 2 * time.Second,
		Log:        slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})),
		Registerer: h.reg, Timing: o.timing,
		OnEvent: func(ev *clusterpb.PlayerEvent) {
			h.ord.Submit(ev.GetGuildId(), func() { h.handle(ev) })
		},
		OnBreaker: func(ch supervisor.Change) {
			h.mu.Lock()
			h.changes = append(h.changes, ch)
			h.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	c.Start(ctx)
	t.Cleanup(c.Close)
	return h
}

func (h *harness) waitUsable(n int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d usable nodes", n), 10*time.Second, func() bool {
		nodes, err := h.c.Nodes(context.Background())
		if err != nil {
			return false
		}
		up := 0
		for _, s := range nodes {
			if s.Up && s.Breaker == supervisor.Closed {
				up++
			}
		}
		return up >= n
	})
}

func (h *harness) waitFor(what string, d time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) handle(ev *clusterpb.PlayerEvent) {
	h.mu.Lock()
	h.events = append(h.events, ev)
	s := h.sessions[ev.GetGuildId()]
	h.mu.Unlock()
	if s == nil {
		return
	}
	switch ev.GetKind() {
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE:
		if ev.GetTimeUnixMs() > 0 {
			h.mu.Lock()
			s.pos, s.posAt = time.Duration(ev.GetPositionMs())*time.Millisecond, time.UnixMilli(ev.GetTimeUnixMs())
			h.mu.Unlock()
		}
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST:
		h.mu.Lock()
		mine := ev.GetNode() == s.node
		if mine {
			s.lost++
		}
		h.mu.Unlock()
		if mine {
			h.resume(s, 0)
		}
	}
}

// resume re-sends the session's track where it would be now, as the
// session's resumePlayer does; failures retry with backoff (bounded).
func (h *harness) resume(s *fakeSession, attempt int) {
	now := time.Now()
	h.mu.Lock()
	pos := s.pos
	if !s.posAt.IsZero() {
		pos += now.Sub(s.posAt)
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	node, err := playNode(h.c.Play(ctx, s.guild, audio.PlayRequest{Track: s.track, Position: pos, Volume: 80, Voice: s.voice}))
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if attempt < 8 {
			s.retries++
			d := min(time.Second<<attempt, 15*time.Second)
			time.AfterFunc(d, func() { h.ord.Submit(s.guild, func() { h.resume(s, attempt+1) }) })
		}
		return
	}
	s.node, s.plays, s.resumedAt, s.sentPos = node, s.plays+1, time.Now(), pos
	s.pos, s.posAt = pos, now
}

// start creates n sessions playing a track from its beginning.
func (h *harness) start(n int) []*fakeSession {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loaded, err := h.c.Load(ctx, "ytsearch:failover anthem")
	if err != nil || len(loaded.Tracks) == 0 {
		h.t.Fatalf("load: %v", err)
	}
	var out []*fakeSession
	for i := range n {
		g := strconv.FormatUint(uint64(900000000000000000+i), 10)
		s := &fakeSession{guild: g, track: loaded.Tracks[i%len(loaded.Tracks)], voice: audio.Voice{
			ChannelID: strconv.FormatUint(uint64(800000000000000000+i), 10), SessionID: "voice-" + g, Token: "tok-" + g, Endpoint: "voice.example:443",
		}}
		h.mu.Lock()
		h.sessions[g] = s
		h.mu.Unlock()
		node, err := playNode(h.c.Play(ctx, g, audio.PlayRequest{Track: s.track, Volume: 80, Voice: s.voice}))
		if err != nil {
			h.t.Fatalf("play %s: %v", g, err)
		}
		h.mu.Lock()
		s.node, s.posAt = node, time.Now()
		h.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// players maps guild → its players on every live emulator.
func (h *harness) players() map[uint64][]lavalinkemu.PlayerInfo {
	out := map[uint64][]lavalinkemu.PlayerInfo{}
	for _, e := range h.emus {
		for _, p := range e.Players("") {
			out[p.GuildID] = append(out[p.GuildID], p)
		}
	}
	return out
}

func (h *harness) nodeOf(s *fakeSession) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.node
}

func (h *harness) metric(name string, labels ...string) float64 {
	fams, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}
