package shard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// stubShards records what reaches shard grains of a real single-member
// cluster, without any gateway.
type stubShards struct {
	mu        sync.Mutex
	activated map[string]int
	ensured   map[string]int
	voice     map[string][]*clusterpb.VoiceRequest
	changed   chan struct{}
}

func (s *stubShards) note(fn func()) {
	s.mu.Lock()
	fn()
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// wait polls cond (under the lock) until it holds, for at most waitLong.
func (s *stubShards) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type stubShard struct {
	s  *stubShards
	id string
}

func (g *stubShard) Init(ctx pcluster.GrainContext) {
	g.id = ctx.Identity()
	g.s.note(func() { g.s.activated[g.id]++ })
}
func (g *stubShard) Terminate(pcluster.GrainContext)      {}
func (g *stubShard) ReceiveDefault(pcluster.GrainContext) {}

func (g *stubShard) UpdateVoice(req *clusterpb.VoiceRequest, _ pcluster.GrainContext) (*clusterpb.Ack, error) {
	if req.GetChannelId() == "666" {
		return nil, errors.New("shard says no")
	}
	g.s.note(func() { g.s.voice[g.id] = append(g.s.voice[g.id], req) })
	return &clusterpb.Ack{}, nil
}

func (g *stubShard) Ensure(_ *clusterpb.Ack, ctx pcluster.GrainContext) (*clusterpb.ShardStatus, error) {
	g.s.note(func() { g.s.ensured[g.id]++ })
	return &clusterpb.ShardStatus{Ready: true, Member: ctx.ActorSystem().Address()}, nil
}

func startStubCluster(t *testing.T) (*cluster.Member, *stubShards) {
	t.Helper()
	s := &stubShards{activated: map[string]int{}, ensured: map[string]int{}, voice: map[string][]*clusterpb.VoiceRequest{}, changed: make(chan struct{}, 1)}
	cfg := config.Default().Cluster
	cfg.RequestTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	m, err := cluster.Start(ctx, cfg, cluster.Options{
		Log:   quietLog(),
		Kinds: []*pcluster.Kind{clusterpb.NewShardKind(func() clusterpb.Shard { return &stubShard{s: s} }, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	return m, s
}

// TestKeeperAndGateway share one member: protoactor keeps per-process
// globals, and under -race several members in one process race inside
// protoactor and gRPC.
func TestKeeperAndGateway(t *testing.T) {
	m, s := startStubCluster(t)

	t.Run("keeper activates and keeps touching every shard", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Keep(ctx, m.Cluster, 3, 50*time.Millisecond, quietLog())
		}()
		s.wait(t, "three shards ensured twice", func() bool {
			return s.ensured["0"] >= 2 && s.ensured["1"] >= 2 && s.ensured["2"] >= 2
		})
		cancel()
		select {
		case <-done:
		case <-time.After(waitLong):
			t.Fatal("Keep did not return after its context ended")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		// Touching an active shard does not activate it again; and only
		// identities of the deployment's shards are touched.
		if len(s.activated) != 3 || s.activated["0"] != 1 || s.activated["1"] != 1 || s.activated["2"] != 1 {
			t.Fatalf("activations %v", s.activated)
		}
	})

	t.Run("keeper keeps only what its member owns, at once on a change", func(t *testing.T) {
		var owned atomic.Value
		owned.Store("4")
		changed := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			// An hour's backstop: only a change can explain a second round.
			Keeper{Cluster: m.Cluster, ShardCount: 5, Interval: time.Hour, Log: quietLog(),
				Owns:    func(id string) bool { return strings.Contains(owned.Load().(string), id) },
				Changed: changed}.Run(ctx)
		}()
		defer func() {
			cancel()
			<-done
		}()
		s.wait(t, "shard 4 ensured", func() bool { return s.ensured["4"] >= 1 })
		s.mu.Lock()
		other := s.ensured["3"]
		s.mu.Unlock()
		if other != 0 {
			t.Fatalf("shard 3, owned by no one here, ensured %d times", other)
		}
		owned.Store("3 4")
		changed <- struct{}{}
		s.wait(t, "shard 3 ensured after the change", func() bool { return s.ensured["3"] >= 1 })
	})

	t.Run("gateway routes to the owning shard", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		gw := NewGateway(m.Cluster, 3)
		guild := discordemu.SnowflakeForShard(2, 3).String()
		if err := gw.UpdateVoice(ctx, guild, "123456789"); err != nil {
			t.Fatal(err)
		}
		if err := gw.UpdateVoice(ctx, guild, ""); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		got := s.voice["2"]
		others := len(s.voice["0"]) + len(s.voice["1"])
		s.mu.Unlock()
		if len(got) != 2 || others != 0 || got[0].GetGuildId() != guild || got[0].GetChannelId() != "123456789" ||
			!got[0].GetSelfDeaf() || got[1].GetChannelId() != "" {
			t.Fatalf("shard 2 got %v (others %d)", got, others)
		}
	})

	t.Run("gateway error paths", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		gw := NewGateway(m.Cluster, 3)
		guild := discordemu.SnowflakeForShard(1, 3).String()
		if err := gw.UpdateVoice(ctx, "not-a-guild", "1"); err == nil {
			t.Fatal("bad guild ID accepted")
		}
		if err := gw.UpdateVoice(ctx, guild, "voice"); err == nil {
			t.Fatal("bad channel ID accepted")
		}
		if err := gw.UpdateVoice(context.Background(), guild, "1"); !errors.Is(err, cluster.ErrNoDeadline) {
			t.Fatalf("call without a deadline: %v", err)
		}
		// The shard's own refusal reaches the caller, naming the shard.
		err := gw.UpdateVoice(ctx, guild, "666")
		if err == nil || !strings.Contains(err.Error(), "shard says no") || !strings.Contains(err.Error(), "shard 1") {
			t.Fatalf("grain error: %v", err)
		}
		if err := NewGateway(m.Cluster, 0).UpdateVoice(ctx, guild, "1"); !errors.Is(err, ErrShardCount) {
			t.Fatalf("zero shards: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.voice["1"]) != 0 {
			t.Fatalf("refused requests reached the shard: %v", s.voice["1"])
		}
	})
}
