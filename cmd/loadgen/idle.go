package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/admin"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/discordemu/emuctl"
)

type idleOptions struct {
	common
	guilds      int
	rate        float64
	idleTimeout time.Duration
	warmGuilds  int
	grace       time.Duration
	settle      time.Duration
	heapProfile string
}

func parseIdle(args []string, stderr io.Writer) (idleOptions, error) {
	var o idleOptions
	fs := flag.NewFlagSet("loadgen idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	fs.IntVar(&o.guilds, "guilds", 10000, "guild grains to activate (one /queue each)")
	fs.Float64Var(&o.rate, "rate", 1000, "activations per second")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 15*time.Second, "the node's limits.guild_idle_timeout and limits.session_idle_timeout")
	fs.IntVar(&o.warmGuilds, "warm-guilds", 20, "guilds activated and passivated before the base measurement, so one-time set-up is not counted per guild")
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "wait past the idle timeout before measuring after passivation")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait after the last activation was answered before measuring, so work still in flight (deferred answers being completed) is not counted as idle")
	fs.StringVar(&o.heapProfile, "heapprofile", "", "write the node's heap profiles (after a GC) to PREFIX-{active,passivated}.pprof, and its goroutines to PREFIX-{active,passivated}-goroutines.txt")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q", fs.Arg(0))
	}
	for _, err := range []error{
		checkRange("guilds", o.guilds, 1, emuctl.MaxGuilds-1000),
		checkRange("rate", o.rate, 1, 20000),
		checkRange("idle-timeout", o.idleTimeout, time.Second, 10*time.Minute),
		checkRange("warm-guilds", o.warmGuilds, 0, 1000),
		checkRange("grace", o.grace, 0, 5*time.Minute),
		checkRange("settle", o.settle, 0, time.Minute),
	} {
		if err != nil {
			return o, err
		}
	}
	// The first guild must still be active when "active" is measured: otherwise it would
	// miss the ones that already passivated.
	if activation := time.Duration(float64(o.guilds) / o.rate * float64(time.Second)); activation+o.settle+2*time.Second >= o.idleTimeout {
		return o, usagef("activating %d guilds at %g/s takes %v, plus --settle %v, too close to --idle-timeout %v: raise --rate or --idle-timeout",
			o.guilds, o.rate, activation.Round(time.Millisecond), o.settle, o.idleTimeout)
	}
	return o, nil
}

var queueOnly = []discordemu.LoadCommand{{Name: "queue", Weight: 1}}

func runIdle(ctx context.Context, env *runEnv, o idleOptions) error {
	dir := filepath.Join(env.dir, "idle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	rep := idleReport{Scenario: "idle", Date: time.Now().UTC().Format(time.RFC3339), Guilds: o.guilds, Rate: o.rate,
		IdleTimeoutS: o.idleTimeout.Seconds()}
	emu, err := startEmulators(ctx, env.bins, dir)
	if err != nil {
		return err
	}
	defer emu.stop(5 * time.Second)
	w, err := emu.ctl.NewWorld(ctx, emuctl.WorldSpec{Guilds: o.warmGuilds + o.guilds, Members: 1})
	if err != nil {
		return err
	}
	node, err := startNode(ctx, env.bins, dir, emu, w, nodeSettings{guildIdle: o.idleTimeout, sessionIdle: o.idleTimeout})
	if err != nil {
		return err
	}
	defer node.stop(10 * time.Second)
	if err := waitConnected(ctx, emu, node.child, w); err != nil {
		return err
	}
	activate := func(from, to int) (discordemu.LoadResult, error) {
		res, err := loadRange(ctx, emu, w, from, to, discordemu.LoadSpec{Rate: o.rate, Count: to - from, Sequential: true, Mix: queueOnly})
		if err != nil {
			return res, node.failure(err)
		}
		return res, nil
	}
	passivation := func(what string) error {
		env.log.Info("waiting for passivation", "of", what, "for", o.idleTimeout+o.grace)
		return sleep(ctx, o.idleTimeout+o.grace)
	}

	if o.warmGuilds > 0 {
		if _, err := activate(0, o.warmGuilds); err != nil {
			return err
		}
		if err := passivation("the warm-up guilds"); err != nil {
			return err
		}
	}
	if rep.Base, err = sampleNode(ctx, node); err != nil {
		return err
	}
	res, err := activate(o.warmGuilds, o.warmGuilds+o.guilds)
	if err != nil {
		return err
	}
	rep.answerCounts = summarize(res).answerCounts
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	if rep.Active, err = sampleNode(ctx, node); err != nil {
		return err
	}
	if err := heapProfile(ctx, node, o.heapProfile, "active"); err != nil {
		return err
	}
	if err := passivation(strconv.Itoa(o.guilds) + " guilds"); err != nil {
		return err
	}
	if rep.Passivated, err = sampleNode(ctx, node); err != nil {
		return err
	}
	if err := heapProfile(ctx, node, o.heapProfile, "passivated"); err != nil {
		return err
	}
	rep.compute()
	printIdle(env.stdout, rep)
	if env.out != "" {
		return appendJSONLines(env.out, rep)
	}
	return nil
}

