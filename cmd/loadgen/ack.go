package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/discordemu/emuctl"
)

// ackCommands are the commands a mix may name, in the order reports list them.
var ackCommands = []discordemu.LoadCommand{
	{Name: "queue"},
	{Name: "nowplaying"},
	{Name: "play", Options: []discordemu.LoadOption{{Name: "query", Type: discordemu.OptionString, Values: searchQueries()}}},
}

// defaultMix is the command mix: what listeners mostly do is look.
const defaultMix = "queue=70,nowplaying=20,play=10"

// parseMix reads a mix, name=weight pairs of ackCommands separated by commas; a
// command it does not name is not sent.
func parseMix(text string) ([]discordemu.LoadCommand, error) {
	weights := map[string]int{}
	for _, pair := range strings.Split(text, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 || n > 1000 {
			return nil, usagef("--mix %q: want name=weight pairs, weights in [0, 1000]", text)
		}
		if _, dup := weights[name]; dup {
			return nil, usagef("--mix %q: %s named twice", text, name)
		}
		weights[name] = n
	}
	var mix []discordemu.LoadCommand
	for _, c := range ackCommands {
		if n, ok := weights[c.Name]; ok {
			delete(weights, c.Name)
			if n > 0 {
				c.Weight = n
				mix = append(mix, c)
			}
		}
	}
	for name := range weights {
		return nil, usagef("--mix %q: unknown command %q (queue, nowplaying, play)", text, name)
	}
	if len(mix) == 0 {
		return nil, usagef("--mix %q: every weight is 0", text)
	}
	return mix, nil
}

// searchQueries are plain words, which the node searches (ytsearch:) on Lavalink.
func searchQueries() []any {
	q := make([]any, 50)
	for i := range q {
		q[i] = "load test song " + strconv.Itoa(i+1)
	}
	return q
}

type ackOptions struct {
	common
	rate       float64
	duration   time.Duration
	guilds     int
	members    int
	warmup     time.Duration
	runs       int
	seed       uint64
	cpuProfile string
	trace      string
	bareInline bool
	// nodeFirst measures the node before the bare bot (--first node).
	nodeFirst bool
	// calibrate measures the bare bot in both places of a run (--calibrate).
	calibrate bool
	// bareCPU is the CPU time the bare bot spends on each interaction before it answers.
	bareCPU time.Duration
	// nodeEnv is the Go runtime settings (KEY=VALUE) given to the node alone.
	nodeEnv []string
	mix     []discordemu.LoadCommand
	// warmupMix is the warm-up's mix, mix unless --warmup-mix says.
	warmupMix []discordemu.LoadCommand
}

