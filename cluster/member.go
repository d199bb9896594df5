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
	"github.com/asynkron/protoactor-go/remote"
	"go.opentelemetry.io/otel/metric"

	"github.com/ensemble-bot/ensemble/cluster/membership"
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
	// leave takes the member out of the membership (nil: nothing to do).
	leave func()
	// ejected is closed when the membership dropped this member (nil for
	// a provider that never does).
	ejected chan struct{}
	lookup  *lookup
}

// Options carry what a member needs besides its configuration.
type Options struct {
	Log           *slog.Logger
	MeterProvider metric.MeterProvider
	// LibraryLogLevel is the floor for protoactor's own logs, which report
	// routine events at INFO. Zero means slog.LevelWarn.
	LibraryLogLevel slog.Leveler
	Kinds           []*pcluster.Kind
	// IdleTimeouts passivates a kind's activations after that long
	// without a message (by kind name; absent or zero: never).
	IdleTimeouts map[string]time.Duration

	// otherLookup replaces the member's identity lookup (tests: a member
	// of the previous version, on protoactor's disthash).
	otherLookup pcluster.IdentityLookup
}

// New builds a member without starting it, so the grains' dependencies can
// hold its cluster before the first activation.
func New(cfg config.Cluster, opts Options) (*Member, error) {
	m := &Member{log: opts.Log, cfg: cfg}
	var provider pcluster.ClusterProvider
	switch cfg.Provider {
	case config.ProviderSingle:
		provider = singleProvider{}
	case config.ProviderEtcd:
		m.ejected = make(chan struct{})
		p := &etcdProvider{ejected: m.ejected, opts: membership.EtcdOptions{
			Endpoints:   cfg.EtcdEndpoints,
			Prefix:      cfg.EtcdPrefix + "/" + cfg.Name + "/members/",
			LeaseTTL:    cfg.EtcdLeaseTTL,
			CallTimeout: min(cfg.EtcdLeaseTTL/2, 2*time.Second),
			Log:         opts.Log.With("provider", "etcd"),
		}}
		provider, m.leave = p, func() { _ = p.Shutdown(false) }
	case config.ProviderAutomanaged:
		m.ejected = make(chan struct{})
		p := newAutomanagedProvider(automanagedOptions{
			Cluster: cfg.Name,
			Addr:    cfg.AutomanagedAddr,
			Members: cfg.Members,
			Refresh: cfg.AutomanagedRefresh,
			Ejected: m.ejected,
			Log:     opts.Log.With("provider", "automanaged"),
		})
		provider, m.leave = p, func() { _ = p.Shutdown(false) }
	default:
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
	var remoteOpts []remote.ConfigOption
	if cfg.AdvertiseAddr != "" {
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(cfg.AdvertiseAddr))
	}
	remoteCfg := remote.Configure(host, port, remoteOpts...)
	m.lookup = newLookup(opts.IdleTimeouts, opts.Log)
	var identityLookup pcluster.IdentityLookup = m.lookup
	if opts.otherLookup != nil {
		identityLookup = opts.otherLookup
	}
	clusterCfg := pcluster.Configure(cfg.Name, provider, identityLookup, remoteCfg,
		pcluster.WithKinds(opts.Kinds...),
		pcluster.WithRequestTimeout(cfg.RequestTimeout),
	)
	m.System, m.Cluster = system, pcluster.New(system, clusterCfg)
	return m, nil
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
			m.lookup.close()
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
		m.lookup.close()
		return fmt.Errorf("start cluster member: %w", ctx.Err())
	}
	m.running = true
	m.log = m.log.With("member", m.System.ID, "address", m.System.Address())
	m.log.Info("cluster member started", "provider", m.cfg.Provider, "cluster", m.cfg.Name)
	return nil
}

// Running reports whether the member started and has not stopped.
func (m *Member) Running() bool { return m.running }

// Ejected is closed when the other members have dropped this one (its
// lease expired while it could not reach etcd, or its key was deleted):
// they refuse its ID from then on, so the node has to stop this member and
// start a new one. Never closed for the single provider.
func (m *Member) Ejected() <-chan struct{} { return m.ejected }

// Leave takes the member out of the membership at once, so the others
// place new activations elsewhere while this one stops its own; Stop does
// it too.
func (m *Member) Leave() {
	if m.running && m.leave != nil {
		m.leave()
	}
}

// Stop leaves the cluster and stops the member. protoactor's graceful
// shutdown only adds a fixed 2 s sleep for its identity lookup's handover;
// our providers announce the leave themselves (Leave), so it is skipped.
func (m *Member) Stop() {
	if !m.running {
		return
	}
	m.Leave()
	m.running = false
	start := time.Now()
	m.Cluster.Shutdown(false)
	m.lookup.close()
	m.log.Info("cluster member stopped", "took", time.Since(start).Round(time.Millisecond))
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
