//go:build !race

// Members whose topology changes while they serve calls, several of them
// in one process, race inside protoactor and gRPC (the Makefile lists
// where): disthash's Manager.Get reads the rendezvous table
// (identitylookup/disthash/manager.go:75) that a topology change replaces
// (manager.go:69) without a lock (TestLookupWorksWithDisthash runs a
// disthash member), and remote.Start replaces gRPC's global
// logger (remote/server.go:61 -> grpclog/loggerv2.go:75) while another
// member's gRPC connections log through it (internal/grpclog/grpclog.go:34).
// Our own concurrency in the etcd provider is covered by etcd_test.go
// under -race.

package cluster

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ensemble-bot/ensemble/cluster/membership"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// whereGrain answers with the member that hosts it and how many messages
// this activation has seen.
type whereGrain struct{ seen int }

func (g *whereGrain) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
		g.seen++
		ctx.Respond(wrapperspb.String(ctx.ActorSystem().ID + "/" + string(rune('0'+g.seen))))
	}
}

func startEtcdMember(t *testing.T, endpoint string) *Member {
	t.Helper()
	cfg := testConfig()
	cfg.Provider = config.ProviderEtcd
	cfg.EtcdEndpoints = []string{endpoint}
	cfg.EtcdLeaseTTL = 2 * time.Second
	return startWhereMember(t, cfg)
}

// startWhereMember starts a member of cfg hosting the "where" kind,
// stopped when the test ends.
func startWhereMember(t *testing.T, cfg config.Cluster) *Member {
	t.Helper()
	return startWhereMemberWith(t, cfg, nil)
}