func loadRange(ctx context.Context, emu *emulators, w emuctl.World, from, to int, spec discordemu.LoadSpec) (discordemu.LoadResult, error) {
	bound := time.Duration(float64(spec.Count)/spec.Rate*float64(time.Second)) + time.Minute
	lctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	return emu.ctl.Load(lctx, w.ID, emuctl.LoadRequest{LoadSpec: spec, From: from, To: to})
}

// heapProfile saves the node's heap profile after a GC to prefix-phase.pprof, and its
// goroutines to prefix-phase-goroutines.txt.
func heapProfile(ctx context.Context, n *nodeProc, prefix, phase string) error {
	if prefix == "" {
		return nil
	}
	if err := download(ctx, n.admin+"/debug/pprof/heap?gc=1", prefix+"-"+phase+".pprof", 30*time.Second); err != nil {
		return err
	}
	return download(ctx, n.admin+"/debug/pprof/goroutine?debug=1", prefix+"-"+phase+"-goroutines.txt", 30*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sampleNode reads the node's heap after a forced GC, its goroutines, RSS and live actors.
func sampleNode(ctx context.Context, n *nodeProc) (nodeSample, error) {
	var ms admin.MemStats
	if err := getJSON(ctx, n.admin+"/debug/memstats?gc=1", &ms); err != nil {
		return nodeSample{}, fmt.Errorf("node memory (does this node serve /debug/memstats?): %w", err)
	}
	rss, _, err := procMem(n.pid())
	if err != nil {
		return nodeSample{}, err
	}
	actors, err := liveActors(ctx, n.admin+"/metrics")
	if err != nil {
		return nodeSample{}, err
	}
	return nodeSample{HeapBytes: ms.HeapAlloc, Goroutines: ms.Goroutines, RSSBytes: rss, Actors: actors}, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rq, err := http.NewRequestWithContext(rctx, "GET", url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	rs, err := http.DefaultClient.Do(rq)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer rs.Body.Close()
	if rs.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, rs.Status)
	}
	if err := json.NewDecoder(rs.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// liveActors is protoactor's spawn count minus its stop count from /metrics, or -1 if
// the node does not export them.
func liveActors(ctx context.Context, url string) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rq, err := http.NewRequestWithContext(rctx, "GET", url, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	rs, err := http.DefaultClient.Do(rq)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer rs.Body.Close()
	if rs.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, rs.Status)
	}
	return parseLiveActors(rs.Body)
}

// parseLiveActors sums protoactor_actor_spawn_count* minus protoactor_actor_stopped_count*
// over every label set of a Prometheus text exposition.
func parseLiveActors(r io.Reader) (int64, error) {
	var spawned, stopped float64
	seen := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var sum *float64
		switch {
		case strings.HasPrefix(line, "protoactor_actor_spawn_count"):
			sum = &spawned
		case strings.HasPrefix(line, "protoactor_actor_stopped_count"):
			sum = &stopped
		default:
			continue
		}
		// name{labels} value [timestamp]
		rest := line
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			rest = line[i+1:]
		} else if _, after, ok := strings.Cut(line, " "); ok {
			rest = after
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics: %q: %w", line, err)
		}
		*sum += v
		seen = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	if !seen {
		return -1, nil
	}
	if spawned < stopped {
		return 0, errors.New("metrics: more actors stopped than spawned")
	}
	return int64(spawned - stopped), nil
}
