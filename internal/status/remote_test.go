//go:build !race

// Two protoactor remotes in one process race inside gRPC's logger: each
// remote's start sets it (protoactor remote/server.go:61 ->
// grpc grpclog/loggerv2.go:39,40) while the other's server logs
// (grpc grpclog/grpclog.go:138,141 from server.go:930). The Makefile runs
// this package a second time without -race for this file.

package status

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

// remoteSystem is an actor system with protoactor remote on a free
// loopback port, as a cluster member has.
func remoteSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem()
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start()
	t.Cleanup(func() { r.Shutdown(false); sys.Shutdown() })
	return sys
}

// TestAskReachesEveryMember: two members answer for themselves over
// protoactor remote; a listed member with nothing behind its address is
// shown as not answering, and the totals count the answers only.
func TestAskReachesEveryMember(t *testing.T) {
	a, b := remoteSystem(t), remoteSystem(t)
	for i, sys := range []*actor.ActorSystem{a, b} {
		m := Member{ID: sys.ID, Address: sys.Address(), Ready: i == 0, GuildActivations: 10 * (i + 1), SessionActivations: i + 1,
			Shards: []Shard{{ID: i, Ready: true}}}
		if _, err := Spawn(sys, slog.New(slog.DiscardHandler), func() Member { return m }); err != nil {
			t.Fatal(err)
		}
	}
	// A loopback port with no listener: the request fails or times out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	c := Ask(context.Background(), a, "test", []string{b.Address(), dead, a.Address()}, 3*time.Second)
	if c.Self != a.Address() || len(c.Members) != 3 {
		t.Fatalf("status %+v; want three members asked by %s", c, a.Address())
	}
	byAddr := map[string]MemberResult{}
	for _, r := range c.Members {
		byAddr[r.Address] = r
	}
	for i, sys := range []*actor.ActorSystem{a, b} {
		r := byAddr[sys.Address()]
		if r.Member == nil || r.Member.ID != sys.ID || r.Member.GuildActivations != 10*(i+1) {
			t.Errorf("member %s: %+v; want its own answer", sys.Address(), r)
		}
	}
	if r := byAddr[dead]; r.Member != nil || !strings.Contains(r.Error, ErrNoAnswer.Error()) {
		t.Errorf("dead member: %+v; want no answer", r)
	}
	want := Totals{Members: 3, Answered: 2, Ready: 1, Shards: 2, ShardsReady: 2, Guilds: 30, Sessions: 3}
	if c.Totals != want {
		t.Errorf("totals %+v; want %+v", c.Totals, want)
	}
}