// startWhereMemberWith is startWhereMember with another identity lookup
// (nil: the member's own).
func startWhereMemberWith(t *testing.T, cfg config.Cluster, other pcluster.IdentityLookup) *Member {
	t.Helper()
	kind := pcluster.NewKind("where", actor.PropsFromProducer(func() actor.Actor { return &whereGrain{} }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Start(ctx, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Kinds: []*pcluster.Kind{kind}, otherLookup: other})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// waitMembers waits until m's topology holds exactly the members ids.
func waitMembers(t *testing.T, m *Member, ids ...*Member) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := m.Cluster.MemberList.Members()
		ok := got.Len() == len(ids)
		for _, o := range ids {
			ok = ok && got.ContainsID(o.System.ID)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s sees %d members, want %d", m.System.ID, got.Len(), len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitApplied waits until m's topology holds exactly the members ids and
// protoactor has finished applying it. waitMembers alone is not enough:
// protoactor's UpdateClusterTopology sets the member list
// (cluster/member_list.go:147) before it tells the remote (:152, which
// spawns an endpoint to the departed address just to stop it,
// remote/endpoint_manager.go:253, tens of ms) and then publishes the
// topology that clears the PID cache (cluster/cluster.go:60-63) and moves
// disthash's owners (identitylookup/disthash/manager.go:69). A call in
// between still goes to the departed member and times out (seen in 2 of
// about 30 runs). The update holds the member list's lock throughout
// (member_list.go:129-130) and GetActivatorMember takes it (:108-110):
// once that returns, the update is complete.
func waitApplied(t *testing.T, m *Member, ids ...*Member) {
	t.Helper()
	waitMembers(t, m, ids...)
	m.Cluster.MemberList.GetActivatorMember("where", "")
}

func where(t *testing.T, m *Member, identity string) (member string, seen string) {
	t.Helper()
	res, err := m.Cluster.Request(identity, "where", wrapperspb.String("?"))
	if err != nil {
		t.Fatalf("call %s from %s: %v", identity, m.System.ID, err)
	}
	member, seen, _ = strings.Cut(res.(*wrapperspb.StringValue).Value, "/")
	return member, seen
}

func TestEtcdMembersShareGrains(t *testing.T) {
	e := testserver.StartEtcd(t)
	a := startEtcdMember(t, e.Endpoint)
	b := startEtcdMember(t, e.Endpoint)
	waitApplied(t, a, a, b)
	waitApplied(t, b, a, b)

	// Guilds spread over both members, and both agree where each lives:
	// the second call, from the other member, reaches the same activation.
	// Each member's Placement says the same.
	pa, pb := NewPlacement(a.Cluster), NewPlacement(b.Cluster)
	defer pa.Close()
	defer pb.Close()
	hosts := map[string]int{}
	for i := range 20 {
		id := "guild-" + string(rune('a'+i))
		host, seen := where(t, a, id)
		again, seen2 := where(t, b, id)
		if again != host || seen != "1" || seen2 != "2" {
			t.Fatalf("%s: from a %s (#%s), from b %s (#%s): want one activation", id, host, seen, again, seen2)
		}
		if pa.Owns("where", id) != (host == a.System.ID) || pb.Owns("where", id) != (host == b.System.ID) {
			t.Fatalf("%s lives on %s; placement says a owns it %v, b %v", id, host, pa.Owns("where", id), pb.Owns("where", id))
		}
		hosts[host]++
	}
	if len(hosts) != 2 {
		t.Fatalf("20 guilds placed on %v: want both members", hosts)
	}
	for _, p := range []*Placement{pa, pb} {
		if !p.Member(a.System.Address()) || !p.Member(b.System.Address()) || p.Member("127.0.0.1:1") {
			t.Fatalf("placement members wrong: a %v b %v other %v", p.Member(a.System.Address()), p.Member(b.System.Address()), p.Member("127.0.0.1:1"))
		}
	}

	// A member that stops leaves at once; its guilds move to the other,
	// whose placement says so after signalling the change.
	changed := pb.Watch()
	<-changed // the signal for the membership as it was
	a.Stop()
	waitApplied(t, b, b)
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("no change signalled")
	}
	if pb.Member(a.System.Address()) || !pb.Member(b.System.Address()) {
		t.Fatal("after a left, b's placement still counts a as a member (or not b)")
	}
	for i := range 20 {
		if id := "guild-" + string(rune('a'+i)); !pb.Owns("where", id) {
			t.Fatalf("after a left, b does not own %s", id)
		}
	}
	for i := range 20 {
		if host, _ := where(t, b, "guild-"+string(rune('a'+i))); host != b.System.ID {
			t.Fatalf("after a left, guild on %s, want %s", host, b.System.ID)
		}
	}

	// A restarted member is a new member (a new ID, which no one has
	// blocked) and takes its share again.
	a2 := startEtcdMember(t, e.Endpoint)
	if a2.System.ID == a.System.ID {
		t.Fatal("a restarted member kept its ID")
	}
	waitApplied(t, b, a2, b)
	hosts = map[string]int{}
	for i := range 20 {
		host, _ := where(t, b, "guild-"+string(rune('a'+i)))
		hosts[host]++
	}
	if hosts[a2.System.ID] == 0 {
		t.Fatalf("the new member hosts nothing: %v", hosts)
	}
}

// TestLookupWorksWithDisthash: during a rolling upgrade from a version on
// protoactor's disthash lookup, members of both versions agree where each
// identity lives and activate grains for each other.
func TestLookupWorksWithDisthash(t *testing.T) {
	e := testserver.StartEtcd(t)
	cfg := testConfig()
	cfg.Provider = config.ProviderEtcd
	cfg.EtcdEndpoints = []string{e.Endpoint}
	cfg.EtcdLeaseTTL = 2 * time.Second
	ours := startWhereMember(t, cfg)
	old := startWhereMemberWith(t, cfg, disthash.New())
	waitApplied(t, ours, ours, old)
	waitApplied(t, old, ours, old)
	hosts := map[string]int{}
	for i := range 20 {
		id := "guild-" + string(rune('a'+i))
		first, from := ours, old
		if i%2 == 1 {
			first, from = old, ours
		}
		host, seen := where(t, first, id)
		again, seen2 := where(t, from, id)
		if again != host || seen != "1" || seen2 != "2" {
			t.Fatalf("%s: %s (#%s), then %s (#%s): want one activation", id, host, seen, again, seen2)
		}
		hosts[host]++
	}
	if hosts[ours.System.ID] == 0 || hosts[old.System.ID] == 0 {
		t.Fatalf("20 guilds placed on %v: want both members", hosts)
	}
}

func TestEtcdMemberToldWhenEjected(t *testing.T) {
	e := testserver.StartEtcd(t)
	a := startEtcdMember(t, e.Endpoint)
	b := startEtcdMember(t, e.Endpoint)
	waitApplied(t, a, a, b)
	admin, err := membership.EtcdClient([]string{e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := b.Cluster.Config.ClusterProvider.(*etcdProvider)
	if _, err := admin.Revoke(ctx, p.membership.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Ejected():
	case <-time.After(30 * time.Second):
		t.Fatal("b was not told it was dropped")
	}
	waitApplied(t, a, a)
	select {
	case <-a.Ejected():
		t.Fatal("a was told it was dropped")
	default:
	}
}
