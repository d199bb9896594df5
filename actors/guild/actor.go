package guild

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// Method indexes of the Guild service in cluster/clusterpb (frozen by
// clusterpb's TestRPCOrderIsAppendOnly).
const (
	methodHandle = 0
	methodView   = 1
)

// guildActor is the guild kind's actor in place of the generated
// clusterpb.GuildActor. The kind is lean (ecluster.NewKind): the member's
// lookup tells the activation its identity (Activated), so nothing in the
// actor's context is kept for it, and the grain and the context it is
// handed are one allocation. The generated actor would keep its own
// struct, a grain context and a cluster identity besides (about 150 B of
// an idle guild's 1.5 KiB).
type guildActor struct {
	grain Grain
	ctx   grainContext
}

var _ ecluster.LeanGrain = (*guildActor)(nil)

// grainContext is the cluster.GrainContext the grain is handed: the
// activation's context with its identity and cluster.
type grainContext struct {
	actor.Context
	identity string
	cluster  *cluster.Cluster
}

func (c *grainContext) Identity() string          { return c.identity }
func (c *grainContext) Kind() string              { return Kind }
func (c *grainContext) Cluster() *cluster.Cluster { return c.cluster }

// Activated comes after Started, before any other message.
func (a *guildActor) Activated(identity string, c *cluster.Cluster) {
	a.ctx.identity, a.ctx.cluster = identity, c
	a.grain.Init(&a.ctx)
}

// Receive dispatches as the generated actor does; a request for an rpc
// this version lacks gets an error rather than silence (rpcs are only
// appended, so a newer member may ask).
func (a *guildActor) Receive(ctx actor.Context) {
	a.ctx.Context = ctx // the same context every time; set before Activated too
	switch msg := ctx.Message().(type) {
	case *actor.Stopped:
		a.grain.Terminate(&a.ctx)
	case actor.AutoReceiveMessage, actor.SystemMessage:
	case *cluster.GrainRequest:
		switch msg.MethodIndex {
		case methodHandle:
		case methodView:
			v := &clusterpb.SessionView{}
			if err := proto.Unmarshal(msg.MessageData, v); err != nil {
				ctx.Respond(cluster.NewGrainErrorResponse(cluster.ErrorReason_INVALID_ARGUMENT, err.Error()))
				return
			}
			ack, err := a.grain.View(v, &a.ctx)
			if err != nil {
				ctx.Respond(cluster.FromError(err))
				return
			}
			ctx.Respond(ack)
			return
		default:
			ctx.Respond(cluster.NewGrainErrorResponse(cluster.ErrorReason_UNIMPLEMENTED,
				fmt.Sprintf("guild grain: no rpc %d", msg.MethodIndex)))
			return
		}
		in := &clusterpb.Interaction{}
		if err := proto.Unmarshal(msg.MessageData, in); err != nil {
			ctx.Respond(cluster.NewGrainErrorResponse(cluster.ErrorReason_INVALID_ARGUMENT, err.Error()))
			return
		}
		reply, err := a.grain.Handle(in, &a.ctx)
		if err != nil {
			ctx.Respond(cluster.FromError(err))
			return
		}
		ctx.Respond(reply)
	default:
		a.grain.ReceiveDefault(&a.ctx)
	}
}
