package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// faultyStore is the harness's real bbolt store with the faults a test
// turns on: activation failing, LoadSession held until released, writes
// failing. Reads and writes otherwise reach the store.
type faultyStore struct {
	*store.Bolt
	mu          sync.Mutex
	activateErr error
	saveErr     error
	// hold, when set, keeps LoadSession waiting until it is closed;
	// loading gets a value as each held LoadSession starts.
	hold    chan struct{}
	loading chan struct{}
}

// withFaultyStore puts a faultyStore in front of the harness's store.
func withFaultyStore(fs *faultyStore) func(*Deps) {
	return func(d *Deps) {
		fs.Bolt = d.Store.(*store.Bolt)
		d.Store = fs
	}
}

func (s *faultyStore) set(f func(*faultyStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *faultyStore) Activate(ctx context.Context, guildID string) (uint64, error) {
	s.mu.Lock()
	err := s.activateErr
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return s.Bolt.Activate(ctx, guildID)
}

func (s *faultyStore) LoadSession(ctx context.Context, guildID string) ([]byte, error) {
	s.mu.Lock()
	hold, loading := s.hold, s.loading
	s.mu.Unlock()
	if hold != nil {
		select {
		case loading <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Bolt.LoadSession(ctx, guildID)
}

func (s *faultyStore) SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error {
	s.mu.Lock()
	err := s.saveErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Bolt.SaveSession(ctx, guildID, epoch, snapshot)
}

// TestStoreFaults runs one session through the store's failures (one
// cluster member: each costs a second to start).
//
//   - Store down at activation: every call is answered with a refusal
//     that keeps the guild asking the session, Wake reports the error,
//     nothing is searched or stored, and the next call once the store is
//     back activates the session afresh.
//   - A write the store fails: the change is kept in memory and served
//     from there, the reply says it is not saved yet, and the retry stores
//     it once the store is back.
//   - A member that stops the session with a failed write pending does not
//     return before the change is stored.
//   - A snapshot that does not decode: calls are refused as above, and the
//     stored bytes are left as they are.
func TestStoreFaults(t *testing.T) {
	fs := &faultyStore{}
	h := newHarness(t, withFaultyStore(fs))
	refusedCalls := func(wakeErr string) {
		t.Helper()
		for range 2 { // each call finds a new activation, which fails again
			r := h.execReply("play", opt("query", "anything"))
			if !strings.Contains(r.GetReply().GetContent(), "could not start (storage unavailable)") || !r.GetActive() {
				t.Fatalf("call to a session that cannot activate answered %q (active %v)", r.GetReply().GetContent(), r.GetActive())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := ecluster.Call(ctx, restartAttempts, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
			return h.client().Wake(&clusterpb.Ack{}, o...)
		})
		if err == nil || !strings.Contains(err.Error(), wakeErr) {
			t.Fatalf("wake of a session that cannot activate: %v, want %q", err, wakeErr)
		}
	}
	stop := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, err := StopLocal(ctx, h.member.System); n != 1 || err != nil {
			t.Fatalf("StopLocal: %d sessions, %v", n, err)
		}
	}

	fs.set(func(fs *faultyStore) { fs.activateErr = errors.New("redis: connection refused") })
	refusedCalls("connection refused")
	if n := h.audio.count("load"); n != 0 {
		t.Fatalf("a session that could not activate searched %d times", n)
	}
	if s := h.snapshot(); s != nil {
		t.Fatalf("a session that could not activate stored %v", s)
	}
	fs.set(func(fs *faultyStore) { fs.activateErr = nil })
	if r := h.execReply("play", opt("query", "kept")); commands.IsError(r.GetReply()) {
		t.Fatalf("play once the store is back: %q", r.GetReply().GetContent())
	}
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })
	// The session's own writes (the player's node, the now-playing
	// message) are stored off its mailbox; the faults come after them.
	h.stored("the node and the now-playing message", func(s *clusterpb.SessionSnapshot) bool {
		return s.GetLavalinkNode() != "" && s.GetNowPlayingMessageId() != ""
	})

	down := errors.New("redis: i/o timeout")
	fs.set(func(fs *faultyStore) { fs.saveErr = down })
	r := h.exec("volume", opt("level", "30"))
	if r.GetContent() != "Volume set to 30%.\n(Not saved yet: storage is unavailable; retrying.)" {
		t.Fatalf("change the store failed: %q", r.GetContent())
	}
	if v := h.snapshot().GetVolume(); v != 100 {
		t.Fatalf("stored volume %d while the store fails", v)
	}
	if r := h.exec("nowplaying"); len(r.GetEmbeds()) == 0 || !strings.Contains(fmt.Sprint(r.GetEmbeds()), "30%") {
		t.Fatalf("the session does not serve its unsaved state: %v", r.GetEmbeds())
	}
	fs.set(func(fs *faultyStore) { fs.saveErr = nil })
	h.stored("the retried volume", func(s *clusterpb.SessionSnapshot) bool { return s.GetVolume() == 30 })

	fs.set(func(fs *faultyStore) { fs.saveErr = down })
	if r := h.exec("volume", opt("level", "40")); !strings.Contains(r.GetContent(), "Not saved yet") {
		t.Fatalf("second change the store failed: %q", r.GetContent())
	}
	fs.set(func(fs *faultyStore) { fs.saveErr = nil })
	stop()
	if v := h.snapshot().GetVolume(); v != 40 {
		t.Fatalf("stored volume %d once StopLocal returned, want 40", v)
	}

	corrupt := []byte{0xff} // a varint that never ends: no protobuf message
	ctx := context.Background()
	epoch, err := h.store.Activate(ctx, testGuild)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.SaveSession(ctx, testGuild, epoch, corrupt); err != nil {
		t.Fatal(err)
	}
	calls := h.audio.count("load")
	refusedCalls("decode snapshot")
	if n := h.audio.count("load") - calls; n != 0 {
		t.Fatalf("a session with a corrupt snapshot searched %d times", n)
	}
	if data, err := h.store.LoadSession(ctx, testGuild); err != nil || string(data) != string(corrupt) {
		t.Fatalf("the failed activations changed the stored snapshot: %x, %v", data, err)
	}
}

// restartAttempts bounds the attempts of a call made right after an
// activation stopped itself: until the cluster has seen it stop, an
// attempt may reach the stopped activation (a dead letter), and the call
// is retried with backoff, as the guild grain's calls are.
const restartAttempts = 10

// execReply is exec returning the whole SessionReply, for a session whose
// activations stop themselves (restartAttempts).
func (h *harness) execReply(command string, opts ...*clusterpb.Option) *clusterpb.SessionReply {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := h.seq.Add(1)
	res, err := ecluster.Call(ctx, restartAttempts, func(o ...pcluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		return h.client().Execute(&clusterpb.SessionRequest{
			GuildId: testGuild, Command: command, Options: opts, TextChannelId: "222", RequestId: fmt.Sprint("reply-", id),
			Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"},
		}, o...)
	})
	if err != nil {
		h.t.Fatalf("%s: %v", command, err)
	}
	return res
}
