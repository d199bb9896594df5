//go:build !race

// Shard leases with disgo's real gateway against internal/discordemu and a
// real bbolt store (the Redis backend has the same contract, tested in
// internal/store). Without -race for the reasons gateway_test.go gives.

package shard

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/store"
)

func openTestStore(t *testing.T) *store.Bolt {
	t.Helper()
	s, err := store.OpenBolt(filepath.Join(t.TempDir(), "ensemble.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitLog waits until the shard's logs contain line.
func (f *fixture) waitLog(t *testing.T, line string) {
	t.Helper()
	for deadline := time.Now().Add(waitLong); !strings.Contains(f.logs.String(), line); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q in:\n%s", line, f.logs.String())
		}
	}
}

func sessionOf(t *testing.T, emu *discordemu.Emulator, id string) discordemu.SessionInfo {
	t.Helper()
	for _, s := range emu.Sessions() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no gateway session %s in %+v", id, emu.Sessions())
	return discordemu.SessionInfo{}
}

// A shard stopped on one activation resumes its Discord session on the
// next: the same session, no IDENTIFY, the events missed in between
// replayed, and the voice states the stopped activation knew (a RESUME
// brings no GUILD_CREATE) restored from the lease.
func TestShardResumesItsSessionOnTheNextActivation(t *testing.T) {
	var w testWorld
	st := openTestStore(t)
	f := startFixtureWith(t, discordemu.Config{}, 1, func(emu *discordemu.Emulator) {
		w = addWorld(t, emu, discordemu.SnowflakeForShard(0, 1))
		if err := emu.JoinVoice(w.guild, w.alice, w.music); err != nil {
			t.Fatal(err)
		}
	}, func(d *Deps) { d.Leases = st })
	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)
	first, err := f.emu.WaitReady(ctxTimeout(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ids := recv(t, f.readies); ids[1] != f.emu.BotUserID().String() {
		t.Fatalf("READY named bot %q", ids[1])
	}
	// bob joins after READY: only a VOICE_STATE_UPDATE tells it, so only
	// the stored state can carry it to the next activation.
	if err := f.emu.JoinVoice(w.guild, w.bob, w.lounge); err != nil {
		t.Fatal(err)
	}
	ix := f.invoke(t, w, w.bob, "before")
	if in := f.nextInteraction(t); in.GetReplayed() {
		t.Fatal("an interaction of a fresh session is marked replayed")
	} else {
		expectPlay(t, in, ix, "before", w.lounge, 0)
	}

	if n, err := StopLocal(ctxTimeout(t), f.m.System); err != nil || n != 1 {
		t.Fatalf("StopLocal = %d, %v", n, err)
	}
	// Closed with 1012: the session waits for a RESUME (the emulator sees
	// the close on its own reader, a moment later).
	if _, err := f.emu.WaitSession(ctxTimeout(t), func(s discordemu.SessionInfo) bool { return s.ID == first.ID && !s.Connected }); err != nil {
		t.Fatalf("session still connected after the stop: %v; %+v", err, f.emu.Sessions())
	}
	// Missed while no one is connected: replayed by the RESUME.
	if err := f.emu.LeaveVoice(w.guild, w.alice); err != nil {
		t.Fatal(err)
	}
	missed := f.invoke(t, w, w.alice, "missed")

	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)
	if ids := recv(t, f.readies); ids != [2]string{f.emu.AppID().String(), f.emu.BotUserID().String()} {
		t.Fatalf("resumed shard reported IDs %v; want the application and bot of the stored state", ids)
	}
	s := sessionOf(t, f.emu, first.ID)
	if !s.Ready || s.Resumes != 1 || len(f.emu.Sessions()) != 1 {
		t.Fatalf("after the second activation: %+v; want session %s resumed once and no other", f.emu.Sessions(), first.ID)
	}
	// Replayed: the guild grain acknowledges it before running it (the
	// previous holder may have handled it). The ones after RESUMED are not.
	in := f.nextInteraction(t)
	expectPlay(t, in, missed, "missed", 0, 0)
	if !in.GetReplayed() {
		t.Fatal("an interaction replayed by the RESUME is not marked replayed")
	}
	ix = f.invoke(t, w, w.bob, "after")
	in = f.nextInteraction(t)
	expectPlay(t, in, ix, "after", w.lounge, 0)
	if in.GetReplayed() {
		t.Fatal("an interaction after RESUMED is marked replayed")
	}
	if errs := f.emu.Errors(); len(errs) != 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
}

// While a live member holds a shard's lease, an activation elsewhere does
// not connect; it connects once the holder releases. A holder that is no
// longer a member is evicted at once.
func TestShardWaitsForALiveHolderAndEvictsAGoneOne(t *testing.T) {
	st := openTestStore(t)
	ctx := context.Background()
	const live, gone = "127.0.0.1:17001", "127.0.0.1:17002"
	heldEpoch, _, err := st.TakeShard(ctx, 0, live, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.TakeShard(ctx, 1, gone, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	f := startFixtureWith(t, discordemu.Config{}, 2, nil, func(d *Deps) {
		d.Leases = st
		d.Alive = func(m string) bool { return m != gone }
	})
	f.ensure(t, 1)
	f.waitReadyStatus(t, 1)
	f.waitLog(t, "shard lease taken from a member that is gone")

	f.ensure(t, 0)
	f.waitLog(t, "shard held by another member; waiting for it to hand the shard over")
	for _, s := range f.emu.Sessions() {
		if s.Shard == 0 {
			t.Fatalf("shard 0 connected while another member holds it: %+v", s)
		}
	}
	if st := f.ensure(t, 0); st.GetReady() {
		t.Fatalf("shard 0 ready while another member holds it: %v", st)
	}
	if err := st.ReleaseShard(ctx, 0, heldEpoch, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.emu.WaitReady(ctxTimeout(t), 0); err != nil {
		t.Fatalf("shard 0 after the release: %v", err)
	}
}

// A holder whose lease another member took (it was thought gone) closes
// its connection without ending the Discord session, which is the new
// holder's to resume, and stops.
func TestFencedShardLeavesTheSessionToTheNewHolder(t *testing.T) {
	st := openTestStore(t)
	var active atomic.Int32
	renewed := make(chan struct{})
	f := startFixtureWith(t, discordemu.Config{}, 1, nil, func(d *Deps) {
		d.Leases = renewSignal{Shards: st, renewed: renewed, once: &sync.Once{}}
		d.OnActive = func(_ int, on bool) {
			if on {
				active.Add(1)
			} else {
				active.Add(-1)
			}
		}
	})
	f.ensure(t, 0)
	f.waitReadyStatus(t, 0)
	sess, err := f.emu.WaitReady(ctxTimeout(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Once a renewal has stored the state, take the lease as a member
	// that believes this one gone.
	select {
	case <-renewed:
	case <-time.After(waitLong):
		t.Fatal("no renewal stored a resume state")
	}
	_, state, err := st.TakeShard(context.Background(), 0, "127.0.0.1:17003", f.m.System.Address(), time.Minute)
	if err != nil || state == nil {
		t.Fatalf("evicting take = %q, %v; want the holder's resume state", state, err)
	}
	f.waitLog(t, "another member took the shard; closing this connection")
	for deadline := time.Now().Add(waitLong); active.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fenced shard did not stop")
		}
	}
	if _, err := f.emu.WaitSession(ctxTimeout(t), func(s discordemu.SessionInfo) bool { return s.ID == sess.ID && !s.Connected }); err != nil {
		t.Fatalf("fenced shard still connected: %v; %+v", err, f.emu.Sessions())
	}
	// Its release was refused: the lease stays the new holder's.
	if _, _, err := st.TakeShard(context.Background(), 0, f.m.System.Address(), "", time.Minute); !errors.Is(err, store.ErrShardHeld) {
		t.Fatalf("take after the fenced stop = %v; want the new holder's lease", err)
	}
}

// renewSignal closes renewed after the first renewal that stored a state.
type renewSignal struct {
	store.Shards
	renewed chan struct{}
	once    *sync.Once
}

func (r renewSignal) RenewShard(ctx context.Context, shard int, member string, epoch uint64, ttl time.Duration, state []byte) error {
	err := r.Shards.RenewShard(ctx, shard, member, epoch, ttl, state)
	if err == nil && state != nil {
		r.once.Do(func() { close(r.renewed) })
	}
	return err
}
