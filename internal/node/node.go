// Package node wires one Ensemble cluster member from its configuration:
// store, telemetry, admin HTTP, the cluster with its guild, session and
// shard kinds, the Discord REST client, the Lavalink client and the shard
// keeper. It holds no domain logic; cmd/node runs it, and end-to-end tests
// and the sandbox run it against the emulators.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/actors/guild"
	"github.com/ensemble-bot/ensemble/actors/lavalink"
	"github.com/ensemble-bot/ensemble/actors/session"
	"github.com/ensemble-bot/ensemble/actors/shard"
	"github.com/ensemble-bot/ensemble/actors/supervisor"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/admin"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordrest"
	"github.com/ensemble-bot/ensemble/internal/inflight"
	"github.com/ensemble-bot/ensemble/internal/ratelimit"
	"github.com/ensemble-bot/ensemble/internal/status"
	"github.com/ensemble-bot/ensemble/internal/store"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// Options are what a node needs besides its configuration.
type Options struct {
	Log *slog.Logger
	// GatewayOpts are extra disgo gateway options (tests: identify limiter).
	GatewayOpts []gateway.ConfigOpt
	// WrapStore, when set, wraps the store the node opens (tests: a slow
	// or failing store).
	WrapStore func(store.Store) store.Store
	// TracerProvider replaces the one node.otlp_endpoint and the OTEL_*
	// variables would make (tests: an in-memory exporter).
	TracerProvider trace.TracerProvider
}

// Node is a running member.
type Node struct {
	cfg      config.Config
	log      *slog.Logger
	metrics  *telemetry.Metrics
	tracing  *telemetry.Tracing
	ready    *admin.Readiness
	adminSrv *admin.Server
	store    store.Store
	// breaker guards the Redis store (nil with bbolt).
	breaker *store.Guarded
	// limiter counts commands against limits.user_commands and
	// guild_commands; closeLimiter releases its Redis client.
	limiter      *ratelimit.Limiter
	closeLimiter func()
	member       *ecluster.Member
	// audio is the Lavalink client once Discord's READY gave the bot user
	// ID it needs; sessions and autocomplete see it from the start.
	audio   *lateAudio
	discord *commands.Discord
	ordered *ecluster.Ordered
	runCtx  context.Context
	cancel  context.CancelFunc
	// done is closed when the keeper's goroutine ends; nil until it runs.
	done chan struct{}
	// playerEvents orders Lavalink events per guild, apart from the
	// gateway's events in ordered.
	playerEvents *ecluster.Ordered
	// draining is set when the node starts to stop: Lavalink events are
	// no longer delivered.
	draining atomic.Bool
	// placement says which guilds' sessions this member owns.
	placement *ecluster.Placement
	// statusFrom is the placement /status asks the members of, while the
	// member runs (nil before and once it stops).
	statusFrom atomic.Pointer[ecluster.Placement]
	started    time.Time

	shardMu sync.Mutex
	// shardsHeld and shardsReady count this member's shards, and ready
	// ones, for /metrics.
	shardsHeld, shardsReady prometheus.Gauge
	// shardReady is, for each shard this member runs, whether its gateway
	// is up. A single member runs every shard; a member of a cluster runs
	// those the cluster placed on it, maybe none.
	shardReady map[int]bool
	// identified: Discord answered GET /users/@me (members of a cluster).
	identified bool

	// readyMu guards the IDs of the first READY, and stopping: once it is
	// set, no READY starts anything (bg is not added to after Stop waits).
	readyMu  sync.Mutex
	stopping bool
	appID    string
	botID    string
	bg       sync.WaitGroup
}

const (
	// maxBusyGuilds bounds the guilds with deliveries under way at once
	// (each has a goroutine while it has work).
	maxBusyGuilds = 100_000
	// playerEventBacklog bounds one guild's Lavalink events waiting for
	// its session; a healthy session takes them in microseconds.
	playerEventBacklog = 1024
)

// Readiness components.
const (
	compCluster  = "cluster"
	compStore    = "store"
	compDiscord  = "discord"
	compLavalink = "lavalink"
)

