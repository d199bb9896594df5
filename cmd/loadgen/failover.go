package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// The cluster scenarios run node processes as one cluster (etcd, Redis)
// against the emulators, which run inside loadgen (cluster/clustertest):
//
//	failover-node  G guilds play on N members; one member is killed (SIGKILL)
//	drain          the same, the member stopped with SIGTERM
//	scale-out      G guilds play on --from members; members are added up to --to
type clusterOptions struct {
	common
	nodes, from, to int
	guilds          int
	shards          int
	probes          int
	leaseTTL        time.Duration
	limit           time.Duration
}

func parseCluster(name string, args []string, stderr io.Writer) (clusterOptions, error) {
	var o clusterOptions
	fs := flag.NewFlagSet("loadgen "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	if name == "scale-out" {
		fs.IntVar(&o.from, "from", 2, "members at the start")
		fs.IntVar(&o.to, "to", 3, "members after the scale-out")
	} else {
		fs.IntVar(&o.nodes, "nodes", 3, "members; the first started is the one killed or stopped")
		fs.IntVar(&o.probes, "probes", 200, "moved guilds probed with /nowplaying until they answer (at most)")
	}
	fs.IntVar(&o.guilds, "guilds", 1000, "guilds, each playing a track with two more queued")
	fs.IntVar(&o.shards, "shards", 0, "Discord shards (default: one per 50 guilds, at least 4: each voice join is a gateway send, 120 a minute per shard)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 2*time.Second, "the members' etcd lease TTL (cluster.etcd_lease_ttl)")
	fs.DurationVar(&o.limit, "limit", 60*time.Second, "how long after the kill, stop or join the moved guilds may take")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q", fs.Arg(0))
	}
	if o.shards == 0 {
		o.shards = max(4, (o.guilds+49)/50)
	}
	checks := []error{
		checkRange("guilds", o.guilds, 1, 5000),
		checkRange("shards", o.shards, 1, 128),
		checkRange("lease-ttl", o.leaseTTL, 2*time.Second, time.Minute),
		checkRange("limit", o.limit, 5*time.Second, 10*time.Minute),
	}
	if name == "scale-out" {
		checks = append(checks, checkRange("from", o.from, 1, 8), checkRange("to", o.to, o.from+1, 9))
	} else {
		checks = append(checks, checkRange("nodes", o.nodes, 2, 9), checkRange("probes", o.probes, 0, 5000))
	}
	for _, err := range checks {
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// failoverReport is one failover-node or drain run. Times are from the
// kill (or SIGTERM) to the event, over the sessions the member held.
type failoverReport struct {
	Scenario   string  `json:"scenario"`
	Date       string  `json:"date"`
	Nodes      int     `json:"nodes"`
	Guilds     int     `json:"guilds"`
	Shards     int     `json:"shards"`
	LeaseTTLMs float64 `json:"lease_ttl_ms"`
	// ExitMs is how long the stopped member took to exit (drain only).
	ExitMs        float64 `json:"exit_ms,omitempty"`
	MovedSessions int     `json:"moved_sessions"`
	// Probed moved guilds, asked /nowplaying from the kill on until they
	// answered with their track; ProbeInteractions all their tries, of
	// which Busy answered "try again" and Unanswered3s got nothing
	// within Discord's 3 s.
	Probed            int     `json:"probed"`
	ProbeInteractions int     `json:"probe_interactions"`
	Busy              int     `json:"busy_answers"`
	Unanswered3s      int     `json:"unanswered_3s"`
	NeverAnswered     int     `json:"never_answered"`
	AnsweringP50      float64 `json:"answering_p50_ms"`
	AnsweringP99      float64 `json:"answering_p99_ms"`
	PlayingP50        float64 `json:"playing_p50_ms"`
	PlayingP99        float64 `json:"playing_p99_ms"`
	NeverPlaying      int     `json:"never_playing"`
	// Gap is the silence between the last sight of the old player playing
	// and the first of the new one (50 ms polls); Overlap the longest time
	// both were seen playing.
	GapP50      float64 `json:"gap_p50_ms"`
	GapP99      float64 `json:"gap_p99_ms"`
	OverlapMax  float64 `json:"overlap_max_ms"`
	PosErrP50   float64 `json:"position_error_p50_ms"`
	PosErrP99   float64 `json:"position_error_p99_ms"`
	PosErrMax   float64 `json:"position_error_max_ms"`
	LostTracks  int     `json:"lost_tracks"`
	DupTracks   int     `json:"duplicated_tracks"`
	DoubleP     int     `json:"double_players"`
	MovedShards int     `json:"moved_shards"`
	Resumed     int     `json:"resumed_shards"`
	Reidentfied int     `json:"reidentified_shards"`
}

func runFailover(ctx context.Context, env *runEnv, o clusterOptions, drain bool) error {
	name := "failover-node"
	if drain {
		name = "drain"
	}
	rep := failoverReport{Scenario: name, Date: time.Now().UTC().Format(time.RFC3339), Nodes: o.nodes, Guilds: o.guilds,
		Shards: o.shards, LeaseTTLMs: durMS(o.leaseTTL)}
	w, err := startWorld(ctx, env, o, o.nodes, filepath.Join(env.dir, name))
	if err != nil {
		return err
	}
	defer w.close()
	victim := w.c.Nodes()[0]
	victimLL := victim.LavalinkSession()
	before, err := w.stable(ctx)
	if err != nil {
		return err
	}
	var moved []discordemu.LoadGuild
	for _, g := range w.guilds {
		if before[uint64(g.ID)].player == victimLL {
			moved = append(moved, g)
		}
	}
	rep.MovedSessions = len(moved)
	shardsBefore := w.c.ShardSessions()
	env.log.Info("stopping a member", "how", name, "its_sessions", len(moved))

	start := time.Now()
	stopped := make(chan error, 1)
	if drain {
		go func() {
			err := victim.Stop(time.Minute)
			rep.ExitMs = durMS(time.Since(start))
			stopped <- err
		}()
	} else {
		stopped <- victim.Kill()
	}
	deadline := start.Add(o.limit)
	var wg sync.WaitGroup
	probes := moved[:min(len(moved), o.probes)]
	answered := make([]float64, len(probes))
	var tries, busy, late atomic.Int64
	for i, g := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answered[i] = w.probe(ctx, g, before[uint64(g.ID)].title, start, deadline, &tries, &busy, &late)
		}()
	}
	play := w.watchPlayers(ctx, moved, before, victimLL, start, deadline)
	wg.Wait()
	if err := <-stopped; err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rep.Probed, rep.ProbeInteractions, rep.Busy, rep.Unanswered3s = len(probes), int(tries.Load()), int(busy.Load()), int(late.Load())
	var ok []float64
	for _, ms := range answered {
		if ms < 0 {
			rep.NeverAnswered++
		} else {
			ok = append(ok, ms)
		}
	}
	sort.Float64s(ok)
	rep.AnsweringP50, rep.AnsweringP99 = percentile(ok, 0.50), percentile(ok, 0.99)
	rep.PlayingP50, rep.PlayingP99, rep.NeverPlaying = percentile(play.playing, 0.50), percentile(play.playing, 0.99), play.never
	rep.GapP50, rep.GapP99, rep.OverlapMax = percentile(play.gaps, 0.50), percentile(play.gaps, 0.99), play.overlapMax
	rep.PosErrP50, rep.PosErrP99 = percentile(play.posErr, 0.50), percentile(play.posErr, 0.99)
	if n := len(play.posErr); n > 0 {
		rep.PosErrMax = play.posErr[n-1]
	}
	rep.LostTracks, rep.DupTracks, rep.DoubleP, err = w.compare(ctx, before)
	if err != nil {
		return err
	}
	for shard, s := range w.c.ShardSessions() {
		old, ok := shardsBefore[shard]
		switch {
		case !ok || old.ID != s.ID:
			rep.Reidentfied++
		case s.Resumes > old.Resumes:
			rep.Resumed++
		}
	}
	rep.MovedShards = rep.Resumed + rep.Reidentfied
	printFailover(env.stdout, rep)
	if env.out != "" {
		return appendJSONLines(env.out, rep)
	}
	return nil
}

// world is a cluster with its guilds playing.
type world struct {
	c      *clustertest.Cluster
	st     store.Store
	guilds []discordemu.LoadGuild
	log    *slog.Logger
}

func (w *world) close() {
	if w.st != nil {
		w.st.Close()
	}
	w.c.Close()
}

func startWorld(ctx context.Context, env *runEnv, o clusterOptions, nodes int, dir string) (_ *world, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := clustertest.Start(ctx, clustertest.Config{Node: env.bins.Node, Dir: dir, Shards: o.shards, LeaseTTL: o.leaseTTL})
	if err != nil {
		return nil, err
	}
	w := &world{c: c, log: env.log}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.guilds, err = c.Discord.AddLoadGuilds(o.guilds, 1); err != nil {
		return nil, err
	}
	if w.st, err = store.Open(ctx, config.Store{Kind: config.StoreRedis, Redis: config.Redis{Addr: c.Redis.Addr, Timeout: 5 * time.Second}}, secret.String{}); err != nil {
		return nil, err
	}
	for range nodes {
		if err := w.addNode(ctx); err != nil {
			return nil, err
		}
	}
	env.log.Info("cluster ready; playing", "nodes", nodes, "guilds", o.guilds, "shards", o.shards)
	// Three tracks per guild, guilds in parallel (32 at a time), each
	// guild's in order.
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(w.guilds))
	for i, g := range w.guilds {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			for _, s := range []string{"a", "b", "c"} {
				if err := w.play(ctx, g, fmt.Sprintf("failover song %d %s", i, s)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("playing: %w", err)
	}
	return w, nil
}

// play queues query in g, again if the node answers busy (a moment of
// load while thousands of plays start).
func (w *world) play(ctx context.Context, g discordemu.LoadGuild, query string) error {
	for try := 0; ; try++ {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		text, err := w.c.Answer(actx, g, "play", discordemu.StringOption("query", query))
		cancel()
		switch {
		case err != nil:
			return err
		case !commands.IsBusy(text):
			return nil
		case try == 10:
			return fmt.Errorf("/play in %s answered busy %d times", g.ID, try+1)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *world) addNode(ctx context.Context) error {
	n, err := w.c.StartNode()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return n.WaitReady(rctx, "discord", "lavalink", "store")
}

// guildState is a guild as it was before the kill.
type guildState struct {
	player string // the Lavalink session holding its player
	title  string
	pos    int64
	at     time.Time
	tracks []string // current, then the queue
}

// stable waits until each guild plays once with its two queued tracks and
// its session has stored where its player is (a member killed before that
// write leaves its player to Lavalink's resume timeout: a known limit),
// and each shard has stored its session for resuming; then it returns the
// guilds' state.
func (w *world) stable(ctx context.Context) (map[uint64]guildState, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var out map[uint64]guildState
	var why string
	err := clustertest.Poll(ctx, func() bool {
		out, why = map[uint64]guildState{}, ""
		players := w.c.Players()
		for _, g := range w.guilds {
			ps := players[uint64(g.ID)]
			if len(ps) != 1 {
				why = fmt.Sprintf("guild %s has %d players", g.ID, len(ps))
				return false
			}
			snap, err := w.snapshot(ctx, g)
			if err != nil || snap.GetLavalinkSessionId() != ps[0].SessionID || len(snap.GetQueue()) != 2 {
				why = fmt.Sprintf("guild %s: snapshot %v (queue %d, holder %q, player on %q)", g.ID, err, len(snap.GetQueue()), snap.GetLavalinkSessionId(), ps[0].SessionID)
				return false
			}
			out[uint64(g.ID)] = guildState{player: ps[0].SessionID, title: ps[0].Track.Info.Title, pos: ps[0].Position, at: time.Now(), tracks: tracksOf(snap)}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for every guild to play: %s: %w", why, err)
	}
	return out, nil
}

func (w *world) snapshot(ctx context.Context, g discordemu.LoadGuild) (*clusterpb.SessionSnapshot, error) {
	data, err := w.st.LoadSession(ctx, g.ID.String())
	if err != nil {
		return nil, err
	}
	var snap clusterpb.SessionSnapshot
	return &snap, proto.Unmarshal(data, &snap)
}

func tracksOf(s *clusterpb.SessionSnapshot) []string {
	var out []string
	if c := s.GetCurrent(); c != nil {
		out = append(out, c.GetIdentifier())
	}
	for _, t := range s.GetQueue() {
		out = append(out, t.GetIdentifier())
	}
	return out
}

// probe asks /nowplaying in g every probeEvery from start until an
// answer names title (or deadline), each try waiting for its own answer,
// so that a try lost with the dead member does not hold up the next. It
// returns the time from start to the first such answer in ms, or -1.
func (w *world) probe(ctx context.Context, g discordemu.LoadGuild, title string, start, deadline time.Time, tries, busy, late *atomic.Int64) float64 {
	const probeEvery = 500 * time.Millisecond
	answered := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, ok := w.ask(ctx, g, title, tries, busy, late)
			if ok {
				select {
				case answered <- at:
				default:
				}
			}
		}()
		select {
		case at := <-answered:
			return durMS(at.Sub(start))
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	return -1
}

// ask sends one /nowplaying and reports when its answer came, and whether
// it named title.
func (w *world) ask(ctx context.Context, g discordemu.LoadGuild, title string, tries, busy, late *atomic.Int64) (time.Time, bool) {
	tries.Add(1)
	sent := time.Now()
	ix, err := w.c.Discord.InvokeCommand(g.ID, g.Members[0], g.Text, "nowplaying")
	if err != nil {
		return time.Time{}, false
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := ix.Wait(wctx)
	if err != nil || res.At.Sub(sent) > 3*time.Second {
		late.Add(1)
		return time.Time{}, false
	}
	text, at := fmt.Sprint(res.Content, res.Embeds), res.At
	if res.Type == discordemu.ResponseDeferredMessage {
		msg, err := ix.WaitAnswer(wctx)
		if err != nil {
			late.Add(1)
			return time.Time{}, false
		}
		text, at = fmt.Sprint(msg.Content, msg.Embeds), time.Now()
	}
	if !strings.Contains(text, title) {
		busy.Add(1)
		return time.Time{}, false
	}
	return at, true
}

type playResult struct {
	playing, gaps, posErr []float64 // sorted
	overlapMax            float64
	never                 int
}

// watchPlayers polls the players every 50 ms until every moved guild plays
// on another session than old, or deadline.
func (w *world) watchPlayers(ctx context.Context, moved []discordemu.LoadGuild, before map[uint64]guildState, old string, start, deadline time.Time) playResult {
	type seen struct {
		oldLast, newFirst time.Time
		overlap           time.Duration
		posErr            float64
		done              bool
	}
	state := make(map[uint64]*seen, len(moved))
	for _, g := range moved {
		state[uint64(g.ID)] = &seen{oldLast: start}
	}
	left := len(moved)
	for left > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		now := time.Now()
		live := w.c.LiveSessions()
		for id, ps := range w.c.Players() {
			s := state[id]
			if s == nil {
				continue
			}
			var onOld, onNew bool
			for _, p := range ps {
				switch {
				case p.SessionID == old:
					onOld = true
				case live[p.SessionID] && !s.done:
					onNew = true
					b := before[id]
					expected := b.pos + now.Sub(b.at).Milliseconds()
					s.posErr = float64(p.Position - expected)
				}
			}
			if onOld {
				s.oldLast = now
			}
			if onOld && onNew {
				s.overlap += 50 * time.Millisecond
			}
			if onNew && !s.done {
				s.newFirst, s.done = now, true
				left--
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var r playResult
	for _, s := range state {
		if !s.done {
			r.never++
			continue
		}
		r.playing = append(r.playing, durMS(s.newFirst.Sub(start)))
		r.gaps = append(r.gaps, max(0, durMS(s.newFirst.Sub(s.oldLast))))
		r.posErr = append(r.posErr, abs(s.posErr))
		r.overlapMax = max(r.overlapMax, durMS(s.overlap))
	}
	for _, xs := range [][]float64{r.playing, r.gaps, r.posErr} {
		sort.Float64s(xs)
	}
	return r
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// compare waits until each guild's stored session is again held by a live
// member's player (or a minute), then counts, over all guilds, the tracks
// lost and duplicated since before (tracks that ended meanwhile are
// neither) and the guilds with more than one playing player.
func (w *world) compare(ctx context.Context, before map[uint64]guildState) (lost, dup, double int, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_ = clustertest.Poll(ctx, func() bool {
		live, players := w.c.LiveSessions(), w.c.Players()
		for _, g := range w.guilds {
			snap, err := w.snapshot(ctx, g)
			ps := players[uint64(g.ID)]
			if err != nil || len(ps) != 1 || !live[snap.GetLavalinkSessionId()] {
				return false
			}
		}
		return true
	})
	players := w.c.Players()
	for _, g := range w.guilds {
		if len(players[uint64(g.ID)]) > 1 {
			double++
		}
		snap, err := w.snapshot(ctx, g)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, 0, 0, err
		}
		l, d := trackDiff(before[uint64(g.ID)].tracks, tracksOf(snap))
		lost += l
		dup += d
		if l+d > 0 {
			w.log.Warn("a guild's tracks changed", "guild", g.ID, "before", before[uint64(g.ID)].tracks, "after", tracksOf(snap), "lost", l, "duplicated", d)
		}
	}
	return lost, dup, double, nil
}

// trackDiff compares a guild's tracks (current, then queue) before and
// after: after should be before without the tracks that ended (a prefix).
func trackDiff(before, after []string) (lost, dup int) {
	k := 0
	if len(after) > 0 {
		for k < len(before) && before[k] != after[0] {
			k++
		}
		if k == len(before) {
			k = 0 // the current track is new: nothing ended, it is a duplicate or stray
		}
	}
	left := map[string]int{}
	for _, t := range before[k:] {
		left[t]++
	}
	for _, t := range after {
		if left[t] > 0 {
			left[t]--
		} else {
			dup++
		}
	}
	for _, n := range left {
		lost += n
	}
	return lost, dup
}

func printFailover(w io.Writer, r failoverReport) {
	fmt.Fprintf(w, "%s: %d members, %d guilds, %d shards, etcd lease TTL %.0f ms\n", r.Scenario, r.Nodes, r.Guilds, r.Shards, r.LeaseTTLMs)
	if r.ExitMs > 0 {
		fmt.Fprintf(w, "  stopped member exited after %.0f ms\n", r.ExitMs)
	}
	fmt.Fprintf(w, "  moved sessions %d: playing again p50 %.0f ms p99 %.0f ms (never %d); gap p50 %.0f ms p99 %.0f ms, overlap max %.0f ms; |position error| p50 %.0f p99 %.0f max %.0f ms\n",
		r.MovedSessions, r.PlayingP50, r.PlayingP99, r.NeverPlaying, r.GapP50, r.GapP99, r.OverlapMax, r.PosErrP50, r.PosErrP99, r.PosErrMax)
	fmt.Fprintf(w, "  probed %d guilds (%d interactions, %d busy, %d unanswered within 3 s): answering again p50 %.0f ms p99 %.0f ms (never %d)\n",
		r.Probed, r.ProbeInteractions, r.Busy, r.Unanswered3s, r.AnsweringP50, r.AnsweringP99, r.NeverAnswered)
	fmt.Fprintf(w, "  lost tracks %d, duplicated %d, double players %d; shards moved %d: resumed %d, re-identified %d\n",
		r.LostTracks, r.DupTracks, r.DoubleP, r.MovedShards, r.Resumed, r.Reidentfied)
}