func parseAck(args []string, stderr io.Writer) (ackOptions, error) {
	var o ackOptions
	fs := flag.NewFlagSet("loadgen ack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	fs.Float64Var(&o.rate, "rate", 1000, "interactions per second")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration per target")
	fs.IntVar(&o.guilds, "guilds", 100, "guilds the interactions are spread over (at random)")
	fs.IntVar(&o.members, "members", 3, "members per guild, all in its voice channel")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load at the same rate before each measurement, excluded from the figures")
	fs.IntVar(&o.runs, "runs", 1, "scenario runs, each with fresh processes (one JSON object each)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the guild, member, command and query draws")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the node during its measured load to this file (run N > 1: FILE-N)")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of the node's first 5 s of measured load to this file, for go tool trace (run N > 1: FILE-N)")
	fs.BoolVar(&o.bareInline, "bare-inline", false, "the bare bot answers on the gateway's reader goroutine instead of a goroutine per interaction")
	fs.DurationVar(&o.bareCPU, "bare-cpu", 0, "CPU time the bare bot spends on each interaction before it answers (a calibrated loop), e.g. 300us:"+
		" a baseline that costs as much CPU per interaction as Ensemble, without its actors, store or hand-offs")
	first := fs.String("first", "bare", "which target a run measures first: bare or node (the order's effect on the ratio)")
	fs.BoolVar(&o.calibrate, "calibrate", false, "measure the bare bot in both places of each run instead of the node (its row says bare-2):"+
		" the ratio of two identical targets, the tool's own noise")
	mix := fs.String("mix", defaultMix, "the command mix: name=weight pairs of queue, nowplaying and play")
	fs.Func("node-env", "a Go runtime setting for the node alone, KEY=VALUE with KEY one of "+strings.Join(nodeEnvKeys, ", ")+
		" (repeatable), e.g. GOGC=800 to measure a deployment's setting; the emulator, bare bot and driver keep theirs",
		func(kv string) error {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || v == "" || !slices.Contains(nodeEnvKeys, k) {
				return fmt.Errorf("%q: want KEY=VALUE with KEY one of %s", kv, strings.Join(nodeEnvKeys, ", "))
			}
			o.nodeEnv = append(o.nodeEnv, kv)
			return nil
		})
	warmupMix := fs.String("warmup-mix", "", "the warm-up's command mix (default: --mix), e.g. play=1 to start every session before measuring the others")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q", fs.Arg(0))
	}
	switch *first {
	case "bare":
	case "node":
		o.nodeFirst = true
	default:
		return o, usagef("--first %q: want bare or node", *first)
	}
	var err error
	if o.mix, err = parseMix(*mix); err != nil {
		return o, err
	}
	o.warmupMix = o.mix
	if *warmupMix != "" {
		if o.warmupMix, err = parseMix(*warmupMix); err != nil {
			return o, usagef("--warmup-mix: %v", err)
		}
	}
	for _, err := range []error{
		checkRange("rate", o.rate, 0.1, 20000),
		checkRange("duration", o.duration, time.Second, 10*time.Minute),
		checkRange("guilds", o.guilds, 1, emuctl.MaxGuilds),
		checkRange("members", o.members, 1, emuctl.MaxMembers),
		checkRange("warmup", o.warmup, 0, time.Minute),
		checkRange("runs", o.runs, 1, 10),
		checkRange("bare-cpu", o.bareCPU, 0, 10*time.Millisecond),
	} {
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

func runAck(ctx context.Context, env *runEnv, o ackOptions) error {
	for run := 1; run <= o.runs; run++ {
		dir := filepath.Join(env.dir, fmt.Sprintf("ack-%d", run))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("run dir: %w", err)
		}
		rep, err := ackOnce(ctx, env, o, run, dir)
		if err != nil {
			return fmt.Errorf("ack run %d: %w", run, err)
		}
		printAck(env.stdout, rep)
		if env.out != "" {
			if err := appendJSONLines(env.out, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

func ackOnce(ctx context.Context, env *runEnv, o ackOptions, run int, dir string) (ackReport, error) {
	rep := ackReport{Scenario: "ack", Run: run, Date: time.Now().UTC().Format(time.RFC3339), Rate: o.rate,
		DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(), Guilds: o.guilds, Mix: map[string]int{}, WarmupMix: map[string]int{},
		BareInline: o.bareInline, BareCPUMs: o.bareCPU.Seconds() * 1000, NodeEnv: o.nodeEnv, NodeFirst: o.nodeFirst, Calibrate: o.calibrate}
	for _, c := range o.mix {
		rep.Mix[c.Name] = c.Weight
	}
	for _, c := range o.warmupMix {
		rep.WarmupMix[c.Name] = c.Weight
	}
	emu, err := startEmulators(ctx, env.bins, dir)
	if err != nil {
		return rep, err
	}
	defer emu.stop(5 * time.Second)
	// One target at a time: each has the machine to itself (with the emulator), and each
	// gets a fresh world of the same emulator process, so neither sees the other's
	// commands, messages or sessions, and the emulator's own cost is the same for both.
	for _, t := range ackTargets(o) {
		st, err := measureAck(ctx, env, emu, o, run, filepath.Join(dir, t.dir), t.node)
		if err != nil {
			return rep, fmt.Errorf("measuring %s: %w", t.dir, err)
		}
		if t.baseline {
			rep.Baseline = st
			continue
		}
		rep.Ensemble = st
		if t.node && o.cpuProfile != "" {
			rep.CPUProfile = profilePath(o.cpuProfile, run)
		}
	}
	return rep, nil
}

// ackTarget is one measurement of a run: in the report's baseline or in its
// Ensemble place, of the node or of the bare bot.
type ackTarget struct {
	dir            string
	node, baseline bool
}

// ackTargets is what a run measures, in order: the bare bot, then the node;
// with --first node the other way round; with --calibrate the bare bot in
// both places (an A/A run: its ratio is the measurement's own noise).
func ackTargets(o ackOptions) []ackTarget {
	bare, node := ackTarget{dir: "bare", baseline: true}, ackTarget{dir: "ensemble", node: true}
	if o.calibrate {
		node = ackTarget{dir: "bare-2"}
	}
	if o.nodeFirst {
		return []ackTarget{node, bare}
	}
	return []ackTarget{bare, node}
}

func profilePath(base string, run int) string {
	if run == 1 {
		return base
	}
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "-" + strconv.Itoa(run) + ext
}

// measureAck starts one target on a fresh world, warms it up, and measures one load.
func measureAck(ctx context.Context, env *runEnv, emu *emulators, o ackOptions, run int, dir string, ensemble bool) (targetStats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return targetStats{}, fmt.Errorf("target dir: %w", err)
	}
	w, err := emu.ctl.NewWorld(ctx, emuctl.WorldSpec{Guilds: o.guilds, Members: o.members})
	if err != nil {
		return targetStats{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = emu.ctl.CloseWorld(cctx, w.ID)
	}()
	var proc *child
	admin := ""
	if ensemble {
		n, err := startNode(ctx, env.bins, dir, emu, w, nodeSettings{env: o.nodeEnv})
		if err != nil {
			return targetStats{}, err
		}
		proc, admin = n.child, n.admin
	} else {
		if proc, err = startBare(env.bins, dir, w, o.bareInline, o.bareCPU); err != nil {
			return targetStats{}, err
		}
	}
	defer proc.stop(10 * time.Second)
	if err := waitConnected(ctx, emu, proc, w); err != nil {
		return targetStats{}, err
	}
	env.log.Info("connected", "target", proc.name, "world", w.ID)

	spec := discordemu.LoadSpec{Rate: o.rate, Mix: o.warmupMix, Seed: o.seed}
	if o.warmup > 0 {
		spec.Duration = o.warmup
		res, err := load(ctx, emu, w, spec)
		if err != nil {
			return targetStats{}, proc.failure(fmt.Errorf("warm-up: %w", err))
		}
		ws := summarize(res)
		env.log.Info("warm-up done", "target", proc.name, "sent", ws.Sent, "unanswered", ws.Unanswered, "p99_ms", ws.P99)
	}

	spec.Duration, spec.Seed, spec.Mix = o.duration, o.seed+uint64(run), o.mix
	profDone := make(chan error, 2)
	if ensemble && o.cpuProfile != "" {
		go func() { profDone <- cpuProfile(ctx, admin, profilePath(o.cpuProfile, run), o.duration) }()
	} else {
		profDone <- nil
	}
	if ensemble && o.trace != "" {
		go func() { profDone <- execTrace(ctx, admin, profilePath(o.trace, run)) }()
	} else {
		profDone <- nil
	}
	cpu0, err := procCPU(proc.pid())
	if err != nil {
		return targetStats{}, err
	}
	ecpu0, err := procCPU(emu.pid())
	if err != nil {
		return targetStats{}, err
	}
	mcpu0, err := machineBusy()
	if err != nil {
		return targetStats{}, err
	}
	t0 := time.Now()
	res, err := load(ctx, emu, w, spec)
	wall := time.Since(t0)
	cpu1, cerr := procCPU(proc.pid())
	ecpu1, ecerr := procCPU(emu.pid())
	mcpu1, mcerr := machineBusy()
	_, peak, merr := procMem(proc.pid())
	if err != nil {
		return targetStats{}, proc.failure(err)
	}
	if proc.exited() {
		return targetStats{}, proc.failure(fmt.Errorf("exited during the load: %v", proc.err))
	}
	if err := errors.Join(cerr, ecerr, mcerr, merr); err != nil {
		return targetStats{}, fmt.Errorf("%s: %w", proc.name, err)
	}
	for range 2 {
		if err := <-profDone; err != nil {
			env.log.Warn("no profile or trace", "err", err)
		}
	}
	// Every interaction's record, for a closer look (kept with --log-dir).
	if b, err := json.Marshal(res); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "records.json"), b, 0o644)
	}
	st := summarize(res)
	st.CPUSeconds = cpu1 - cpu0
	st.CPUShare = st.CPUSeconds / wall.Seconds()
	st.PeakRSSBytes = peak
	st.EmulatorCPUShare = (ecpu1 - ecpu0) / wall.Seconds()
	st.MachineCPUShare = (mcpu1 - mcpu0) / wall.Seconds()
	return st, nil
}

// load runs one load, bounded by its own length plus the answers' deadline and a margin.
func load(ctx context.Context, emu *emulators, w emuctl.World, spec discordemu.LoadSpec) (discordemu.LoadResult, error) {
	n := spec.Count
	if n == 0 {
		n = int(spec.Rate * spec.Duration.Seconds())
	}
	bound := time.Duration(float64(n)/spec.Rate*float64(time.Second)) + time.Minute
	lctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	return emu.ctl.Load(lctx, w.ID, emuctl.LoadRequest{LoadSpec: spec})
}

// cpuProfile saves the node's CPU profile over about the measured window.
func cpuProfile(ctx context.Context, admin, path string, window time.Duration) error {
	secs := min(max(int(window.Seconds())-1, 1), 120)
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, secs)
	return download(ctx, url, path, time.Duration(secs)*time.Second+30*time.Second)
}

// traceSeconds is the length of the execution trace: at 1000 interactions/s a second of
// trace is several MB.
const traceSeconds = 5

// execTrace saves an execution trace of the node's first traceSeconds of measured load.
func execTrace(ctx context.Context, admin, path string) error {
	url := fmt.Sprintf("%s/debug/pprof/trace?seconds=%d", admin, traceSeconds)
	return download(ctx, url, path, traceSeconds*time.Second+30*time.Second)
}

// download saves what GET url answers to path.
func download(ctx context.Context, url, path string, limit time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	rq, err := http.NewRequestWithContext(dctx, "GET", url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	rs, err := http.DefaultClient.Do(rq)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer rs.Body.Close()
	if rs.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s (does this node serve /debug/pprof/?)", url, rs.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, rs.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	return nil
}