// Start starts the node. Without a Discord token it runs but is not ready.
func Start(ctx context.Context, cfg config.Config, o Options) (_ *Node, err error) {
	// Lines logged with a traced context carry its trace and span IDs.
	log := slog.New(telemetry.WithTraceIDs(o.Log.Handler()))
	n := &Node{cfg: cfg, log: log, audio: &lateAudio{}, started: time.Now()}
	n.runCtx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = n.stopParts(context.Background())
		}
	}()
	if n.metrics, err = telemetry.NewMetrics(); err != nil {
		return nil, err
	}
	if o.TracerProvider != nil {
		n.tracing = &telemetry.Tracing{Provider: o.TracerProvider}
	} else if n.tracing, err = telemetry.NewTracing(ctx, cfg.Node.OTLPEndpoint, "ensemble", instanceID()); err != nil {
		return nil, err
	}
	tracer := n.tracing.Provider.Tracer(telemetry.TracerName)
	n.shardsHeld = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ensemble_shards_held", Help: "Discord shards this member runs."})
	n.shardsReady = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ensemble_shards_ready", Help: "Discord shards of this member whose gateway is ready."})
	shardConnect := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ensemble_shard_connect_seconds",
		Help:    "Time from a shard's activation on this member to its gateway being ready: how=resumed (the Discord session another activation stored: the shard moved here after a failover or a handover) or identified (a new session). The membership's detection time comes before it.",
		Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 10, 20, 60},
	}, []string{"how"})
	for _, how := range []string{"resumed", "identified"} {
		shardConnect.WithLabelValues(how)
	}
	for _, g := range []prometheus.Collector{n.shardsHeld, n.shardsReady, shardConnect} {
		if err := n.metrics.Registry.Register(g); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	n.ready = admin.NewReadiness(compCluster, compStore, compDiscord, compLavalink)
	statusPage := status.Handler{Collect: n.clusterStatus, Protected: !loopback(cfg.Node.AdminAddr), Token: cfg.Node.AdminToken}
	if statusPage.Protected && !statusPage.Token.IsSet() {
		log.Warn("admin server not on loopback and ADMIN_TOKEN not set: /status is refused")
	}
	if n.adminSrv, err = admin.Serve(cfg.Node.AdminAddr, admin.Handler(n.metrics.Registry, n.ready, statusPage.Register), log); err != nil {
		return nil, err
	}
	log.Info("admin HTTP listening", "addr", n.adminSrv.Addr())

	if n.store, err = n.openStore(ctx, cfg.Store); err != nil {
		return nil, err
	}
	if o.WrapStore != nil {
		n.store = o.WrapStore(n.store)
	}
	n.watchStore(ctx)
	if n.limiter, n.closeLimiter, err = newLimiter(cfg, n.metrics.Registry, log); err != nil {
		return nil, err
	}

	token := cfg.Discord.Token
	var discord *commands.Discord
	var restClient rest.Rest
	if token.IsSet() {
		restOpts := []rest.ClientConfigOpt{
			// disgo logs request URLs at DEBUG, and interaction callback
			// and webhook URLs carry the interaction token.
			rest.WithLogger(slog.New(telemetry.WithMinLevel(log.Handler(), slog.LevelInfo)).With("lib", "disgo")),
			// disgo's default client keeps 2 idle connections per host:
			// under load most calls would open a new one.
			rest.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}),
		}
		if cfg.Discord.RESTURL != "" {
			restOpts = append(restOpts, rest.WithURL(cfg.Discord.RESTURL))
		}
		// The token is taken as is; disgo.New would parse an application
		// ID out of it, which Discord does not document. discordrest
		// replaces disgo's rate limiter and retries 5xx where safe.
		restClient, _, err = discordrest.New(token.Reveal(), log.With("component", "discord-rest"), n.metrics.Registry, restOpts...)
		if err != nil {
			return nil, err
		}
		discord = commands.NewDiscord(restClient)
		n.discord = discord
		n.ready.Set(compDiscord, false, "connecting")
	} else {
		n.ready.Set(compDiscord, false, "not configured")
		log.Warn("discord: not configured (set DISCORD_TOKEN or DISCORD_TOKEN_FILE); the node runs but is not ready")
	}

	n.member, err = ecluster.New(cfg.Cluster, ecluster.Options{Log: log, MeterProvider: n.metrics.MeterProvider,
		IdleTimeouts: map[string]time.Duration{guild.Kind: cfg.Limits.GuildIdleTimeout}})
	if err != nil {
		return nil, err
	}
	c := n.member.Cluster
	// Gateway events (interactions, voice) and Lavalink events go through
	// separate workers: a guild whose session is busy with a slow load
	// must not hold up other guilds' interactions behind its player
	// updates.
	// Each guild's deliveries run in order on their own, so one slow
	// guild delays no other; a guild past its backlog is answered busy.
	n.ordered = ecluster.NewOrdered(cfg.Limits.GuildBacklog, maxBusyGuilds)
	n.playerEvents = ecluster.NewOrdered(playerEventBacklog, maxBusyGuilds)

	// Lavalink needs the bot's user ID (its User-Id header), which only
	// READY gives; until then the sessions' plays fail with
	// audio.ErrNoNode and are retried.
	if discord != nil {
		n.ready.Set(compLavalink, false, "waiting for Discord READY (the bot user ID)")
	} else {
		n.ready.Set(compLavalink, false, "waiting for Discord (not configured)")
	}

	// Counted from the gateway reader to the first answer, for at most
	// Discord's 3 s.
	inFlight := inflight.New(cfg.Limits.InteractionsInFlight, 3*time.Second)
	replies, err := newReplier(discord, n.metrics.Registry, inFlight)
	if err != nil {
		return nil, err
	}
	n.shardReady = make(map[int]bool, cfg.Discord.ShardCount)
	// Shards take their leases as soon as the member starts, before the
	// placement exists: until then every holder counts as alive.
	var placed atomic.Pointer[ecluster.Placement]
	// reachable fails a call at once, instead of after protoactor's fixed
	// 5 s, when the grain's member has just died (Placement.Reachable).
	reachable := func(kind, identity string) error {
		if p := placed.Load(); p != nil {
			return p.Reachable(kind, identity)
		}
		return nil
	}
	guildMetrics, err := guild.NewMetrics(n.metrics.Registry)
	if err != nil {
		return nil, err
	}
	sessionMetrics, err := session.NewMetrics(n.metrics.Registry)
	if err != nil {
		return nil, err
	}
	mailboxes := map[string]*ecluster.MailboxDepth{guild.Kind: {}, session.Kind: {}, shard.Kind: {}}
	for kind, depth := range mailboxes {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "ensemble_mailbox_messages",
			Help:        "Messages waiting in the mailboxes of a kind's grains on this member.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 { return float64(depth.Len()) })
		if err := n.metrics.Registry.Register(g); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	kinds := []*cluster.Kind{
		session.NewKind(session.Deps{
			Tracer:      tracer,
			Metrics:     sessionMetrics,
			Mailbox:     mailboxes[session.Kind],
			Store:       n.store,
			Audio:       n.audio,
			Gateway:     shard.NewGateway(c, cfg.Discord.ShardCount),
			Messages:    messages{discord},
			Guilds:      guildViews{c: c, reachable: reachable},
			Log:         log,
			Rand:        rand.IntN,
			QueueMax:    cfg.Limits.QueueMax,
			IdleTimeout: cfg.Limits.SessionIdleTimeout,
			CallTimeout: cfg.Lavalink.RequestTimeout,
		}),
		guild.NewKind(guild.Deps{
			Tracer:      tracer,
			Metrics:     guildMetrics,
			Mailbox:     mailboxes[guild.Kind],
			Store:       n.store,
			Replier:     replies,
			Sessions:    sessions{c: c, reachable: reachable},
			Search:      n.audio,
			Log:         log,
			Cooldown:    cfg.Limits.CommandCooldown,
			MaxInFlight: cfg.Limits.GuildCommandsInFlight,
		}),
		shard.NewKind(shard.Deps{
			Tracer:      tracer,
			Mailbox:     mailboxes[shard.Kind],
			Token:       token,
			GatewayURL:  cfg.Discord.GatewayURL,
			ShardCount:  cfg.Discord.ShardCount,
			GatewayOpts: o.GatewayOpts,
			Log:         log,
			Ordered:     n.ordered,
			// Retried deliveries are safe: the guild grain drops an
			// interaction it has seen, and voice facts are idempotent.
			// Each attempt checks first that the grain's member is still
			// reachable: one that dies while a call is under way must not
			// hold the next attempt for 5 s.
			Guilds: func(ctx context.Context, in *clusterpb.Interaction) error {
				// Counted before the guild grain sees it: the grain
				// never waits on the limiter's Redis.
				if limited(ctx, n.limiter, replies, log, in) {
					return nil
				}
				_, err := ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.HandleReply, error) {
					if err := reachable(guild.Kind, in.GetGuildId()); err != nil {
						return nil, err
					}
					return clusterpb.GetGuildGrainClient(c, in.GetGuildId()).Handle(in, opts...)
				})
				return err
			},
			Voice: func(ctx context.Context, ev *clusterpb.VoiceEvent) error {
				_, err := ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
					if err := reachable(session.Kind, ev.GetGuildId()); err != nil {
						return nil, err
					}
					return clusterpb.GetSessionGrainClient(c, ev.GetGuildId()).Voice(ev, opts...)
				})
				return err
			},
			MaxLag: cfg.Limits.ShardMaxLag,
			Leases: n.store,
			Alive: func(member string) bool {
				p := placed.Load()
				return p == nil || p.Member(member)
			},
			Solo:     cfg.Cluster.Provider == config.ProviderSingle,
			Stopping: n.draining.Load,
			Admit:    inFlight.Acquire,
			Refuse:   replies.Refuse,
			OnStatus: n.shardStatus,
			OnActive: n.shardActive,
			OnReady:  n.discordReady,
			Connected: func(resumed bool, took time.Duration) {
				how := "identified"
				if resumed {
					how = "resumed"
				}
				shardConnect.WithLabelValues(how).Observe(took.Seconds())
			},
		}),
	}
	for _, k := range kinds {
		c.Config.Kinds[k.Kind] = k
	}
	if err := n.member.Start(ctx); err != nil {
		return nil, err
	}
	n.ready.Set(compCluster, true, fmt.Sprintf("%s member %s", cfg.Cluster.Provider, n.member.System.Address()))

	runCtx := n.runCtx
	placement := ecluster.NewPlacement(c)
	n.placement = placement
	placed.Store(placement)
	if _, err := status.Spawn(n.member.System, log, n.memberStatus); err != nil {
		return nil, err
	}
	n.statusFrom.Store(placement)
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		defer placement.Close()
		if discord == nil {
			<-runCtx.Done()
			return
		}
		if n.multiMember() {
			n.bg.Add(1)
			go n.identifyBot(runCtx)
		}
		n.bg.Add(1)
		go n.own(runCtx, placement)
		shard.Keeper{
			Cluster: c, ShardCount: cfg.Discord.ShardCount, Interval: time.Second, Log: log,
			Owns:    func(id string) bool { return placement.Owns(shard.Kind, id) },
			Changed: placement.Watch(),
		}.Run(runCtx)
	}()
	return n, nil
}

