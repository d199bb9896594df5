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

// hungWrites is a store whose session writes, once hang is set, wait
// until gate closes (or their context ends); hung gets a value as each
// starts to wait.
type hungWrites struct {
	store.Store
	mu   sync.Mutex
	hang bool
	gate chan struct{}
	hung chan struct{}
}

func (s *hungWrites) SaveSession(ctx context.Context, g string, epoch uint64, b []byte) error {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang {
		select {
		case s.hung <- struct{}{}:
		default:
		}
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.SaveSession(ctx, g, epoch, b)
}

// TestStopWithinItsTimeoutWhileASessionCannotStore: a session whose write
// does not end (a hung store) does not hold the member's stop past its
// timeout: the stop gives the sessions half of its time, names the one it
// gave up on (its next owner restores what it stored last) and ends
// without an error.
func TestStopWithinItsTimeoutWhileASessionCannotStore(t *testing.T) {
	hw := &hungWrites{gate: make(chan struct{}), hung: make(chan struct{}, 1)}
	defer close(hw.gate)
	w := newWorld(t, worldOpts{wrapStore: func(s store.Store) store.Store { hw.Store = s; return hw }})
	w.join(w.listener, w.voice)
	wantContains(t, w.run(w.listener, "play", discordemu.StringOption("query", "lofi beats")), "lofi beats")
	w.player(playing(""))
	hw.mu.Lock()
	hw.hang = true
	hw.mu.Unlock()
	// A change the session must store before it stops, whose write hangs.
	if _, err := w.discord.InvokeCommand(w.guild, w.listener, w.text, "volume", discordemu.IntOption("level", 30)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hw.hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the session never wrote the change")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := w.node.Stop(ctx)
	took := time.Since(start)
	w.node = nil
	if err != nil || took >= 5*time.Second {
		t.Fatalf("stop: %v after %s, want nil within the 5 s timeout", err, took.Round(time.Millisecond))
	}
	if !strings.Contains(w.logs.String(), `msg="session not stored in time; left to its next owner, which restores what it stored last" guild=`+w.guild.String()) {
		t.Fatalf("the session given up on is not logged:\n%s", w.logs.String())
	}
}
