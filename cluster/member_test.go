package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// counterGrain answers each StringValue with the identity and how many
// messages this activation has seen, so a test can tell one activation
// from several.
type counterGrain struct {
	identity string
	seen     int
}

func (g *counterGrain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		g.identity = msg.Identity.Identity
	case *wrapperspb.StringValue:
		g.seen++
		ctx.Respond(wrapperspb.String(g.identity + "/" + msg.Value + "/" + string(rune('0'+g.seen))))
	}
}

func testConfig() config.Cluster {
	c := config.Default().Cluster
	c.RequestTimeout = 2 * time.Second
	return c
}

func TestSingleMemberServesGrains(t *testing.T) {
	metrics, err := telemetry.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	kind := pcluster.NewKind("counter", actor.PropsFromProducer(func() actor.Actor { return &counterGrain{} }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, testConfig(), Options{
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		MeterProvider: metrics.MeterProvider,
		Kinds:         []*pcluster.Kind{kind},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()

	if !strings.HasPrefix(m.System.Address(), "127.0.0.1:") || strings.HasSuffix(m.System.Address(), ":0") {
		t.Fatalf("member address %q: want a bound loopback port", m.System.Address())
	}
	for i, want := range []string{"guild-a/x/1", "guild-a/y/2", "guild-b/z/1"} {
		identity := strings.Split(want, "/")[0]
		value := strings.Split(want, "/")[1]
		res, err := m.Cluster.Request(identity, "counter", wrapperspb.String(value))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := res.(*wrapperspb.StringValue).Value; got != want {
			t.Fatalf("request %d = %q, want %q", i, got, want)
		}
	}

	// protoactor's actor metrics reach the node's registry through OTel.
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "protoactor_") {
			found = true
		}
	}
	if !found {
		t.Fatal("no protoactor_ series in the registry")
	}
}

func TestStartRefusesUnwiredProvider(t *testing.T) {
	cfg := testConfig()
	cfg.Provider = config.ProviderK8s
	_, err := Start(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, ErrProviderNotWired) || !strings.Contains(err.Error(), "k8s") {
		t.Fatalf("Start = %v", err)
	}
}

func TestStartReportsBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig()
	cfg.BindAddr = l.Addr().String()
	_, err = Start(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Start on a busy port = %v", err)
	}
}

// TestStoppedGrainsLeaveThePIDCache: a grain that stops (passivates) is
// forgotten by the member's PID cache (protoactor's cluster middleware
// removes it on Stopped), so a node does not keep every grain it ever
// ran; the next call activates it afresh.
func TestStoppedGrainsLeaveThePIDCache(t *testing.T) {
	kind := pcluster.NewKind("counter", actor.PropsFromProducer(func() actor.Actor { return &counterGrain{} }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, testConfig(), Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Kinds: []*pcluster.Kind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if _, err := m.Cluster.Request("guild-a", "counter", wrapperspb.String("x")); err != nil {
		t.Fatal(err)
	}
	pid, ok := m.Cluster.PidCache.Get("guild-a", "counter")
	if !ok {
		t.Fatal("an active grain is not in the PID cache")
	}
	m.System.Root.Poison(pid) // as a passivation does
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := m.Cluster.PidCache.Get("guild-a", "counter"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a stopped grain stayed in the PID cache")
		}
		time.Sleep(5 * time.Millisecond)
	}
	res, err := m.Cluster.Request("guild-a", "counter", wrapperspb.String("y"))
	if err != nil || res.(*wrapperspb.StringValue).Value != "guild-a/y/1" {
		t.Fatalf("after the stop: %v %v, want a fresh activation", res, err)
	}
}

// TestAdvertisedAddress: a member bound to one address names itself by
// cluster.advertise_addr — the address the others reach it at, in its
// topology and its PIDs — and serves grains there.
func TestAdvertisedAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	cfg := testConfig()
	cfg.BindAddr = "127.0.0.1:" + port
	cfg.AdvertiseAddr = "localhost:" + port
	kind := pcluster.NewKind("counter", actor.PropsFromProducer(func() actor.Actor { return &counterGrain{} }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Kinds: []*pcluster.Kind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if got := m.System.Address(); got != cfg.AdvertiseAddr {
		t.Fatalf("member address %q; want the advertised %q", got, cfg.AdvertiseAddr)
	}
	members := m.Cluster.MemberList.Members().Members()
	if len(members) != 1 || members[0].Address() != cfg.AdvertiseAddr {
		t.Fatalf("topology %v; want this member at %s", members, cfg.AdvertiseAddr)
	}
	res, err := m.Cluster.Request("g1", "counter", wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.(*wrapperspb.StringValue).GetValue(); got != "g1/hi/1" {
		t.Fatalf("grain answered %q", got)
	}
}
