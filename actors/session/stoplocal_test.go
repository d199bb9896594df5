package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// A member's drain (and a hand-over) stops its sessions with StopLocal
// within the stop's context, whatever the sessions are doing: these tests
// stop sessions in the middle of their takeovers, with store writes that
// do not end, and sessions that something else stops meanwhile.

// stallingStore is the harness's bbolt store whose session writes for the
// guilds in stall wait until release closes (or their context ends).
type stallingStore struct {
	*store.Bolt
	mu      sync.Mutex
	stall   map[string]bool
	release chan struct{}
	// stalling gets the guild of each write that starts to wait.
	stalling chan string
}

func newStallingStore() *stallingStore {
	return &stallingStore{stall: map[string]bool{}, release: make(chan struct{}), stalling: make(chan string, 1000)}
}

func (s *stallingStore) SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error {
	s.mu.Lock()
	stall := s.stall[guildID]
	s.mu.Unlock()
	if stall {
		s.stalling <- guildID
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Bolt.SaveSession(ctx, guildID, epoch, snapshot)
}

// takeoverHarness is a member whose store is s and whose takeovers wait
// until the returned function is called (or their context ends): its
// sessions, restored from a snapshot with a previous player, stay in the
// middle of their takeovers. Store and Lavalink calls may take 30 s.
func takeoverHarness(t *testing.T, s *stallingStore) (*harness, func()) {
	t.Helper()
	h := newHarness(t, func(d *Deps) {
		s.Bolt = d.Store.(*store.Bolt)
		d.Store = s
		d.CallTimeout = 30 * time.Second
	})
	held := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(held) }) }
	h.setTakeOver(func(ctx context.Context, _ audio.Holder) (audio.PlayerState, bool, error) {
		select {
		case <-held:
		case <-ctx.Done():
		}
		return audio.PlayerState{}, false, nil
	})
	t.Cleanup(func() {
		release()
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-s.release:
		default:
			close(s.release)
		}
	})
	return h, release
}

// restoreGuilds stores, for n guilds, what a previous activation on
// another member left (a track playing, the bot in voice, its player),
// and activates each session here (as the member that takes them over
// does): they restore, start their takeovers and claim their epochs.
func (h *harness) restoreGuilds(n int) (guilds []string, epochs map[string]uint64) {
	h.t.Helper()
	base, _ := strconv.ParseUint(testGuild, 10, 64)
	epochs = map[string]uint64{}
	for i := range n {
		g := strconv.FormatUint(base+uint64(i)+1, 10)
		tr := emuTrack(h.t, fmt.Sprintf("kept-%d", i), "kept", "Artist", 3*time.Minute)
		snap := &clusterpb.SessionSnapshot{
			GuildId: g, Current: commands.TrackToPB(&tr), PositionMs: 10_000, PositionAtUnixMs: time.Now().UnixMilli(),
			Volume: 100, Loop: "off", TextChannelId: "222",
			VoiceChannelId: "111", VoiceSessionId: "voice-session", VoiceToken: "voice-token", VoiceEndpoint: "voice.example:443",
			LavalinkNode: oldHolder.Node, LavalinkSessionId: oldHolder.Session, MemberId: "old-member",
		}
		ctx := context.Background()
		epoch, err := h.store.Activate(ctx, g)
		if err != nil {
			h.t.Fatal(err)
		}
		snap.Epoch = epoch
		data, err := proto.Marshal(snap)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.store.SaveSession(ctx, g, epoch, data); err != nil {
			h.t.Fatal(err)
		}
		guilds, epochs[g] = append(guilds, g), epoch
	}
	for _, g := range guilds {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := ecluster.Call(ctx, 3, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
			return clusterpb.GetSessionGrainClient(h.member.Cluster, g).Wake(&clusterpb.Ack{}, o...)
		})
		cancel()
		if err != nil {
			h.t.Fatalf("wake %s: %v", g, err)
		}
	}
	return guilds, epochs
}

