// Package node wires one Ensemble cluster member from its configuration:
// store, telemetry, admin HTTP, the cluster with its guild, session and
// shard kinds, the Discord REST client, the Lavalink client and the shard
// keeper. It holds no domain logic; cmd/node runs it, and end-to-end tests
// and the sandbox run it against the emulators.
package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"

	"github.com/ensemble-bot/ensemble/actors/guild"
	"github.com/ensemble-bot/ensemble/actors/lavalink"
	"github.com/ensemble-bot/ensemble/actors/session"
	"github.com/ensemble-bot/ensemble/actors/shard"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/admin"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/store"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// Options are what a node needs besides its configuration.
type Options struct {
	Log *slog.Logger
	// GatewayOpts are extra disgo gateway options (tests: identify limiter).
	GatewayOpts []gateway.ConfigOpt
}

// Node is a running member.
type Node struct {
	cfg      config.Config
	log      *slog.Logger
	metrics  *telemetry.Metrics
	ready    *admin.Readiness
	adminSrv *admin.Server
	store    store.Store
	member   *ecluster.Member
	audio    *lavalink.Client
	ordered  *ecluster.Ordered
	cancel   context.CancelFunc
	done     chan struct{}
	// playerEvents orders Lavalink events per guild, apart from the
	// gateway's events in ordered.
	playerEvents *ecluster.Ordered

	shardMu    sync.Mutex
	shardReady []bool
}

// Readiness components.
const (
	compCluster  = "cluster"
	compStore    = "store"
	compDiscord  = "discord"
	compLavalink = "lavalink"
)