// Ejected is closed when the cluster has dropped this member (see
// cluster.Member.Ejected): the node must be stopped and a new one started.
func (n *Node) Ejected() <-chan struct{} { return n.member.Ejected() }

// multiMember: other members may run this cluster's shards.
func (n *Node) multiMember() bool { return n.cfg.Cluster.Provider != config.ProviderSingle }

// identifyBotBackoff spaces the tries of GET /users/@me.
var identifyBotBackoff = supervisor.Backoff{Base: time.Second, Max: 30 * time.Second, Jitter: 0.5}

// identifyBot learns the bot user ID over REST and starts Lavalink with
// it, for a member of a cluster that runs no shard and so gets no READY.
// A READY on this member may come first; the first start wins.
func (n *Node) identifyBot(ctx context.Context) {
	defer n.bg.Done()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		id, err := n.discord.BotUserID(c)
		cancel()
		if err == nil {
			n.log.Info("Discord named the bot user", "bot", id)
			n.startAudio(id)
			n.shardMu.Lock()
			n.identified = true
			n.reportShards()
			n.shardMu.Unlock()
			return
		}
		n.log.Warn("ask Discord for the bot user", "err", err, "attempt", attempt+1)
		wait, _ := identifyBotBackoff.Delay(attempt, rand.Float64())
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// AdminAddr is the bound admin HTTP address.
func (n *Node) AdminAddr() string { return n.adminSrv.Addr() }

// Readiness exposes the readiness tracker (tests and the sandbox wait on it).
func (n *Node) Readiness() *admin.Readiness { return n.ready }

// shardStatus is called by each shard grain (from its own goroutine).
func (n *Node) shardStatus(id int, ok bool) {
	n.shardMu.Lock()
	defer n.shardMu.Unlock()
	if _, runs := n.shardReady[id]; runs {
		n.shardReady[id] = ok
	}
	n.reportShards()
}

// shardActive is told when a shard starts or stops on this member.
func (n *Node) shardActive(id int, active bool) {
	n.shardMu.Lock()
	defer n.shardMu.Unlock()
	if id < 0 || id >= n.cfg.Discord.ShardCount {
		return
	}
	if active {
		n.shardReady[id] = false
	} else {
		delete(n.shardReady, id)
	}
	// A single member runs every shard: its readiness changes with their
	// status only ("connecting" until the first one reports).
	if n.multiMember() {
		n.reportShards()
	}
}

// reportShards sets the Discord readiness; shardMu is held.
func (n *Node) reportShards() {
	up := 0
	for _, s := range n.shardReady {
		if s {
			up++
		}
	}
	n.shardsHeld.Set(float64(len(n.shardReady)))
	n.shardsReady.Set(float64(up))
	if !n.multiMember() {
		n.ready.Set(compDiscord, up == n.cfg.Discord.ShardCount, fmt.Sprintf("%d/%d shards ready", up, n.cfg.Discord.ShardCount))
		return
	}
	// In a cluster the member answers for the shards it runs; which those
	// are is the cluster's choice. One that runs none is ready once Discord
	// has named the bot (its REST client works).
	ready := up == len(n.shardReady) && (len(n.shardReady) > 0 || n.identified)
	n.ready.Set(compDiscord, ready, fmt.Sprintf("%d/%d shards of this member ready (%d in the cluster)", up, len(n.shardReady), n.cfg.Discord.ShardCount))
}

// discordReady is the shards' OnReady. The first READY that names both
// the application and the bot user starts what needs them: the Lavalink
// client (the bot user ID is its User-Id) and the registration of the
// slash commands (under the application ID). Later READYs with the same
// IDs change nothing; one naming another bot (shards of one member cannot
// disagree unless the deployment is broken) is logged at ERROR and
// ignored. It runs in a shard grain, so the work runs in a goroutine that
// Stop waits for.
func (n *Node) discordReady(appID, botID string) {
	n.readyMu.Lock()
	defer n.readyMu.Unlock()
	switch {
	case n.stopping:
		return
	case appID == "" || botID == "":
		n.log.Error("READY lacks the application or bot user ID; waiting for another READY",
			"application", appID, "bot", botID)
		return
	case n.appID != "":
		if appID != n.appID || botID != n.botID {
			n.log.Error("READY names another bot than the first READY; ignored",
				"application", appID, "bot", botID, "first_application", n.appID, "first_bot", n.botID)
		}
		return
	}
	n.appID, n.botID = appID, botID
	n.log.Info("Discord identified the bot", "application", appID, "bot", botID)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.startAudio(botID)
		// Registration may wait on Discord's rate limits.
		n.registerCommands(n.runCtx, appID)
	}()
}

