package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
)

// A member whose connection from here dropped is unreachable for the
// grains it owns until the connection is back or it leaves the membership.
func TestPlacementReachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kind := pcluster.NewKind("counter", actor.PropsFromProducer(func() actor.Actor { return &counterGrain{} }))
	m, err := Start(ctx, testConfig(), Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Kinds: []*pcluster.Kind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	p := NewPlacement(m.Cluster)
	defer p.Close()
	self := m.System.Address()
	if err := p.Reachable("counter", "1"); err != nil {
		t.Fatalf("before any connection loss: %v", err)
	}
	// The event stream delivers synchronously: the state has changed when
	// Publish returns.
	m.System.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: "127.0.0.1:1"})
	if err := p.Reachable("counter", "1"); err != nil {
		t.Fatalf("a lost connection to a non-member: %v", err)
	}
	m.System.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: self})
	if err := p.Reachable("counter", "1"); !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("owner's connection lost: %v, want ErrOwnerUnreachable", err)
	}
	m.System.EventStream.Publish(&remote.EndpointConnectedEvent{Address: self})
	if err := p.Reachable("counter", "1"); err != nil {
		t.Fatalf("owner's connection back: %v", err)
	}

	// Lost again; then a new member (another ID) takes the address, as a
	// restarted container does: it is not the lost one.
	m.System.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: self})
	if err := p.Reachable("counter", "1"); !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("owner's connection lost again: %v, want ErrOwnerUnreachable", err)
	}
	host, port, err := m.System.GetHostPort()
	if err != nil {
		t.Fatal(err)
	}
	p.update([]*pcluster.Member{{Id: "restarted", Host: host, Port: int32(port), Kinds: []string{"counter"}}})
	if err := p.Reachable("counter", "1"); err != nil {
		t.Fatalf("a new member at the lost one's address: %v", err)
	}
	if !p.Member(self) || p.Member("127.0.0.1:1") {
		t.Fatal("Member wrong after the change")
	}
}
