package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// ActorName is the status actor's name on every member: a member reaches
// another's as actor.NewPID(address, ActorName), with no grain placement
// involved (a status grain would live on one member, not on each).
const ActorName = "ensemble-status"

// Spawn starts this member's status actor. snapshot describes the member;
// it may take a few milliseconds (it gathers the metrics registry), so it
// runs off the actor's mailbox, and a slow one holds no other request. The
// request is a clusterpb.Ack (see StatusReply in ensemble.proto: a request
// type of its own would crash members of older versions).
func Spawn(sys *actor.ActorSystem, log *slog.Logger, snapshot func() Member) (*actor.PID, error) {
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*clusterpb.Ack); !ok {
			return
		}
		sender := ctx.Sender()
		if sender == nil {
			return
		}
		go func() {
			reply := &clusterpb.StatusReply{}
			defer func() {
				// A bug in a snapshot must not take the node down: the
				// page shows the member's error instead.
				if r := recover(); r != nil {
					log.Error("status snapshot panic", "panic", r, "stack", string(debug.Stack()))
					reply = &clusterpb.StatusReply{Error: fmt.Sprintf("status snapshot failed: %v", r)}
				}
				sys.Root.Send(sender, reply)
			}()
			b, err := json.Marshal(snapshot())
			if err != nil {
				reply.Error = err.Error()
				return
			}
			reply.MemberJson = b
		}()
	})
	pid, err := sys.Root.SpawnNamed(props, ActorName)
	if err != nil {
		return nil, fmt.Errorf("spawn status actor: %w", err)
	}
	return pid, nil
}

// ErrNoAnswer: the member did not answer in time (it is dying, cut off or
// overloaded) or answered with something that is not a status.
var ErrNoAnswer = errors.New("no status answer")

// Ask asks every member at addresses for its status, at once, each within
// timeout (and ctx), and returns the cluster's status; members that do not
// answer are listed with the error.
func Ask(ctx context.Context, sys *actor.ActorSystem, name string, addresses []string, timeout time.Duration) Cluster {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	c := Cluster{Name: name, GeneratedAt: time.Now().UTC(), Self: sys.Address(), Members: make([]MemberResult, len(addresses))}
	var wg sync.WaitGroup
	for i, addr := range addresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Members[i] = ask(sys, addr, timeout)
		}()
	}
	wg.Wait()
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].Address < c.Members[j].Address })
	c.total()
	return c
}

func ask(sys *actor.ActorSystem, addr string, timeout time.Duration) MemberResult {
	r := MemberResult{Address: addr}
	res, err := sys.Root.RequestFuture(actor.NewPID(addr, ActorName), &clusterpb.Ack{}, timeout).Result()
	if err != nil {
		r.Error = fmt.Errorf("%w: %v", ErrNoAnswer, err).Error()
		return r
	}
	reply, ok := res.(*clusterpb.StatusReply)
	if ok && reply.GetError() != "" {
		r.Error = reply.GetError()
		return r
	}
	if !ok || len(reply.GetMemberJson()) == 0 {
		r.Error = fmt.Sprintf("%v: answered %T", ErrNoAnswer, res)
		return r
	}
	var m Member
	if err := json.Unmarshal(reply.GetMemberJson(), &m); err != nil {
		r.Error = fmt.Sprintf("%v: %v", ErrNoAnswer, err)
		return r
	}
	r.Member = &m
	return r
}