// startAudio creates and starts the Lavalink client for the bot user.
func (n *Node) startAudio(botID string) {
	c := n.member.Cluster
	started, err := n.audio.start(n.runCtx, func() (audioClient, error) {
		// Set before the client can report: a later OnReady must win.
		n.ready.Set(compLavalink, false, lavalink.ReadyDetail(0, len(n.cfg.Lavalink.Nodes)))
		return lavalink.New(lavalink.Options{
			BotUserID:      botID,
			Nodes:          n.cfg.Lavalink.Nodes,
			Breaker:        n.cfg.Lavalink.Breaker,
			RequestTimeout: n.cfg.Lavalink.RequestTimeout,
			Registerer:     n.metrics.Registry,
			Log:            n.log,
			OnEvent:        func(ev *clusterpb.PlayerEvent) { n.forwardPlayer(c, ev) },
			// In a cluster the members that take this one's sessions
			// over when it stops take its players over too.
			KeepPlayersOnClose: n.multiMember(),
			OnReady: func(up, total int) {
				n.ready.Set(compLavalink, up > 0, lavalink.ReadyDetail(up, total))
			},
		})
	})
	switch {
	case err != nil:
		n.log.Error("lavalink: cannot start the client", "err", err)
		n.ready.Set(compLavalink, false, "cannot start: "+err.Error())
	case started:
		n.log.Info("lavalink client started", "bot", botID)
	}
}

