package guild

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// countingReplier signals each answer and keeps nothing, so the heap
// measured is the grains', not the test's.
type countingReplier struct{ answered chan struct{} }

func (r countingReplier) signal() error { r.answered <- struct{}{}; return nil }

func (r countingReplier) Respond(context.Context, string, string, *clusterpb.Reply) error {
	return r.signal()
}
func (r countingReplier) Defer(context.Context, string, string, bool) error { return nil }
func (r countingReplier) EditOriginal(context.Context, string, string, *clusterpb.Reply) error {
	return r.signal()
}
func (r countingReplier) DeleteOriginal(context.Context, string, string) error { return nil }
func (r countingReplier) Followup(context.Context, string, string, *clusterpb.Reply) error {
	return r.signal()
}
func (r countingReplier) Autocomplete(context.Context, string, string, []*clusterpb.Choice) error {
	return r.signal()
}

// idleSessions answers like a session that has nothing.
type idleSessions struct{}

func (idleSessions) Execute(context.Context, *clusterpb.SessionRequest) (*clusterpb.SessionReply, error) {
	return &clusterpb.SessionReply{Reply: &clusterpb.Reply{Content: "The queue is empty."}}, nil
}

type footprint struct {
	heapPerGuild       float64
	goroutinesPerGuild float64
}

// idleGrain is the least a cluster grain can be: it answers and passivates
// after an idle timeout, as the generated guild kind does, and has the
// guild kind's mailbox. What an idle guild costs above it is the guild
// grain's own state.
type idleGrain struct{}

func (idleGrain) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *pcluster.ClusterInit:
		ctx.SetReceiveTimeout(time.Hour)
	case *actor.ReceiveTimeout:
		ctx.Poison(ctx.Self())
	case *pcluster.GrainRequest:
		ctx.Respond(&clusterpb.HandleReply{})
	}
}

const idleKind = "IdleGrain"

