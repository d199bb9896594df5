//go:build !race

// Several protoactor members in one process race inside protoactor and
// gRPC (see etcd_member_test.go and the Makefile for where); the
// automanaged membership's own concurrency is covered by
// automanaged_test.go under -race.

package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/config"
)

func startAutomanagedMember(t *testing.T, addr string, members []string) *Member {
	t.Helper()
	cfg := testConfig()
	cfg.Provider = config.ProviderAutomanaged
	cfg.Members = members
	cfg.AutomanagedAddr = addr
	cfg.AutomanagedRefresh = 900 * time.Millisecond
	return startWhereMember(t, cfg)
}

// agree calls identity from every member and checks they all reach one
// activation; it returns the member hosting it.
func agree(t *testing.T, identity string, from ...*Member) string {
	t.Helper()
	var host, first string
	for i, m := range from {
		h, seen := where(t, m, identity)
		if i == 0 {
			host, first = h, seen
			continue
		}
		if h != host || seen != fmt.Sprint(int(first[0]-'0')+i) {
			t.Fatalf("%s: from %s on %s (#%s), from %s on %s (#%s): want one activation",
				identity, from[0].System.ID, host, first, m.System.ID, h, seen)
		}
	}
	return host
}

func TestAutomanagedMembersShareGrains(t *testing.T) {
	addrs := []string{loopbackAddr(t), loopbackAddr(t), loopbackAddr(t)}
	a := startAutomanagedMember(t, addrs[0], addrs)
	b := startAutomanagedMember(t, addrs[1], addrs)
	c := startAutomanagedMember(t, addrs[2], addrs)
	for _, m := range []*Member{a, b, c} {
		waitApplied(t, m, a, b, c)
	}
	guild := func(i int) string { return fmt.Sprintf("guild-%02d", i) }

	// Guilds spread over the three members, and all agree where each
	// lives: calls from b and c reach the activation a's call made.
	hosts := map[string]int{}
	onA := map[string]bool{}
	for i := range 30 {
		host := agree(t, guild(i), a, b, c)
		hosts[host]++
		if host == a.System.ID {
			onA[guild(i)] = true
		}
	}
	if len(hosts) != 3 {
		t.Fatalf("30 guilds placed on %v: want all three members", hosts)
	}

	// A member that stops closes its provider address: the others drop it
	// at their next poll, and a's guilds are served by the survivors.
	a.Stop()
	waitApplied(t, b, b, c)
	waitApplied(t, c, b, c)
	for i := range 30 {
		host, _ := where(t, b, guild(i))
		again, _ := where(t, c, guild(i))
		if host != again || host == a.System.ID {
			t.Fatalf("after a stopped, %s: from b on %s, from c on %s", guild(i), host, again)
		}
	}
	if len(onA) == 0 {
		t.Fatal("a hosted no guild before it stopped")
	}

	// Restarted at the same addresses, it is a new member (a new ID, which
	// no one has blocked) and takes its share again.
	a2 := startAutomanagedMember(t, addrs[0], addrs)
	if a2.System.ID == a.System.ID {
		t.Fatal("a restarted member kept its ID")
	}
	for _, m := range []*Member{a2, b, c} {
		waitApplied(t, m, a2, b, c)
	}
	hosts = map[string]int{}
	for i := range 30 {
		id := fmt.Sprintf("guild-new-%02d", i) // fresh activations: one count per caller
		hosts[agree(t, id, b, c, a2)]++
	}
	if hosts[a2.System.ID] == 0 {
		t.Fatalf("the new member hosts nothing: %v", hosts)
	}
	for name, m := range map[string]*Member{"a": a, "a2": a2, "b": b, "c": c} {
		select {
		case <-m.Ejected():
			t.Fatalf("%s was told it was dropped", name)
		default:
		}
	}
}