// registerBackoff spaces the registrations of the slash commands that
// failed: five tries in about ten seconds.
var registerBackoff = supervisor.Backoff{Base: time.Second, Max: 4 * time.Second, Jitter: 0.5, Limit: 4}

func (n *Node) registerCommands(ctx context.Context, appID string) {
	d := n.discord
	if d == nil {
		return
	}
	for retry := 0; ctx.Err() == nil; retry++ {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := d.RegisterCommands(c, appID, n.cfg.Discord.DevGuildID)
		cancel()
		if err == nil {
			n.log.Info("slash commands registered", "application", appID, "guild", n.cfg.Discord.DevGuildID)
			return
		}
		n.log.Warn("register commands", "err", err, "attempt", retry+1)
		wait, ok := registerBackoff.Delay(retry, rand.Float64())
		if !ok {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// own runs while the node runs. At start, it wakes the stored sessions
// this member owns, so the music that was playing when a node died
// resumes without waiting for a user; after each change of the
// membership, it first hands over the sessions and shards the cluster now
// places on another member (stopped here after storing what they have;
// their new owner restores them), then wakes the sessions this member now
// owns (those of a member that died or left). Each member does the work
// of what it owns only.
func (n *Node) own(ctx context.Context, p *ecluster.Placement) {
	defer n.bg.Done()
	changed := p.Watch()
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		if !first {
			n.handOver(ctx, p)
		}
		n.wakeSessions(ctx, p)
	}
}

// handOver stops the shards and sessions this member no longer owns.
func (n *Node) handOver(ctx context.Context, p *ecluster.Placement) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Node.ShutdownTimeout)
	defer cancel()
	sys := n.member.System
	shards, err := shard.StopLocalIf(ctx, sys, func(id string) bool { return !p.Owns(shard.Kind, id) })
	if shards > 0 || err != nil {
		n.log.Info("shards handed over", "count", shards, "err", err)
	}
	sessions, err := session.StopLocalIf(ctx, sys, func(guild string) bool { return !p.Owns(session.Kind, guild) })
	if sessions > 0 || err != nil {
		n.log.Info("sessions handed over", "count", sessions, "err", err)
	}
}