// measureIdleGuilds activates n guild grains (or, with bare, n idleGrains)
// in a real single-member cluster on a real bbolt store, each handling one
// /queue, waits for every answer and for the goroutines to come back to
// where they were, then reports the heap and goroutines each idle grain
// adds.
func measureIdleGuilds(tb testing.TB, n int, bare bool) footprint {
	tb.Helper()
	st, err := store.OpenBolt(filepath.Join(tb.TempDir(), "g.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	replier := countingReplier{answered: make(chan struct{}, n+1)}
	// The production defaults, with the cooldown cluster.yaml sets.
	d := Deps{Store: st, Replier: replier, Sessions: idleSessions{}, Log: log, Cooldown: 2 * time.Second, Mailbox: &ecluster.MailboxDepth{}}
	kind := NewKind(d)
	if bare {
		kind = pcluster.NewKind(idleKind, actor.PropsFromProducer(func() actor.Actor { return idleGrain{} }, actor.WithMailbox(actor.UnboundedLockfree())))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := ecluster.Start(ctx, config.Default().Cluster, ecluster.Options{Log: log, Kinds: []*pcluster.Kind{kind}, IdleTimeouts: map[string]time.Duration{Kind: time.Hour, idleKind: time.Hour}})
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Stop()

	handle := func(i int) {
		g := fmt.Sprint(100000000000000000 + i)
		in := &clusterpb.Interaction{
			Id: fmt.Sprint(900000000000000000 + i), Token: "tok", ApplicationId: "42", GuildId: g, ChannelId: "222",
			Invoker: listener, Kind: clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, Name: "queue",
			ReceivedUnixNano: time.Now().UnixNano(), BotVoiceChannelId: "111",
		}
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := ecluster.Call(c, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.HandleReply, error) {
			if !bare {
				return clusterpb.GetGuildGrainClient(m.Cluster, g).Handle(in, o...)
			}
			data, err := proto.Marshal(in)
			if err != nil {
				return nil, err
			}
			if _, err := m.Cluster.Request(g, idleKind, &pcluster.GrainRequest{MessageData: data}, o...); err != nil {
				return nil, err
			}
			replier.answered <- struct{}{}
			return nil, nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	// Warm up with a grain of its own, so that what the first activation
	// of a kind allocates once is not counted.
	handle(n)
	<-replier.answered
	waitGoroutines(tb, -1)

	before, goroutinesBefore := heapAfterGC()
	for i := 0; i < n; i++ {
		handle(i)
	}
	for i := 0; i < n; i++ {
		<-replier.answered
	}
	goroutinesAfter := waitGoroutines(tb, goroutinesBefore)
	after, _ := heapAfterGC()
	runtime.KeepAlive(m)
	return footprint{
		heapPerGuild:       float64(int64(after)-int64(before)) / float64(n),
		goroutinesPerGuild: float64(goroutinesAfter-goroutinesBefore) / float64(n),
	}
}

func heapAfterGC() (uint64, int) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, goroutines()
}

// goroutines counts the goroutines apart from the member-wide workers of
// cluster.Go, which outlive their jobs by a few seconds and belong to no
// grain.
func goroutines() int { return runtime.NumGoroutine() - ecluster.Workers() }

// waitGoroutines waits until the goroutine count is at most want (or, with
// want < 0, until it stops changing) and returns it. The answer goroutines
// end just after their last call, which no message can tell the test, so
// this one wait polls; it is bounded, and a count that stays above want is
// what the caller reports or asserts.
func waitGoroutines(tb testing.TB, want int) int {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last, stable := goroutines(), 0
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n := goroutines()
		if want >= 0 && n <= want {
			return n
		}
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		if want < 0 && stable >= 20 {
			return n
		}
	}
	return goroutines()
}

// BenchmarkIdleGuildFootprint reports the heap and goroutines an activated
// guild grain costs once idle after one /queue (the aim: no goroutine, a
// few hundred bytes of its own): heap-B/guild is all of it,
// protoactor's activation included; heap-B/bare-grain is that of the least
// cluster grain with the same mailbox in the same conditions; own-B/guild,
// the difference, is the guild grain's own state.
// Each iteration activates guilds grains in a fresh member:
//
//	go test ./actors/guild -run '^$' -bench IdleGuildFootprint -benchtime 3x
func BenchmarkIdleGuildFootprint(b *testing.B) {
	const guilds = 2000
	var guild, bare footprint
	runs := 0.0
	for b.Loop() {
		g, g0 := measureIdleGuilds(b, guilds, false), measureIdleGuilds(b, guilds, true)
		guild.heapPerGuild += g.heapPerGuild
		guild.goroutinesPerGuild += g.goroutinesPerGuild
		bare.heapPerGuild += g0.heapPerGuild
		runs++
	}
	guild.heapPerGuild /= runs
	guild.goroutinesPerGuild /= runs
	bare.heapPerGuild /= runs
	b.ReportMetric(guild.heapPerGuild, "heap-B/guild")
	b.ReportMetric(bare.heapPerGuild, "heap-B/bare-grain")
	b.ReportMetric(guild.heapPerGuild-bare.heapPerGuild, "own-B/guild")
	b.ReportMetric(guild.goroutinesPerGuild, "goroutines/guild")
}

// TestIdleGuildsHoldNoGoroutine: once their commands are answered, idle
// guild grains hold no goroutine (no timer, no waiting answer). The heap
// figure is logged, not asserted: it depends on the machine and runtime.
func TestIdleGuildsHoldNoGoroutine(t *testing.T) {
	f := measureIdleGuilds(t, 200, false)
	t.Logf("idle guild: %.0f B of heap, %.3f goroutines", f.heapPerGuild, f.goroutinesPerGuild)
	if f.goroutinesPerGuild > 0 {
		t.Fatalf("%.3f goroutines per idle guild, want 0", f.goroutinesPerGuild)
	}
}