// TestStopLocalEndsWithItsContext: twenty sessions are in the middle of
// their takeovers when the member stops, and five of them cannot store
// (their writes do not end). StopLocal stops the fifteen others, each
// with its epoch claimed in the store, and returns when its context ends,
// naming the five it gave up on (and logging each). Those are left
// running, and stop by themselves once their writes end.
func TestStopLocalEndsWithItsContext(t *testing.T) {
	s := newStallingStore()
	h, _ := takeoverHarness(t, s)
	base, _ := strconv.ParseUint(testGuild, 10, 64)
	var stuck []string
	s.mu.Lock()
	for i := range 5 {
		g := strconv.FormatUint(base+uint64(3*i)+1, 10) // among restoreGuilds's
		stuck = append(stuck, g)
		s.stall[g] = true
	}
	s.mu.Unlock()
	guilds, seeded := h.restoreGuilds(20)
	for range stuck {
		within(t, "the stuck sessions' writes", s.stalling) // each one's claim of its epoch
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	n, err := StopLocal(ctx, h.member.System)
	took := time.Since(start)
	if took > 1500*time.Millisecond {
		t.Fatalf("StopLocal took %s with a context of 1 s", took)
	}
	var late *NotStoredError
	if n != 15 || !errors.As(err, &late) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("StopLocal = %d, %v; want 15 stopped and a NotStoredError", n, err)
	}
	if !slices.Equal(late.Guilds, stuck) {
		t.Fatalf("sessions given up on: %v, want %v", late.Guilds, stuck)
	}
	for _, g := range stuck {
		if !strings.Contains(h.logged(), "session not stored in time") || !strings.Contains(h.logged(), "guild="+g) {
			t.Fatalf("no log line names %s as given up on:\n%s", g, h.logged())
		}
	}
	for _, g := range guilds {
		if slices.Contains(stuck, g) {
			continue
		}
		data, err := h.store.LoadSession(context.Background(), g)
		var snap clusterpb.SessionSnapshot
		if err != nil || proto.Unmarshal(data, &snap) != nil || snap.GetEpoch() != seeded[g]+1 {
			t.Fatalf("guild %s: stored epoch %d (%v), want this activation's %d", g, snap.GetEpoch(), err, seeded[g]+1)
		}
	}
	// The sessions left running stop once their writes end.
	close(s.release)
	h.waitFor("the sessions given up on to stop by themselves", func() bool { return active(h) == 0 })
}

// active counts the sessions active on h's member (without stopping any).
func active(h *harness) int {
	n := 0
	_, _ = StopLocalIf(context.Background(), h.member.System, func(string) bool { n++; return false })
	return n
}

// within waits for a value from ch for at most 10 s.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestStopLocalEndsWhenSessionsStopOtherwise: a session that something
// else stops while StopLocal waits for it (protoactor poisons the
// activations a membership change moved elsewhere; a newer activation
// fences it) ends the wait at once: neither StopLocal's request nor an
// answer to it may ever come from an activation that stopped.
func TestStopLocalEndsWhenSessionsStopOtherwise(t *testing.T) {
	s := newStallingStore()
	h, _ := takeoverHarness(t, s)
	guilds, seeded := h.restoreGuilds(20)
	h.waitFor("every session's claim of its epoch stored", func() bool {
		for _, g := range guilds {
			data, err := h.store.LoadSession(context.Background(), g)
			var snap clusterpb.SessionSnapshot
			if err != nil || proto.Unmarshal(data, &snap) != nil || snap.GetEpoch() != seeded[g]+1 {
				return false
			}
		}
		return true
	})
	s.mu.Lock()
	for _, g := range guilds {
		s.stall[g] = true
	}
	s.mu.Unlock()
	// A change each session acknowledges at once and stores after: its
	// write waits, and the stop has to wait for it.
	for _, g := range guilds {
		_, err := clusterpb.GetSessionGrainClient(h.member.Cluster, g).Voice(&clusterpb.VoiceEvent{GuildId: g, Event: &clusterpb.VoiceEvent_Server{
			Server: &clusterpb.VoiceServer{Token: "rotated-token", Endpoint: "voice.example:443"}}}, pcluster.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		within(t, "the session's write", s.stalling)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := StopLocal(ctx, h.member.System)
		done <- result{n, err}
	}()
	// StopLocal asks them all; then something else stops them, as
	// protoactor does with the activations a membership change moved.
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	for _, g := range guilds {
		h.member.System.Root.Poison(h.member.Cluster.Get(g, Kind))
	}
	select {
	case r := <-done:
		if r.n != len(guilds) || r.err != nil {
			t.Fatalf("StopLocal = %d, %v; want %d, nil", r.n, r.err, len(guilds))
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("StopLocal still waits %s after its sessions were stopped", time.Since(start).Round(time.Millisecond))
	}
}
