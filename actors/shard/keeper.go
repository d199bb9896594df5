package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// ErrShardCount reports a shard count below 1.
var ErrShardCount = errors.New("shard count must be at least 1")

// ForGuild returns the shard that owns a guild: (guild_id >> 22) %
// shard_count, Discord's rule. Computed here rather than asked of disgo,
// whose lookup answers shard 0 for a guild of a shard it does not run.
func ForGuild(guildID string, shardCount int) (int, error) {
	if shardCount < 1 {
		return 0, ErrShardCount
	}
	id, err := music.ParseSnowflake(guildID)
	if err != nil {
		return 0, fmt.Errorf("guild ID: %w", err)
	}
	return int((id >> 22) % uint64(shardCount)), nil
}

func parseID(s string) (snowflake.ID, error) {
	id, err := music.ParseSnowflake(s)
	return snowflake.ID(id), err
}

// Identity is the cluster identity of a shard.
func Identity(shardID int) string { return strconv.Itoa(shardID) }

// Gateway sends voice updates through the shard grain that owns the guild,
// wherever in the cluster it runs. It is what session grains use to join
// and leave voice.
type Gateway struct {
	c          *pcluster.Cluster
	shardCount int
}

// NewGateway returns a Gateway for a bot of shardCount shards.
func NewGateway(c *pcluster.Cluster, shardCount int) *Gateway {
	return &Gateway{c: c, shardCount: shardCount}
}

// UpdateVoice asks the owning shard to send op 4; channelID "" leaves.
// ctx must carry a deadline.
func (g *Gateway) UpdateVoice(ctx context.Context, guildID, channelID string) error {
	shard, err := ForGuild(guildID, g.shardCount)
	if err != nil {
		return fmt.Errorf("update voice: %w", err)
	}
	if channelID != "" {
		if err := music.ValidateSnowflake(channelID); err != nil {
			return fmt.Errorf("update voice: channel: %w", err)
		}
	}
	req := &clusterpb.VoiceRequest{GuildId: guildID, ChannelId: channelID, SelfDeaf: true}
	_, err = cluster.Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
		return clusterpb.GetShardGrainClient(g.c, Identity(shard)).UpdateVoice(req, opts...)
	})
	if err != nil {
		return fmt.Errorf("update voice in guild %s through shard %d: %w", guildID, shard, err)
	}
	return nil
}

// Keep calls Ensure on every shard identity each interval until ctx ends,
// so every shard is active somewhere. Keep blocks; run it in a goroutine.
func Keep(ctx context.Context, c *pcluster.Cluster, shardCount int, interval time.Duration, log *slog.Logger) {
	Keeper{Cluster: c, ShardCount: shardCount, Interval: interval, Log: log}.Run(ctx)
}

// Keeper makes sure every shard is active somewhere: a shard lost with its
// member is activated again on the member the cluster now assigns it to.
// In a cluster each member keeps the shards it owns (Owns), at once when
// the membership changes (Changed) and each Interval as a backstop, so the
// work is proportional to what a member owns, not to the cluster's size.
type Keeper struct {
	Cluster    *pcluster.Cluster
	ShardCount int
	Interval   time.Duration
	Log        *slog.Logger
	// Owns tells whether this member owns a shard identity; nil: every
	// shard.
	Owns func(identity string) bool
	// Changed is signalled when the membership changes; nil: never.
	Changed <-chan struct{}
}

// Run keeps the shards until ctx ends.
func (k Keeper) Run(ctx context.Context) {
	log := k.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "shard-keeper")
	if k.ShardCount < 1 || k.Interval <= 0 {
		log.Error("shard keeper not started", "shards", k.ShardCount, "interval", k.Interval)
		return
	}
	// Each round is bounded by the interval, so rounds never pile up; the
	// floor leaves room for a first activation on a short interval.
	timeout := max(k.Interval, 500*time.Millisecond)
	last := make([]string, k.ShardCount)
	tick := time.NewTicker(k.Interval)
	defer tick.Stop()
	for {
		round(ctx, k.Cluster, k.ShardCount, k.Owns, timeout, log, last)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-k.Changed:
		}
	}
}

// round ensures every shard (that owns selects) once, in parallel, so one unreachable member
// delays no other shard. last holds each shard's previous outcome, to log
// changes only (a dead member would otherwise log every second per shard).
func round(ctx context.Context, c *pcluster.Cluster, shardCount int, owns func(string) bool, timeout time.Duration, log *slog.Logger, last []string) {
	var wg sync.WaitGroup
	for id := range shardCount {
		if owns != nil && !owns(Identity(id)) {
			last[id] = ""
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			callCtx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := cluster.Call(callCtx, 2, func(opts ...pcluster.GrainCallOption) (*clusterpb.ShardStatus, error) {
				return clusterpb.GetShardGrainClient(c, Identity(id)).Ensure(&clusterpb.Ack{}, opts...)
			})
			if ctx.Err() != nil {
				return
			}
			var now string
			switch {
			case err != nil:
				now = "error"
			case st.GetReady():
				now = "ready@" + st.GetMember()
			default:
				now = "connecting@" + st.GetMember()
			}
			if now == last[id] {
				return
			}
			last[id] = now
			if err != nil {
				log.Warn("shard unreachable", "shard", id, "err", err)
				return
			}
			log.Info("shard status", "shard", id, "ready", st.GetReady(), "member", st.GetMember(), "guilds", st.GetGuilds())
		}()
	}
	wg.Wait()
}
