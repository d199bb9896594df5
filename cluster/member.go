package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"go.opentelemetry.io/otel/metric"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// ErrProviderNotWired is returned for providers that validation accepts but
// this build cannot start yet.
var ErrProviderNotWired = errors.New("cluster provider not wired yet")

// Member is a running cluster member.
type Member struct {
	System  *actor.ActorSystem
	Cluster *pcluster.Cluster
	log     *slog.Logger
	cfg     config.Cluster
	// running is set once Start succeeded, until Stop.
	running bool
}

// Options carry what a member needs besides its configuration.
type Options struct {
	Log           *slog.Logger
	MeterProvider metric.MeterProvider
	// LibraryLogLevel is the floor for protoactor's own logs, which report
	// routine events at INFO. Zero means slog.LevelWarn.
	LibraryLogLevel slog.Leveler
	Kinds           []*pcluster.Kind
}

// New builds a member without starting it, so the grains' dependencies can
// hold its cluster before the first activation.
func New(cfg config.Cluster, opts Options) (*Member, error) {
	if cfg.Provider != config.ProviderSingle {
		return nil, fmt.Errorf("%w: %s", ErrProviderNotWired, cfg.Provider)
	}
	host, portText, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster.bind_addr: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("cluster.bind_addr: %w", err)
	}
	floor := opts.LibraryLogLevel
	if floor == nil {
		floor = slog.LevelWarn
	}
	libLog := slog.New(telemetry.WithMinLevel(opts.Log.Handler(), floor)).With("lib", "protoactor")
	actorOpts := []actor.ConfigOption{
		actor.WithLoggerFactory(func(sys *actor.ActorSystem) *slog.Logger { return libLog.With("system", sys.ID) }),
	}
	if opts.MeterProvider != nil {
		actorOpts = append(actorOpts, actor.WithMetricProviders(opts.MeterProvider))
	}
	system := actor.NewActorSystem(actorOpts...)
	remoteCfg := remote.Configure(host, port)
	clusterCfg := pcluster.Configure(cfg.Name, &singleProvider{}, disthash.New(), remoteCfg,
		pcluster.WithKinds(opts.Kinds...),
		pcluster.WithRequestTimeout(cfg.RequestTimeout),
	)
	return &Member{System: system, Cluster: pcluster.New(system, clusterCfg), log: opts.Log, cfg: cfg}, nil
}

// Start starts a member and returns once the cluster has its topology.
func Start(ctx context.Context, cfg config.Cluster, opts Options) (*Member, error) {
	m, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	return m, m.Start(ctx)
}

// Start joins the cluster.
func (m *Member) Start(ctx context.Context) error {
	// remote.Start panics when it cannot listen; a node should exit with a
	// clear error instead.
	started := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				started <- fmt.Errorf("start cluster member on %s: %v", m.cfg.BindAddr, r)
			}
		}()
		m.Cluster.StartMember() // sleeps a fixed 1 s inside protoactor
		started <- nil
	}()
	select {
	case err := <-started:
		if err != nil {
			m.System.Shutdown()
			return err
		}
	case <-ctx.Done():
		// StartMember cannot be interrupted (it takes about a second):
		// wait for it, then undo it, so nothing half-started is left
		// (protoactor's Shutdown of a half-started member panics).
		if err := <-started; err != nil {
			m.System.Shutdown()
		} else {
			m.Cluster.Shutdown(false)
		}
		return fmt.Errorf("start cluster member: %w", ctx.Err())
	}
	m.running = true
	m.log = m.log.With("member", m.System.ID, "address", m.System.Address())
	m.log.Info("cluster member started", "provider", m.cfg.Provider, "cluster", m.cfg.Name)
	return nil
}

// Running reports whether the member started and has not stopped.
func (m *Member) Running() bool { return m.running }

// Stop leaves the cluster. A graceful stop lets activations hand over;
// protoactor sleeps a fixed 2 s for that.
func (m *Member) Stop(graceful bool) {
	if !m.running {
		return
	}
	m.running = false
	start := time.Now()
	m.Cluster.Shutdown(graceful)
	m.log.Info("cluster member stopped", "graceful", graceful, "took", time.Since(start).Round(time.Millisecond))
}

// singleProvider is a membership of one: it publishes this member as the
// whole topology and never changes it.
type singleProvider struct{}

func (singleProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("single provider: %w", err)
	}
	c.MemberList.UpdateClusterTopology(pcluster.Members{{
		Id:    c.ActorSystem.ID,
		Host:  host,
		Port:  int32(port),
		Kinds: c.GetClusterKinds(),
	}})
	return nil
}

func (singleProvider) StartClient(*pcluster.Cluster) error {
	return errors.New("single provider: a client cannot join a single-member cluster")
}

func (singleProvider) Shutdown(bool) error { return nil }
