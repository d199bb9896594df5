//go:build !race

package node

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// gatedStore holds every call about one guild until the test releases
// it: a store that is slow (or hung) for that guild only. Calls about
// other guilds go straight through.
type gatedStore struct {
	store.Store
	guild string
	gate  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	held  int
}

func (s *gatedStore) wait(ctx context.Context, guild string) error {
	if guild != s.guild {
		return nil
	}
	s.mu.Lock()
	s.held++
	s.mu.Unlock()
	select {
	case <-s.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *gatedStore) release() { s.once.Do(func() { close(s.gate) }) }

func (s *gatedStore) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

func (s *gatedStore) Activate(ctx context.Context, g string) (uint64, error) {
	if err := s.wait(ctx, g); err != nil {
		return 0, err
	}
	return s.Store.Activate(ctx, g)
}

func (s *gatedStore) LoadSession(ctx context.Context, g string) ([]byte, error) {
	if err := s.wait(ctx, g); err != nil {
		return nil, err
	}
	return s.Store.LoadSession(ctx, g)
}

func (s *gatedStore) SaveSession(ctx context.Context, g string, epoch uint64, b []byte) error {
	if err := s.wait(ctx, g); err != nil {
		return err
	}
	return s.Store.SaveSession(ctx, g, epoch, b)
}

func (s *gatedStore) DeleteSession(ctx context.Context, g string, epoch uint64) error {
	if err := s.wait(ctx, g); err != nil {
		return err
	}
	return s.Store.DeleteSession(ctx, g, epoch)
}

func (s *gatedStore) LoadGuild(ctx context.Context, g string) (store.Guild, error) {
	if err := s.wait(ctx, g); err != nil {
		return store.Guild{}, err
	}
	return s.Store.LoadGuild(ctx, g)
}

func (s *gatedStore) SaveSettings(ctx context.Context, g string, b []byte) error {
	if err := s.wait(ctx, g); err != nil {
		return err
	}
	return s.Store.SaveSettings(ctx, g, b)
}

// TestSlowStoreAndRateLimitsDelayOnlyTheirGuild: with the store hung for
// one guild and Discord answering 429s, every other guild's commands are
// answered as usual; the slow guild's are deferred within Discord's 3 s
// and completed once the store answers; nothing is lost.
func TestSlowStoreAndRateLimitsDelayOnlyTheirGuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := discordemu.Start(ctx, discordemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Close)
	slow := discordemu.SnowflakeForShard(0, 1)
	slowText, slowVoice, slowUser := discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake()
	if err := dc.AddGuild(discordemu.Guild{
		ID: slow, Name: "Slow Guild",
		Channels: []discordemu.Channel{{ID: slowText, Name: "music", Type: discordemu.ChannelText}, {ID: slowVoice, Name: "Lounge", Type: discordemu.ChannelVoice}},
		Members:  []discordemu.Member{{User: discordemu.User{ID: slowUser, Username: "patient"}}},
	}); err != nil {
		t.Fatal(err)
	}
	gated := &gatedStore{guild: slow.String(), gate: make(chan struct{})}
	t.Cleanup(gated.release)
	w := newWorld(t, worldOpts{discord: dc, wrapStore: func(s store.Store) store.Store { gated.Store = s; return gated }})
	w.join(w.listener, w.voice)
	if err := dc.JoinVoice(slow, slowUser, slowVoice); err != nil {
		t.Fatal(err)
	}
	// Discord rate-limits the deferred answers' edits and the
	// now-playing messages for a while.
	dc.RateLimitNext(discordemu.RateLimit{Method: "PATCH", Path: "/webhooks/**", Count: 2, RetryAfter: time.Second})
	dc.RateLimitNext(discordemu.RateLimit{Method: "POST", Path: "/channels/{c}/messages", Count: 2, RetryAfter: time.Second})

	d := discordemu.StringOption
	slowPlay, err := dc.InvokeCommand(slow, slowUser, slowText, "play", d("query", "patience"))
	if err != nil {
		t.Fatal(err)
	}
	slowQueue, err := dc.InvokeCommand(slow, slowUser, slowText, "queue")
	if err != nil {
		t.Fatal(err)
	}

	// The other guild is served while the slow one waits on the store.
	wantContains(t, w.run(w.listener, "play", d("query", "lofi beats")), "lofi beats")
	w.player(playing(""))
	wantContains(t, w.run(w.listener, "queue"), "Now playing")
	wantContains(t, w.run(w.listener, "nowplaying"), "lofi beats")
	wantContains(t, w.run(w.listener, "pause"), "paused")
	wantContains(t, w.run(w.listener, "resume"), "resumed")

	// The slow guild's interactions were deferred in time, not dropped.
	for _, ix := range []*discordemu.Interaction{slowPlay, slowQueue} {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := ix.Wait(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("the slow guild's /%s got no first answer: %v", ix.Name, err)
		}
		if res.Type != discordemu.ResponseDeferredMessage {
			t.Fatalf("the slow guild's /%s was answered before its store did (type %d): %q", ix.Name, res.Type, res.Content)
		}
	}
	if gated.calls() == 0 {
		t.Fatal("the slow guild never reached the store")
	}
	gated.release()

	// Then completed: the deferred answers are edited (through the 429s).
	for ix, want := range map[*discordemu.Interaction]string{slowPlay: "patience", slowQueue: ""} {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		msg, err := ix.WaitEdit(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("the slow guild's deferred /%s was never completed: %v", ix.Name, err)
		}
		if text := msg.Content + embedText(msg.Embeds); want != "" && !strings.Contains(strings.ToLower(text), want) {
			t.Fatalf("the slow guild's /%s was completed with %q", ix.Name, text)
		}
	}
	// Nothing lost: the slow guild's track plays and is in its queue.
	r := w.await(mustInvoke(t, dc, slow, slowUser, slowText, "nowplaying"))
	wantContains(t, r, "patience")
	if late := dc.ErrorsOfKind(discordemu.ErrLateInteraction); len(late) != 0 {
		t.Fatalf("interactions answered after Discord's deadline: %v", late)
	}
	waitFor(t, "the injected 429s served", func() bool { return dc.PendingRateLimits() == 0 })
}

func mustInvoke(t *testing.T, dc *discordemu.Emulator, guild, user, channel discordemu.Snowflake, name string, opts ...discordemu.Option) *discordemu.Interaction {
	t.Helper()
	ix, err := dc.InvokeCommand(guild, user, channel, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func embedText(es []discordemu.Embed) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(" " + e.Title + " " + e.Description)
		for _, f := range e.Fields {
			b.WriteString(" " + f.Name + " " + f.Value)
		}
	}
	return b.String()
}
