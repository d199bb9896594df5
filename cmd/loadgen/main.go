// Command loadgen is Ensemble's load benchmark (BENCHMARKS.md). It builds cmd/node,
// cmd/emulator and a bare disgo bot, runs them as separate processes on loopback, drives
// interactions through the Discord emulator at a fixed rate and reports what users would
// see: how fast each interaction was acknowledged, and how many were not.
//
//	loadgen ack  --rate R --duration D --guilds G [--out FILE]
//	loadgen idle --guilds N [--out FILE]
//	loadgen failover-node --nodes N --guilds G [--out FILE]
//	loadgen drain --nodes N --guilds G [--out FILE]
//	loadgen scale-out --from N --to M --guilds G [--out FILE]
//
// ack sends a mix of 70 % /queue, 20 % /nowplaying and 10 % /play (searches) over G
// guilds at R interactions per second for D, first to a bare disgo bot (a baseline that
// answers in its gateway handler), then to one node, each in a fresh Discord world of
// the same emulator process, and prints acknowledgement latency percentiles, deferred,
// busy and unanswered counts, the node's CPU and peak RSS, and Ensemble/bare for each
// percentile. idle activates N guild grains (one /queue each) and reports the node's
// heap, goroutines and RSS per idle guild, then again after the grains passivated.
//
// failover-node, drain and scale-out run node processes as one cluster (a real etcd and
// Redis, the emulators inside loadgen): G guilds play a track with two queued, then one
// member is killed (SIGKILL), stopped (SIGTERM) or members are added, and they report
// how long the moved guilds took to answer and play again, position errors, lost and
// duplicated tracks, double players and how the shards moved (failover.go, scaleout.go).
//
// Every run is bounded in time and count and sends only to loopback; every process it
// starts is stopped when it ends, also on error or Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// SIGHUP (terminal gone) ends the run like Ctrl-C, so the processes it started are
	// stopped and its temporary directory removed rather than the driver dying on the
	// spot. Not SIGPIPE: once a program asks for it, Go delivers it for a write to any
	// broken pipe or socket, and the cluster scenarios' emulators, which run in this
	// process, write to the sockets of the members they kill. Output piped into
	// something that quit (say head) kills the driver as Go does by default; the
	// processes it started get SIGKILL with it (Pdeathsig).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  loadgen ack  --rate R --duration D --guilds G [--out FILE] [flags]
  loadgen idle --guilds N [--out FILE] [flags]
  loadgen failover-node --nodes N --guilds G [--out FILE] [flags]
  loadgen drain --nodes N --guilds G [--out FILE] [flags]
  loadgen scale-out --from N --to M --guilds G [--out FILE] [flags]
run "loadgen SCENARIO -h" for the flags`

// common are the flags of every scenario.
type common struct {
	out     string
	binDir  string
	logDir  string
	verbose bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.out, "out", "", "append one JSON object per scenario run to this file (JSON Lines)")
	fs.StringVar(&c.binDir, "bin-dir", "", "use the node, emulator and barebot binaries in this directory instead of building them")
	fs.StringVar(&c.logDir, "log-dir", "", "keep the processes' logs (and the node's store) in this directory instead of a temporary one")
	fs.BoolVar(&c.verbose, "v", false, "log progress")
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	var scenario func(*runEnv) error
	var c common
	var err error
	switch args[0] {
	case "ack":
		var o ackOptions
		o, err = parseAck(args[1:], stderr)
		c, scenario = o.common, func(env *runEnv) error { return runAck(ctx, env, o) }
	case "idle":
		var o idleOptions
		o, err = parseIdle(args[1:], stderr)
		c, scenario = o.common, func(env *runEnv) error { return runIdle(ctx, env, o) }
	case "failover-node", "drain":
		var o clusterOptions
		o, err = parseCluster(args[0], args[1:], stderr)
		drain := args[0] == "drain"
		c, scenario = o.common, func(env *runEnv) error { return runFailover(ctx, env, o, drain) }
	case "scale-out":
		var o clusterOptions
		o, err = parseCluster(args[0], args[1:], stderr)
		c, scenario = o.common, func(env *runEnv) error { return runScaleOut(ctx, env, o) }
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "loadgen: unknown scenario %q\n%s\n", args[0], usage)
		return exitUsage
	}
	if err != nil {
		// The flag package has printed its own errors (and -h's usage).
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "loadgen:", err)
		}
		return exitUsage
	}
	if err := runScenario(ctx, c, stdout, stderr, scenario); err != nil {
		var ue usageError
		switch {
		case errors.As(err, &ue):
			fmt.Fprintln(stderr, "loadgen:", err)
			return exitUsage
		case ctx.Err() != nil:
			fmt.Fprintln(stderr, "loadgen: interrupted; every process it started was stopped")
		default:
			fmt.Fprintln(stderr, "loadgen:", err)
		}
		return exitFailure
	}
	return exitOK
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// runEnv is what a scenario runs with: built binaries, a directory for logs and stores,
// where to print and where to append JSON.
type runEnv struct {
	bins   binaries
	dir    string
	stdout io.Writer
	log    *slog.Logger
	out    string
}

func runScenario(ctx context.Context, c common, stdout, stderr io.Writer, scenario func(*runEnv) error) error {
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	env := &runEnv{stdout: stdout, out: c.out, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if c.logDir != "" {
		if err := os.MkdirAll(c.logDir, 0o755); err != nil {
			return fmt.Errorf("--log-dir: %w", err)
		}
		env.dir = c.logDir
	} else {
		dir, err := os.MkdirTemp("", "loadgen-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
		env.dir = dir
	}
	if c.binDir != "" {
		env.bins = binariesIn(c.binDir)
		for _, b := range []string{env.bins.Node, env.bins.Emulator, env.bins.Bare} {
			if _, err := os.Stat(b); err != nil {
				return usagef("--bin-dir: %v", err)
			}
		}
	} else {
		env.log.Info("building node, emulator and bare bot")
		bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		bins, err := build(bctx, env.dir, env.log)
		cancel()
		if err != nil {
			return err
		}
		env.bins = bins
	}
	return scenario(env)
}

// checkRange is a flag bound check.
func checkRange[T int | float64 | time.Duration](name string, v, lo, hi T) error {
	if v < lo || v > hi {
		return usagef("--%s %v: must be in [%v, %v]", name, v, lo, hi)
	}
	return nil
}
