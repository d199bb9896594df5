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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/internal/admin"
	"github.com/ensemble-bot/ensemble/internal/config"
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
	code := run(ctx, os.Args[1:], os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

type flags struct {
	config    string
	logFormat string
	logLevel  string
	adminAddr string
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "cluster.yaml", "path of the configuration file")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "admin HTTP address (overrides node.admin_addr), so several nodes can share a host")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
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
	cfg, err := loadConfig(f, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "node: config:", err)
		return exitUsage
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("node failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func loadConfig(f flags, getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(f.config, getenv)
	if err != nil {
		return cfg, err
	}
	if f.adminAddr != "" {
		cfg.Node.AdminAddr = f.adminAddr
		if err := cfg.Validate(); err != nil {
			return cfg, fmt.Errorf("--admin-addr: %w", err)
		}
	}
	return cfg, nil
}

// serve runs the node until ctx ends, then stops it within
// node.shutdown_timeout.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	metrics, err := telemetry.NewMetrics()
	if err != nil {
		return err
	}
	ready := admin.NewReadiness("cluster", "discord", "lavalink")
	adminSrv, err := admin.Serve(cfg.Node.AdminAddr, admin.Handler(metrics.Registry, ready), log)
	if err != nil {
		return err
	}
	log.Info("admin HTTP listening", "addr", adminSrv.Addr())

	if cfg.Discord.Token.IsSet() {
		ready.Set("discord", false, "gateway not connected")
	} else {
		ready.Set("discord", false, "not configured")
		log.Warn("discord: not configured (set DISCORD_TOKEN or DISCORD_TOKEN_FILE); the node runs but is not ready")
	}
	ready.Set("lavalink", false, fmt.Sprintf("no node connected (0/%d)", len(cfg.Lavalink.Nodes)))

	member, err := cluster.Start(ctx, cfg.Cluster, cluster.Options{Log: log, MeterProvider: metrics.MeterProvider})
	if err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
		defer cancel()
		return errors.Join(err, adminSrv.Shutdown(shutdownCtx))
	}
	ready.Set("cluster", true, fmt.Sprintf("%s member %s", cfg.Cluster.Provider, member.System.Address()))

	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.Node.ShutdownTimeout)
	return shutdown(cfg.Node.ShutdownTimeout, log, member, adminSrv, metrics)
}

// shutdown stops the parts in reverse order of start, giving up after
// timeout so a stuck part cannot keep the process alive.
func shutdown(timeout time.Duration, log *slog.Logger, member *cluster.Member, adminSrv *admin.Server, metrics *telemetry.Metrics) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		member.Stop(true)
		done <- errors.Join(adminSrv.Shutdown(ctx), metrics.Shutdown(ctx))
	}()
	select {
	case err := <-done:
		if err == nil {
			log.Info("stopped")
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("shutdown took longer than node.shutdown_timeout (%s)", timeout)
	}
}