// wakeSessions activates the stored sessions this member owns; waking an
// active session does nothing.
func (n *Node) wakeSessions(ctx context.Context, p *ecluster.Placement) {
	// Give Lavalink a moment to connect so restored players start at once;
	// sessions retry by themselves if it takes longer.
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		if n.ready.Snapshot().Components[compLavalink].Ready {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	guilds, err := n.store.Sessions(lctx)
	cancel()
	if err != nil {
		n.log.Warn("list stored sessions", "err", err)
		return
	}
	c, woken := n.member.Cluster, 0
	for _, g := range guilds {
		if ctx.Err() != nil {
			return
		}
		if !p.Owns(session.Kind, g) {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := ecluster.Call(wctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
			return clusterpb.GetSessionGrainClient(c, g).Wake(&clusterpb.Ack{}, opts...)
		})
		cancel()
		if err != nil {
			n.log.Warn("wake session", "guild", g, "err", err)
			continue
		}
		woken++
	}
	if woken > 0 {
		n.log.Info("stored sessions woken", "count", woken, "stored", len(guilds))
	}
}

// forwardPlayer hands a Lavalink event to the guild's session grain, in
// order per guild, off disgolink's reader goroutine.
//
// One attempt only: a track end delivered twice would skip a track (or
// restart a looped one), and a lost player update is replaced by the next.
func (n *Node) forwardPlayer(c *cluster.Cluster, ev *clusterpb.PlayerEvent) {
	accepted := n.playerEvents.Submit(ev.GetGuildId(), func() {
		// This member's Lavalink players belong to sessions this member
		// ran. Once the session is placed elsewhere (or the member is
		// leaving and has stopped its sessions), its new owner has taken
		// the player over, and the event is stale: delivered, it would
		// only cost a call across members (one that hangs for the whole
		// timeout once the others have dropped a leaving member), or
		// activate the session here again, which would take the player
		// back.
		if n.draining.Load() || !n.placement.Owns(session.Kind, ev.GetGuildId()) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Cluster.RequestTimeout)
		defer cancel()
		_, err := ecluster.Call(ctx, 1, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
			return clusterpb.GetSessionGrainClient(c, ev.GetGuildId()).Player(ev, opts...)
		})
		if err != nil {
			n.log.Warn("forward player event", "guild", ev.GetGuildId(), "kind", ev.GetKind(), "err", err)
		}
	})
	if !accepted {
		n.log.Error("player event dropped: the session's backlog is full", "guild", ev.GetGuildId(), "kind", ev.GetKind())
	}
}

