package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestShardLease(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		const shard, a, b = 3, "127.0.0.1:7001", "127.0.0.1:7002"
		e1, state, err := s.TakeShard(ctx, shard, a, "", time.Minute)
		if err != nil || e1 != 1 || state != nil {
			t.Fatalf("first take = %d, %q, %v; want epoch 1, no state", e1, state, err)
		}
		_, _, err = s.TakeShard(ctx, shard, b, "", time.Minute)
		var held *ShardHeldError
		if !errors.Is(err, ErrShardHeld) || !errors.As(err, &held) || held.Holder != a || held.Shard != shard {
			t.Fatalf("take of a held shard = %v, want ShardHeldError naming %s", err, a)
		}
		if _, _, err := s.TakeShard(ctx, shard, b, "127.0.0.1:9999", time.Minute); !errors.Is(err, ErrShardHeld) {
			t.Fatalf("evicting someone else = %v, want ErrShardHeld", err)
		}
		if err := s.RenewShard(ctx, shard, a, e1, time.Minute, []byte("a-1")); err != nil {
			t.Fatalf("holder's renew: %v", err)
		}
		// b knows a is gone: it evicts a, and a is fenced from then on.
		e2, state, err := s.TakeShard(ctx, shard, b, a, time.Minute)
		if err != nil || e2 != 2 || string(state) != "a-1" {
			t.Fatalf("evicting take = %d, %q, %v; want epoch 2 with a's state", e2, state, err)
		}
		if err := s.RenewShard(ctx, shard, a, e1, time.Minute, []byte("a-2")); !errors.Is(err, ErrFenced) {
			t.Fatalf("evicted holder's renew = %v, want ErrFenced", err)
		}
		if err := s.ReleaseShard(ctx, shard, e1, []byte("a-3")); !errors.Is(err, ErrFenced) {
			t.Fatalf("evicted holder's release = %v, want ErrFenced", err)
		}
		if err := s.RenewShard(ctx, shard, b, e2, time.Minute, nil); err != nil {
			t.Fatalf("renew without state: %v", err)
		}
		// A release hands the shard over at once, with the last state.
		if err := s.ReleaseShard(ctx, shard, e2, []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := s.RenewShard(ctx, shard, b, e2, time.Minute, nil); !errors.Is(err, ErrFenced) {
			t.Fatalf("renew after the release = %v, want ErrFenced", err)
		}
		e3, state, err := s.TakeShard(ctx, shard, a, "", time.Minute)
		if err != nil || e3 != 4 || !bytes.Equal(state, []byte{0, 1, 2}) {
			t.Fatalf("take after release = %d, %v, %v; want epoch 4 (the release ended 2 and 3) with b's last state", e3, state, err)
		}
		// The same member takes its own shard again (a new process on the
		// same address): a new epoch, the old one fenced.
		e4, _, err := s.TakeShard(ctx, shard, a, "", time.Minute)
		if err != nil || e4 != 5 {
			t.Fatalf("retake by the holder = %d, %v", e4, err)
		}
		if err := s.RenewShard(ctx, shard, a, e3, time.Minute, nil); !errors.Is(err, ErrFenced) {
			t.Fatalf("renew of the replaced epoch = %v, want ErrFenced", err)
		}
		// Other shards are apart.
		if e, _, err := s.TakeShard(ctx, shard+1, b, "", time.Minute); err != nil || e != 1 {
			t.Fatalf("another shard's first take = %d, %v", e, err)
		}
		if err := s.ReleaseShard(ctx, 99, 1, nil); !errors.Is(err, ErrFenced) {
			t.Fatalf("release of a never-taken shard = %v, want ErrFenced", err)
		}
	})
}

// A lease that is not renewed lapses, and anyone may take the shard.
func TestShardLeaseLapses(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		e, _, err := s.TakeShard(ctx, 0, "a", "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.TakeShard(ctx, 0, "b", "", time.Minute); !errors.Is(err, ErrShardHeld) {
			t.Fatalf("take during the lease = %v", err)
		}
		if err := s.RenewShard(ctx, 0, "a", e, time.Millisecond, []byte("last")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, state, err := s.TakeShard(ctx, 0, "b", "", time.Minute)
			if err == nil {
				if string(state) != "last" {
					t.Fatalf("state after the lapse = %q", state)
				}
				return
			}
			if !errors.Is(err, ErrShardHeld) || time.Now().After(deadline) {
				t.Fatalf("take after the lease lapsed = %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// Members racing for a free shard: exactly one wins.
func TestShardTakeRace(t *testing.T) {
	backends(t, func(t *testing.T, s Store) {
		const n = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []uint64
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, _, err := s.TakeShard(context.Background(), 7, fmt.Sprintf("m%d", i), "", time.Minute)
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, e)
					mu.Unlock()
				case !errors.Is(err, ErrShardHeld):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 || won[0] != 1 {
			t.Fatalf("winners' epochs = %v, want exactly one, epoch 1", won)
		}
	})
}