// Start starts the node. Without a Discord token it runs but is not ready.
func Start(ctx context.Context, cfg config.Config, o Options) (_ *Node, err error) {
	log := o.Log
	n := &Node{cfg: cfg, log: log, done: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = n.stopParts(context.Background())
		}
	}()
	if n.metrics, err = telemetry.NewMetrics(); err != nil {
		return nil, err
	}
	n.ready = admin.NewReadiness(compCluster, compStore, compDiscord, compLavalink)
	if n.adminSrv, err = admin.Serve(cfg.Node.AdminAddr, admin.Handler(n.metrics.Registry, n.ready), log); err != nil {
		return nil, err
	}
	log.Info("admin HTTP listening", "addr", n.adminSrv.Addr())

	if n.store, err = store.Open(ctx, cfg.Store, cfg.Store.Redis.Password); err != nil {
		return nil, err
	}
	n.ready.Set(compStore, true, string(cfg.Store.Kind))

	token := cfg.Discord.Token
	var discord *commands.Discord
	var restClient rest.Rest
	if token.IsSet() {
		restOpts := []rest.ClientConfigOpt{
			// disgo logs request URLs at DEBUG, and interaction callback
			// and webhook URLs carry the interaction token.
			rest.WithLogger(slog.New(telemetry.WithMinLevel(log.Handler(), slog.LevelInfo)).With("lib", "disgo")),
			// disgo's default client keeps 2 idle connections per host:
			// under load most calls would open a new one (PITFALLS.md).
			rest.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}),
		}
		if cfg.Discord.RESTURL != "" {
			restOpts = append(restOpts, rest.WithURL(cfg.Discord.RESTURL))
		}
		restClient = rest.New(rest.NewClient(token.Reveal(), restOpts...))
		discord = commands.NewDiscord(restClient)
		n.ready.Set(compDiscord, false, "connecting")
	} else {
		n.ready.Set(compDiscord, false, "not configured")
		log.Warn("discord: not configured (set DISCORD_TOKEN or DISCORD_TOKEN_FILE); the node runs but is not ready")
	}

	n.member, err = ecluster.New(cfg.Cluster, ecluster.Options{Log: log, MeterProvider: n.metrics.MeterProvider})
	if err != nil {
		return nil, err
	}
	c := n.member.Cluster
	// Gateway events (interactions, voice) and Lavalink events go through
	// separate workers: a guild whose session is busy with a slow load
	// must not hold up other guilds' interactions behind its player
	// updates.
	n.ordered = ecluster.NewOrdered(8, 1024)
	n.playerEvents = ecluster.NewOrdered(4, 4096)

	var audio session.Audio = noAudio{}
	var search guild.Searcher
	if botID, ok := botUserID(token.Reveal()); ok {
		n.audio, err = lavalink.New(lavalink.Options{
			BotUserID:      botID,
			Nodes:          cfg.Lavalink.Nodes,
			Breaker:        cfg.Lavalink.Breaker,
			RequestTimeout: cfg.Lavalink.RequestTimeout,
			Registerer:     n.metrics.Registry,
			Log:            log,
			OnEvent:        func(ev *clusterpb.PlayerEvent) { n.forwardPlayer(c, ev) },
			OnReady: func(up, total int) {
				n.ready.Set(compLavalink, up > 0, lavalink.ReadyDetail(up, total))
			},
		})
		if err != nil {
			return nil, err
		}
		audio, search = n.audio, n.audio
		n.ready.Set(compLavalink, false, lavalink.ReadyDetail(0, len(cfg.Lavalink.Nodes)))
	} else {
		n.ready.Set(compLavalink, false, "waiting for the Discord token (the bot user ID)")
	}

	n.shardReady = make([]bool, cfg.Discord.ShardCount)
	kinds := []*cluster.Kind{
		session.NewKind(session.Deps{
			Store:       n.store,
			Audio:       audio,
			Gateway:     shard.NewGateway(c, cfg.Discord.ShardCount),
			Messages:    messages{discord},
			Log:         log,
			Rand:        rand.IntN,
			QueueMax:    cfg.Limits.QueueMax,
			IdleTimeout: cfg.Limits.SessionIdleTimeout,
			CallTimeout: cfg.Lavalink.RequestTimeout,
		}),
		guild.NewKind(guild.Deps{
			Store:       n.store,
			Replier:     replier{discord},
			Sessions:    sessions{c},
			Search:      search,
			Log:         log,
			Cooldown:    cfg.Limits.CommandCooldown,
			MaxInFlight: cfg.Limits.MailboxSize,
		}, cfg.Limits.GuildIdleTimeout),
		shard.NewKind(shard.Deps{
			Token:       token,
			GatewayURL:  cfg.Discord.GatewayURL,
			ShardCount:  cfg.Discord.ShardCount,
			GatewayOpts: o.GatewayOpts,
			Log:         log,
			Ordered:     n.ordered,
			// Retried deliveries are safe: the guild grain drops an
			// interaction it has seen, and voice facts are idempotent.
			Guilds: func(ctx context.Context, in *clusterpb.Interaction) error {
				_, err := ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.HandleReply, error) {
					return clusterpb.GetGuildGrainClient(c, in.GetGuildId()).Handle(in, opts...)
				})
				return err
			},
			Voice: func(ctx context.Context, ev *clusterpb.VoiceEvent) error {
				_, err := ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
					return clusterpb.GetSessionGrainClient(c, ev.GetGuildId()).Voice(ev, opts...)
				})
				return err
			},
			OnStatus: n.shardStatus,
		}),
	}
	for _, k := range kinds {
		c.Config.Kinds[k.Kind] = k
	}
	if err := n.member.Start(ctx); err != nil {
		return nil, err
	}
	n.ready.Set(compCluster, true, fmt.Sprintf("%s member %s", cfg.Cluster.Provider, n.member.System.Address()))

	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if n.audio != nil {
		n.audio.Start(runCtx)
	}
	go func() {
		defer close(n.done)
		if discord == nil {
			<-runCtx.Done()
			return
		}
		// Registration may wait on Discord's rate limits; the shards and
		// the sessions to resume must not wait for it.
		go n.registerCommands(runCtx, discord, token.Reveal())
		go n.wakeSessions(runCtx, c)
		shard.Keep(runCtx, c, cfg.Discord.ShardCount, time.Second, log)
	}()
	return n, nil
}

// AdminAddr is the bound admin HTTP address.
func (n *Node) AdminAddr() string { return n.adminSrv.Addr() }

// Readiness exposes the readiness tracker (tests and the sandbox wait on it).
func (n *Node) Readiness() *admin.Readiness { return n.ready }