// Stop stops the node within ctx: the keeper and background work; then its
// shard grains (each stores its resume state and releases its lease) and
// sessions (they store what they have not yet), Lavalink, the membership
// (it leaves, then waits up to 3 s for its guild grains' answers), the
// event workers, the cluster, the store, the admin server and telemetry.
func (n *Node) Stop(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- n.stopParts(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("node stop: %w", ctx.Err())
	}
}

func (n *Node) stopParts(ctx context.Context) error {
	var errs []error
	// No READY starts anything from here on; what one started is waited
	// for, so that the client it may have started is closed below.
	n.readyMu.Lock()
	n.stopping = true
	n.readyMu.Unlock()
	if n.cancel != nil {
		n.cancel()
	}
	if n.done != nil {
		<-n.done
	}
	n.bg.Wait()
	n.draining.Store(true)
	running := n.member != nil && n.member.Running()
	if running {
		// protoactor's shutdown does not stop grains: stop the shards
		// ourselves. Before leaving: each stores where its Discord
		// session stopped and releases its lease, so the member that
		// takes it next (once this one has left) resumes the session
		// exactly there; no new shard activation starts here meanwhile
		// (Stopping).
		if _, err := shard.StopLocal(ctx, n.member.System); err != nil {
			errs = append(errs, err)
		}
		// Sessions write off their mailbox: their last changes must be
		// stored before the store closes, and before the members that
		// take them over read them. They get half the time left, so
		// that the steps below still run within the stop's deadline: a
		// session whose write does not end by then (a slow store) is
		// left to its next owner, which restores what it stored last;
		// each logs that it was given up on, and the stop goes on.
		started := time.Now()
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok {
			sctx, cancel = context.WithDeadline(ctx, started.Add(time.Until(d)/2))
		}
		stopped, err := session.StopLocal(sctx, n.member.System)
		cancel()
		var late *session.NotStoredError
		switch {
		case errors.As(err, &late):
			n.log.Warn("sessions not stored in time; left to their next owners", "count", len(late.Guilds), "guilds", late.Guilds)
		case err != nil:
			errs = append(errs, err)
		}
		// Each drain step says how long it took: a stop that overruns
		// its timeout shows where.
		n.log.Info("sessions stored and stopped", "count", stopped, "took", time.Since(started).Round(time.Millisecond))
	}
	// Lavalink before the cluster (its events go to session grains) and
	// before the workers (its readers submit events until closed). Before
	// leaving, too: its players play on in their Lavalink sessions, which
	// wait for a resume once the websockets close, and the members that
	// take the sessions over resume those to take the players over at
	// their position. While this member's websockets were up they could
	// not, and would start new players from the stored position after a
	// gap instead.
	if n.audio != nil {
		started := time.Now()
		n.audio.close()
		n.log.Info("lavalink client closed", "took", time.Since(started).Round(time.Millisecond))
	}
	if running {
		// Out of the membership: the other members place new
		// activations of this member's guilds and shards on themselves.
		// A command that re-activated a session here since it stopped
		// only made an activation that the new owner's fences.
		n.member.Leave()
		// The guild grains here answer what they took before the
		// others took over (stopping the actor system would drop those
		// answers); Discord's 3 s bounds the wait.
		wait, cancel := context.WithTimeout(ctx, 3*time.Second)
		for guild.InFlight() > 0 && wait.Err() == nil {
			select {
			case <-wait.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
		if k := guild.InFlight(); k > 0 {
			n.log.Warn("stopping with interactions still unanswered", "count", k)
		}
	}
	// The workers before the cluster: a delivery under way finishes
	// against a running actor system instead of waiting out its timeout
	// against a stopped one.
	for _, o := range []*ecluster.Ordered{n.ordered, n.playerEvents} {
		if o != nil {
			o.Close()
		}
	}
	if running {
		n.statusFrom.Store(nil)
		n.member.Stop()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.closeLimiter != nil {
		n.closeLimiter()
	}
	if n.adminSrv != nil {
		errs = append(errs, n.adminSrv.Shutdown(ctx))
	}
	if n.metrics != nil {
		errs = append(errs, n.metrics.Shutdown(ctx))
	}
	if n.tracing != nil {
		errs = append(errs, n.tracing.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// instanceID names this process in traces.
func instanceID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
