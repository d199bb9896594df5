package node

// Tests of the node's Lavalink client that waits for Discord's READY. They
// use a fake client, so they run under -race (the end-to-end tests of the
// same behaviour, with disgo and disgolink, are in
// discord_spacebar_e2e_test.go).

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/actors/lavalink"
	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/audio"
)

// fakeAudio records what the node does to its Lavalink client.
type fakeAudio struct {
	mu      sync.Mutex
	started int
	closed  int
	subs    []func(supervisor.Change)
	plays   int
}

func (f *fakeAudio) Start(context.Context) { f.mu.Lock(); f.started++; f.mu.Unlock() }
func (f *fakeAudio) Close()                { f.mu.Lock(); f.closed++; f.mu.Unlock() }
func (f *fakeAudio) Nodes(context.Context) ([]lavalink.NodeStatus, error) {
	return []lavalink.NodeStatus{{Name: "fake"}}, nil
}

func (f *fakeAudio) Subscribe(fn func(supervisor.Change)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := len(f.subs)
	f.subs = append(f.subs, fn)
	return func() {
		f.mu.Lock()
		f.subs[i] = nil
		f.mu.Unlock()
	}
}

func (f *fakeAudio) publish(c supervisor.Change) {
	f.mu.Lock()
	subs := append([]func(supervisor.Change){}, f.subs...)
	f.mu.Unlock()
	for _, fn := range subs {
		if fn != nil {
			fn(c)
		}
	}
}

func (f *fakeAudio) counts() (started, closed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started, f.closed
}

func (f *fakeAudio) Load(context.Context, string) (audio.Loaded, error) {
	return audio.Loaded{Search: true}, nil
}

func (f *fakeAudio) Play(context.Context, string, audio.PlayRequest) (audio.Holder, error) {
	f.mu.Lock()
	f.plays++
	f.mu.Unlock()
	return audio.Holder{Node: "fake", Session: "fake-session"}, nil
}
func (f *fakeAudio) TakeOver(context.Context, string, audio.Holder) (audio.PlayerState, bool, error) {
	return audio.PlayerState{}, false, nil
}
func (f *fakeAudio) Pause(context.Context, string, bool) error         { return nil }
func (f *fakeAudio) Seek(context.Context, string, time.Duration) error { return nil }
func (f *fakeAudio) Volume(context.Context, string, int) error         { return nil }
func (f *fakeAudio) Stop(context.Context, string) error                { return nil }
func (f *fakeAudio) Destroy(context.Context, string) error             { return nil }

func TestLateAudioBeforeAndAfterReady(t *testing.T) {
	ctx := context.Background()
	a := &lateAudio{}
	var early []supervisor.Change
	var mu sync.Mutex
	cancelEarly := a.Subscribe(func(c supervisor.Change) { mu.Lock(); early = append(early, c); mu.Unlock() })
	canceled := a.Subscribe(func(supervisor.Change) { t.Error("a canceled subscription heard a change") })
	canceled()

	// Before READY every call that needs Lavalink says there is no audio
	// node (sessions retry those); stopping or destroying nothing is fine.
	for name, err := range map[string]error{
		"load": func() error { _, err := a.Load(ctx, "ytsearch:x"); return err }(),
		"play": func() error { _, err := a.Play(ctx, "1", audio.PlayRequest{}); return err }(),
		"takeover": func() error {
			_, _, err := a.TakeOver(ctx, "1", audio.Holder{Node: "emu", Session: "old"})
			return err
		}(),
		"pause":  a.Pause(ctx, "1", true),
		"seek":   a.Seek(ctx, "1", time.Second),
		"volume": a.Volume(ctx, "1", 50),
		"nodes":  func() error { _, err := a.Nodes(ctx); return err }(),
	} {
		if !errors.Is(err, audio.ErrNoNode) || !errors.Is(err, errAwaitingReady) {
			t.Errorf("%s before READY: %v; want errAwaitingReady (audio.ErrNoNode)", name, err)
		}
	}
	if err := a.Stop(ctx, "1"); err != nil {
		t.Errorf("stop before READY: %v", err)
	}
	if err := a.Destroy(ctx, "1"); err != nil {
		t.Errorf("destroy before READY: %v", err)
	}

	fake := &fakeAudio{}
	made := 0
	newClient := func() (audioClient, error) { made++; return fake, nil }
	if started, err := a.start(ctx, newClient); !started || err != nil {
		t.Fatalf("start = %v, %v", started, err)
	}
	// A second READY starts nothing.
	if started, err := a.start(ctx, newClient); started || err != nil || made != 1 {
		t.Fatalf("second start = %v, %v (%d clients made)", started, err, made)
	}
	if n, err := a.Play(ctx, "1", audio.PlayRequest{}); err != nil || n.Node != "fake" || fake.plays != 1 {
		t.Fatalf("play after READY = %q, %v", n, err)
	}
	if ns, err := a.Nodes(ctx); err != nil || len(ns) != 1 {
		t.Fatalf("nodes after READY = %v, %v", ns, err)
	}
	// The subscription made before READY hears the client's changes.
	fake.publish(supervisor.Change{Node: "emu"})
	cancelEarly()
	cancelEarly()
	fake.publish(supervisor.Change{Node: "after cancel"})
	mu.Lock()
	if len(early) != 1 || early[0].Node != "emu" {
		t.Fatalf("early subscriber heard %+v", early)
	}
	mu.Unlock()

	a.close()
	if started, closed := fake.counts(); started != 1 || closed != 1 {
		t.Fatalf("client started %d and closed %d times; want once each", started, closed)
	}
	// A READY after Stop starts nothing.
	if started, err := a.start(ctx, newClient); started || err != nil || made != 1 {
		t.Fatalf("start after close = %v, %v (%d clients made)", started, err, made)
	}
}

func TestLateAudioStartFailure(t *testing.T) {
	a := &lateAudio{}
	boom := errors.New("bad bot user ID")
	if started, err := a.start(context.Background(), func() (audioClient, error) { return nil, boom }); started || !errors.Is(err, boom) {
		t.Fatalf("start = %v, %v", started, err)
	}
	if _, err := a.Play(context.Background(), "1", audio.PlayRequest{}); !errors.Is(err, audio.ErrNoNode) {
		t.Fatalf("play after a failed start: %v", err)
	}
	a.close()
}

// TestLateAudioCloseRacesStart: Stop and the READY callback run on
// different goroutines. Whatever the interleaving, a client that was
// started is closed, and none starts after close.
func TestLateAudioCloseRacesStart(t *testing.T) {
	for range 200 {
		a := &lateAudio{}
		fake := &fakeAudio{}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = a.start(context.Background(), func() (audioClient, error) { return fake, nil })
		}()
		go func() {
			defer wg.Done()
			a.close()
		}()
		wg.Wait()
		if started, closed := fake.counts(); started != closed {
			t.Fatalf("client started %d times, closed %d times", started, closed)
		}
	}
}