// shardStatus is called by each shard grain (from its own goroutine).
func (n *Node) shardStatus(id int, ok bool) {
	n.shardMu.Lock()
	defer n.shardMu.Unlock()
	if id >= 0 && id < len(n.shardReady) {
		n.shardReady[id] = ok
	}
	up := 0
	for _, s := range n.shardReady {
		if s {
			up++
		}
	}
	n.ready.Set(compDiscord, up == len(n.shardReady), fmt.Sprintf("%d/%d shards ready", up, len(n.shardReady)))
}

func (n *Node) registerCommands(ctx context.Context, d *commands.Discord, token string) {
	appID, ok := botUserID(token)
	if !ok {
		n.log.Error("cannot register commands: the token does not carry an application ID")
		return
	}
	for attempt := 1; attempt <= 5 && ctx.Err() == nil; attempt++ {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := d.RegisterCommands(c, appID, n.cfg.Discord.DevGuildID)
		cancel()
		if err == nil {
			n.log.Info("slash commands registered", "guild", n.cfg.Discord.DevGuildID)
			return
		}
		n.log.Warn("register commands", "err", err, "attempt", attempt)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// wakeSessions activates every stored session once the node is up, so the
// music that was playing when a node died resumes without waiting for a
// user. In a cluster each member wakes them all; the calls land on each
// session's owner, and waking an active session does nothing.
func (n *Node) wakeSessions(ctx context.Context, c *cluster.Cluster) {
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
	for _, g := range guilds {
		if ctx.Err() != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := ecluster.Call(wctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
			return clusterpb.GetSessionGrainClient(c, g).Wake(&clusterpb.Ack{}, opts...)
		})
		cancel()
		if err != nil {
			n.log.Warn("wake session", "guild", g, "err", err)
		}
	}
	if len(guilds) > 0 {
		n.log.Info("stored sessions woken", "count", len(guilds))
	}
}

// forwardPlayer hands a Lavalink event to the guild's session grain, in
// order per guild, off disgolink's reader goroutine.
//
// One attempt only: a track end delivered twice would skip a track (or
// restart a looped one), and a lost player update is replaced by the next.
func (n *Node) forwardPlayer(c *cluster.Cluster, ev *clusterpb.PlayerEvent) {
	n.playerEvents.Submit(ev.GetGuildId(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Cluster.RequestTimeout)
		defer cancel()
		_, err := ecluster.Call(ctx, 1, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
			return clusterpb.GetSessionGrainClient(c, ev.GetGuildId()).Player(ev, opts...)
		})
		if err != nil {
			n.log.Warn("forward player event", "guild", ev.GetGuildId(), "kind", ev.GetKind(), "err", err)
		}
	})
}

// Stop stops the node within ctx: the keeper and background work, the
// shard grains (their gateways close), the cluster, Lavalink, the event
// workers, the store, then the admin server and telemetry. Sessions need
// no flush: every change was stored when it happened.
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
	if n.cancel != nil {
		n.cancel()
		<-n.done
	}
	running := n.member != nil && n.member.Cluster.Remote != nil
	if running {
		// protoactor's shutdown does not stop grains: stop the shards
		// ourselves so their gateway connections close with the member.
		if _, err := shard.StopLocal(ctx, n.member.System); err != nil {
			errs = append(errs, err)
		}
	}
	// Lavalink before the cluster (its events go to session grains) and
	// before the workers (its readers submit events until closed).
	if n.audio != nil {
		n.audio.Close()
	}
	if running {
		n.member.Stop(true)
	}
	for _, o := range []*ecluster.Ordered{n.ordered, n.playerEvents} {
		if o != nil {
			o.Close()
		}
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.adminSrv != nil {
		errs = append(errs, n.adminSrv.Shutdown(ctx))
	}
	if n.metrics != nil {
		errs = append(errs, n.metrics.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// botUserID reads the bot's user ID from its token, whose first segment is
// the base64 of that ID (Lavalink needs it before the gateway is READY).
func botUserID(token string) (string, bool) {
	first, _, ok := strings.Cut(token, ".")
	if !ok || first == "" {
		return "", false
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(first, "="))
	if err != nil {
		return "", false
	}
	id := string(b)
	for _, r := range id {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	return id, id != ""
}
