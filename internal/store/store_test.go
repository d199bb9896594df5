package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// backends runs a test against both real backends.
func backends(t *testing.T, test func(t *testing.T, s Store)) {
	t.Run("bbolt", func(t *testing.T) {
		s, err := OpenBolt(filepath.Join(t.TempDir(), "sub", "ensemble.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testserver.StartRedis(t)
		s, err := OpenRedis(context.Background(), RedisOptions{Addr: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
}

const guild = "81384788765712384"

func TestFencing(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if err := s.SaveSession(ctx, guild, 0, []byte("x")); !errors.Is(err, ErrFenced) {
			t.Fatalf("write before any activation = %v, want ErrFenced", err)
		}
		old, err := s.Activate(ctx, guild)
		if err != nil || old != 1 {
			t.Fatalf("first epoch = %d, %v", old, err)
		}
		if err := s.SaveSession(ctx, guild, old, []byte("old-1")); err != nil {
			t.Fatal(err)
		}
		newer, err := s.Activate(ctx, guild)
		if err != nil || newer != 2 {
			t.Fatalf("second epoch = %d, %v", newer, err)
		}
		// The older activation is fenced off for writes and deletes ...
		if err := s.SaveSession(ctx, guild, old, []byte("old-2")); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale write = %v, want ErrFenced", err)
		}
		if err := s.DeleteSession(ctx, guild, old); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale delete = %v, want ErrFenced", err)
		}
		// ... and changed nothing.
		if got, _ := s.LoadSession(ctx, guild); string(got) != "old-1" {
			t.Fatalf("after stale write: %q", got)
		}
		if err := s.SaveSession(ctx, guild, newer, []byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSession(ctx, guild, newer+1, []byte("future")); !errors.Is(err, ErrFenced) {
			t.Fatalf("write with an epoch never taken = %v", err)
		}
		if got, _ := s.LoadSession(ctx, guild); string(got) != "new" {
			t.Fatalf("final = %q, want the newer activation's", got)
		}
		// Other guilds have their own epochs.
		if e, _ := s.Activate(ctx, "1"); e != 1 {
			t.Fatalf("other guild epoch = %d", e)
		}
		if err := s.DeleteSession(ctx, guild, newer); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LoadSession(ctx, guild); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

// TestFencingUnderConcurrency races activations and writes: whatever the
// interleaving, the stored snapshot is one written by the newest epoch, and
// every write by an older epoch after the newer activation was refused.
func TestFencingUnderConcurrency(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		const activations, writes = 6, 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		maxEpoch := uint64(0)
		for a := 0; a < activations; a++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				epoch, err := s.Activate(ctx, guild)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if epoch > maxEpoch {
					maxEpoch = epoch
				}
				mu.Unlock()
				for w := 0; w < writes; w++ {
					err := s.SaveSession(ctx, guild, epoch, []byte(fmt.Sprintf("%d/%d", epoch, w)))
					if errors.Is(err, ErrFenced) {
						return // a refused activation stops at once
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if maxEpoch != activations {
			t.Fatalf("max epoch %d, want %d (epochs lost or duplicated)", maxEpoch, activations)
		}
		got, err := s.LoadSession(ctx, guild)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte(fmt.Sprintf("%d/", maxEpoch))) {
			// The newest activation may not have written yet when an older
			// one was last to write before it; then nothing may follow.
			var e, w int
			if _, err := fmt.Sscanf(string(got), "%d/%d", &e, &w); err != nil {
				t.Fatalf("snapshot %q", got)
			}
			if err := s.SaveSession(ctx, guild, uint64(e), []byte("late")); !errors.Is(err, ErrFenced) {
				t.Fatalf("epoch %d can still write after epoch %d activated", e, maxEpoch)
			}
		}
	})
}

func TestSettings(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if _, err := s.LoadSettings(ctx, guild); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing settings: %v", err)
		}
		for _, v := range []string{"a", "b"} {
			if err := s.SaveSettings(ctx, guild, []byte(v)); err != nil {
				t.Fatal(err)
			}
			if got, err := s.LoadSettings(ctx, guild); err != nil || string(got) != v {
				t.Fatalf("settings = %q, %v", got, err)
			}
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEmptyAndBinarySnapshots(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		e, _ := s.Activate(ctx, guild)
		for _, v := range [][]byte{nil, {}, {0, 1, 0xff, '\n', 0}} {
			if err := s.SaveSession(ctx, guild, e, v); err != nil {
				t.Fatal(err)
			}
			got, err := s.LoadSession(ctx, guild)
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("round trip %v -> %v, %v", v, got, err)
			}
		}
	})
}

func TestBoltSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ensemble.db")
	ctx := context.Background()
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.Activate(ctx, guild)
	if err := s.SaveSession(ctx, guild, e, []byte("queue")); err != nil {
		t.Fatal(err)
	}
	// A second open of a locked file fails fast with a clear error.
	if _, err := OpenBolt(path); err == nil {
		t.Fatal("second open of a locked file succeeded")
	}
	s.Close()

	s, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.LoadSession(ctx, guild); string(got) != "queue" {
		t.Fatalf("after reopen: %q", got)
	}
	if e2, _ := s.Activate(ctx, guild); e2 != e+1 {
		t.Fatalf("epoch after reopen = %d, want %d", e2, e+1)
	}
}

func TestRedisOutageIsAnError(t *testing.T) {
	srv := testserver.StartRedis(t)
	s, err := OpenRedis(context.Background(), RedisOptions{Addr: srv.Addr, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Activate(ctx, guild); err == nil {
		t.Fatal("Activate succeeded with Redis down")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	if _, err := OpenRedis(ctx, RedisOptions{Addr: srv.Addr, Timeout: 300 * time.Millisecond}); err == nil {
		t.Fatal("OpenRedis succeeded with Redis down")
	}
}

func TestOpenByConfig(t *testing.T) {
	cfg := config.Default().Store
	cfg.Bbolt.Path = filepath.Join(t.TempDir(), "x.db")
	s, err := Open(context.Background(), cfg, config.Default().Store.Redis.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Bolt); !ok {
		t.Fatalf("Open(bbolt) = %T", s)
	}
	s.Close()
	cfg.Kind = "memory"
	if _, err := Open(context.Background(), cfg, config.Default().Store.Redis.Password); err == nil {
		t.Fatal("unknown kind opened")
	}
}

func TestSessionsListsStoredGuilds(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if got, err := s.Sessions(ctx); err != nil || len(got) != 0 {
			t.Fatalf("empty store lists %v, %v", got, err)
		}
		for _, g := range []string{"111", "222", "333"} {
			e, _ := s.Activate(ctx, g)
			if err := s.SaveSession(ctx, g, e, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		// Activation alone (no snapshot) and settings are not sessions.
		s.Activate(ctx, "444")
		s.SaveSettings(ctx, "555", []byte("s"))
		e, _ := s.Activate(ctx, "222")
		if err := s.DeleteSession(ctx, "222", e); err != nil {
			t.Fatal(err)
		}
		got, err := s.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != "111,333" {
			t.Fatalf("Sessions = %v, want [111 333]", got)
		}
	})
}

func TestLoadGuild(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		tests := []struct {
			name       string
			setup      func(t *testing.T, guild string)
			settings   []byte // nil: none stored
			hasSession bool
		}{
			{"nothing stored", func(*testing.T, string) {}, nil, false},
			{"settings only", func(t *testing.T, g string) {
				must(t, s.SaveSettings(ctx, g, []byte{0, 1, 0xff}))
			}, []byte{0, 1, 0xff}, false},
			{"empty settings are stored settings", func(t *testing.T, g string) {
				must(t, s.SaveSettings(ctx, g, []byte{}))
			}, []byte{}, false},
			{"session only", func(t *testing.T, g string) {
				e, err := s.Activate(ctx, g)
				must(t, err)
				must(t, s.SaveSession(ctx, g, e, []byte("queue")))
			}, nil, true},
			{"empty snapshot is a session", func(t *testing.T, g string) {
				e, err := s.Activate(ctx, g)
				must(t, err)
				must(t, s.SaveSession(ctx, g, e, nil))
			}, nil, true},
			{"both", func(t *testing.T, g string) {
				must(t, s.SaveSettings(ctx, g, []byte("s")))
				e, err := s.Activate(ctx, g)
				must(t, err)
				must(t, s.SaveSession(ctx, g, e, []byte("queue")))
			}, []byte("s"), true},
			{"activated, never saved", func(t *testing.T, g string) {
				_, err := s.Activate(ctx, g)
				must(t, err)
			}, nil, false},
			{"session deleted", func(t *testing.T, g string) {
				e, err := s.Activate(ctx, g)
				must(t, err)
				must(t, s.SaveSession(ctx, g, e, []byte("queue")))
				must(t, s.DeleteSession(ctx, g, e))
			}, nil, false},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// One guild per case, and a neighbour whose data must not
				// show through.
				g := fmt.Sprint(7000 + i)
				tt.setup(t, g)
				must(t, s.SaveSettings(ctx, g+"0", []byte("other")))
				got, err := s.LoadGuild(ctx, g)
				if err != nil {
					t.Fatal(err)
				}
				if (got.Settings == nil) != (tt.settings == nil) || !bytes.Equal(got.Settings, tt.settings) {
					t.Errorf("Settings = %v, want %v", got.Settings, tt.settings)
				}
				if got.HasSession != tt.hasSession {
					t.Errorf("HasSession = %v, want %v", got.HasSession, tt.hasSession)
				}
			})
		}
	})
}

func TestLoadGuildFailsWithoutTheBackend(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.LoadGuild(ctx, guild); !errors.Is(err, context.Canceled) {
			t.Fatalf("LoadGuild with a cancelled context = %v, want context.Canceled", err)
		}
	})
	srv := testserver.StartRedis(t)
	s, err := OpenRedis(context.Background(), RedisOptions{Addr: srv.Addr, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.LoadGuild(ctx, guild); err == nil {
		t.Fatal("LoadGuild succeeded with Redis down")
	}
}

// roundTrips counts what go-redis sends: each single command and each
// pipeline is one round trip.
type roundTrips struct {
	mu sync.Mutex
	n  int
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

// TestRedisLoadGuildIsOneRoundTrip: a guild activation costs one round
// trip to Redis whatever is stored.
func TestRedisLoadGuildIsOneRoundTrip(t *testing.T) {
	srv := testserver.StartRedis(t)
	s, err := OpenRedis(context.Background(), RedisOptions{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	must(t, s.SaveSettings(ctx, "1", []byte("s")))
	e, err := s.Activate(ctx, "1")
	must(t, err)
	must(t, s.SaveSession(ctx, "1", e, []byte("q")))
	rt := &roundTrips{}
	s.c.AddHook(rt)
	// A new connection's handshake (HELLO, CLIENT SETINFO) is not the
	// call's: let it happen first.
	if _, err := s.LoadGuild(ctx, "3"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"1", "2"} {
		rt.mu.Lock()
		rt.n = 0
		rt.mu.Unlock()
		if _, err := s.LoadGuild(ctx, g); err != nil {
			t.Fatal(err)
		}
		rt.mu.Lock()
		n := rt.n
		rt.mu.Unlock()
		if n != 1 {
			t.Errorf("guild %s: LoadGuild made %d round trips, want 1", g, n)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
