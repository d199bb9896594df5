package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/actors/guild"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/ratelimit"
)

// guildDelivery hands the shard grains' interactions to guild grains
// (shard.Deps.Guilds). It runs on each guild's delivery worker.
type guildDelivery struct {
	c         *cluster.Cluster
	reachable func(kind, identity string) error
	limiter   *ratelimit.Limiter
	replies   replier
	log       *slog.Logger
}

// deliver posts the interaction to its guild grain's activation and
// returns without waiting for the reply, so the worker goes on with the
// guild's next interaction at once: a worker parked on every grain call,
// then woken by its reply, was one more hand-off per interaction on a
// busy machine (BENCHMARKS.md). Only when the post fails — the activation
// gone, or no reply within a third of the time left — does the delivery
// fall back to a grain call with retries, off the worker; retries are
// safe, the guild grain drops an interaction it has seen. A fallback may
// let a later interaction of the guild overtake this one.
func (d guildDelivery) deliver(ctx context.Context, in *clusterpb.Interaction, done func(error)) {
	// Counted before the guild grain sees it: the grain never waits on
	// the limiter's Redis.
	if limited(ctx, d.limiter, d.replies, d.log, in) {
		done(nil)
		return
	}
	// A member that died must not hold the delivery until a timeout.
	if err := d.reachable(guild.Kind, in.GetGuildId()); err != nil {
		done(err)
		return
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		done(ecluster.ErrNoDeadline)
		return
	}
	pid := d.pid(in.GetGuildId())
	data, err := proto.Marshal(in)
	if pid == nil || err != nil {
		done(d.call(ctx, in))
		return
	}
	ecluster.Post(d.c.ActorSystem, pid, &cluster.GrainRequest{MethodIndex: 0, MessageData: data}, time.Until(deadline)/3, func(reply any, err error) {
		switch r := reply.(type) {
		case *clusterpb.HandleReply:
			done(nil)
			return
		case *cluster.GrainErrorResponse:
			done(r) // the grain answered: not retried, as in ecluster.Call
			return
		case nil:
		default:
			done(fmt.Errorf("guild grain answered with a %T", reply))
			return
		}
		// Gone (passivated, its member stopped) or silent: ask the
		// lookup again, as protoactor's own request does.
		d.c.PidCache.Remove(in.GetGuildId(), guild.Kind)
		d.log.Debug("posted interaction not taken; calling the guild grain", "err", err, "guild", in.GetGuildId())
		ecluster.Go(func() { done(d.call(ctx, in)) })
	})
}

// pid is the guild's activation, from the PID cache or the identity lookup
// (which may wait for a remote member to activate it: the worker may wait).
func (d guildDelivery) pid(guildID string) *actor.PID {
	if pid, ok := d.c.PidCache.Get(guildID, guild.Kind); ok && pid != nil {
		return pid
	}
	pid := d.c.Get(guildID, guild.Kind)
	if pid != nil {
		d.c.PidCache.Set(guildID, guild.Kind, pid)
	}
	return pid
}

// call is the grain call with retries within ctx's deadline.
func (d guildDelivery) call(ctx context.Context, in *clusterpb.Interaction) error {
	_, err := ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.HandleReply, error) {
		if err := d.reachable(guild.Kind, in.GetGuildId()); err != nil {
			return nil, err
		}
		return clusterpb.GetGuildGrainClient(d.c, in.GetGuildId()).Handle(in, opts...)
	})
	return err
}
