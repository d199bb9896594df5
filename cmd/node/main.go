// Command node runs one Ensemble cluster member: it loads cluster.yaml,
// starts the actor system and cluster, serves the admin endpoints and stops
// cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/heapfloor"
	"github.com/ensemble-bot/ensemble/internal/node"
	"github.com/ensemble-bot/ensemble/internal/sandbox"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// Exit codes: 2 means the invocation or configuration is wrong (fix it and
// retry); 1 means the node failed while running.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

type flags struct {
	config    string
	logFormat string
	logLevel  string
	adminAddr string
	bindAddr  string
	advertise string
	sandbox   bool
	nodes     int
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "cluster.yaml", "path of the configuration file")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "admin HTTP address (overrides node.admin_addr), so several nodes can share a host")
	fs.StringVar(&f.bindAddr, "bind-addr", "", "cluster gRPC listener (overrides cluster.bind_addr)")
	fs.StringVar(&f.advertise, "advertise-addr", "", "where the other members reach this one (overrides cluster.advertise_addr), e.g. \"$(POD_IP):7000\" in Kubernetes")
	fs.BoolVar(&f.sandbox, "sandbox", false, "run one node against the built-in Discord and Lavalink emulators with a scripted listener, then exit")
	fs.IntVar(&f.nodes, "nodes", 1, "with --sandbox: run this many members (2-9) as one cluster on a throwaway etcd and Redis, and kill one mid-track")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.nodes != 1 && (!f.sandbox || f.nodes < 2 || f.nodes > 9) {
		return f, fmt.Errorf("--nodes %d: only with --sandbox, and 2 to 9", f.nodes)
	}
	return f, nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "node:", err)
		}
		return exitUsage
	}
	log, err := telemetry.NewLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "node:", err)
		return exitUsage
	}
	// go-redis prints its own lines (a pool that cannot dial, say) with
	// the standard logger; they go through ours instead.
	redis.SetLogger(telemetry.PrintfLogger{Log: log.With("lib", "go-redis"), Level: slog.LevelWarn})
	if f.sandbox {
		// The terminal shows the user's view; the node's own logs are kept
		// to warnings.
		quiet, _ := telemetry.NewLogger(stderr, f.logFormat, "warn")
		if f.logLevel != "info" {
			quiet = log
		}
		if f.nodes > 1 {
			self, err := os.Executable()
			if err == nil {
				err = sandbox.RunCluster(ctx, stdout, sandbox.ClusterOptions{Nodes: f.nodes, Node: self, Pause: 300 * time.Millisecond})
			}
			if err != nil {
				log.Error("sandbox failed", "err", err)
				return exitFailure
			}
			return exitOK
		}
		if err := sandbox.Run(ctx, stdout, sandbox.Options{Pause: 300 * time.Millisecond, Log: quiet}); err != nil {
			log.Error("sandbox failed", "err", err)
			return exitFailure
		}
		return exitOK
	}
	cfg, err := loadConfig(f, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "node: config:", err)
		return exitUsage
	}
	// Process-wide, so here and not in node.Start (tests run several
	// nodes in one process).
	go heapfloor.Run(ctx, uint64(cfg.Node.GCHeapFloorMiB)<<20, log)
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("node failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func loadConfig(f flags, getenv func(string) string) (config.Config, error) {
	return config.LoadWith(f.config, getenv, config.Flags{AdminAddr: f.adminAddr, BindAddr: f.bindAddr, AdvertiseAddr: f.advertise})
}

// rejoinBackoff spaces the starts of a node the cluster dropped, while
// they fail (etcd or Redis still unreachable, say).
var rejoinBackoff = supervisor.Backoff{Base: time.Second, Max: 30 * time.Second, Jitter: 0.5}

// serve runs the node until ctx ends, then stops it within
// node.shutdown_timeout. A node the cluster dropped (its lease expired
// while it could not reach etcd) is stopped and started again: the new
// member has a new ID, which the others accept.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	rejoining := false
	for attempt := 0; ; {
		n, err := node.Start(ctx, cfg, node.Options{Log: log})
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopped while starting: Start undid what it had started.
			log.Info("stopped during startup", "err", err)
			return nil
		case err != nil && !rejoining:
			return err
		case err != nil:
			wait, _ := rejoinBackoff.Delay(attempt, rand.Float64())
			attempt++
			log.Error("could not rejoin the cluster; retrying", "err", err, "attempt", attempt, "in", wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		attempt = 0
		select {
		case <-ctx.Done():
			log.Info("shutting down", "timeout", cfg.Node.ShutdownTimeout)
			if err := stopNode(n, cfg); err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		case <-n.Ejected():
			log.Warn("the cluster dropped this member; restarting it as a new member")
			if err := stopNode(n, cfg); err != nil {
				log.Error("stop of the dropped member", "err", err)
			}
			rejoining = true
		}
	}
}

func stopNode(n *node.Node, cfg config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
	defer cancel()
	return n.Stop(ctx)
}
