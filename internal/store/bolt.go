package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt is the single-node backend: one bbolt file. bbolt serialises write
// transactions, so the epoch check and the write in one transaction are as
// atomic as the Redis script.
type Bolt struct {
	db *bolt.DB
}

var (
	bucketEpochs   = []byte("epochs")
	bucketSessions = []byte("sessions")
	bucketSettings = []byte("settings")
	// A shard's epoch, lease (expiry in Unix nanoseconds, then the
	// member) and resume state, each keyed by the decimal shard ID.
	bucketShardEpochs = []byte("shard-epochs")
	bucketShardLeases = []byte("shard-leases")
	bucketShardResume = []byte("shard-resume")
)

// OpenBolt opens (or creates) the file, and its directory. A file locked
// by another process fails after a second instead of hanging.
func OpenBolt(path string) (*Bolt, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", dir, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open bbolt %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEpochs, bucketSessions, bucketSettings, bucketShardEpochs, bucketShardLeases, bucketShardResume} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init bbolt %s: %w", path, err)
	}
	// Session writes are batched: concurrent ones share one transaction
	// and one fsync, which is what a busy node needs (one commit per
	// write capped it at a few hundred writes a second). A write waits
	// at most this long for company.
	db.MaxBatchDelay = 2 * time.Millisecond
	return &Bolt{db: db}, nil
}

func (b *Bolt) Activate(ctx context.Context, guildID string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var epoch uint64
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketEpochs)
		epoch = readEpoch(bk, guildID) + 1
		return bk.Put([]byte(guildID), binary.BigEndian.AppendUint64(nil, epoch))
	})
	if err != nil {
		return 0, fmt.Errorf("store: activate %s: %w", guildID, err)
	}
	return epoch, nil
}

func readEpoch(bk *bolt.Bucket, guildID string) uint64 {
	v := bk.Get([]byte(guildID))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (b *Bolt) LoadSession(ctx context.Context, guildID string) ([]byte, error) {
	return b.get(ctx, bucketSessions, guildID)
}

func (b *Bolt) SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error {
	return b.fenced(ctx, guildID, epoch, func(bk *bolt.Bucket) error {
		return bk.Put([]byte(guildID), snapshot)
	})
}

func (b *Bolt) DeleteSession(ctx context.Context, guildID string, epoch uint64) error {
	return b.fenced(ctx, guildID, epoch, func(bk *bolt.Bucket) error {
		return bk.Delete([]byte(guildID))
	})
}

func (b *Bolt) fenced(ctx context.Context, guildID string, epoch uint64, write func(*bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Batch may run the function again, alone, if another one in its
	// batch fails: it only reads and writes inside its transaction, so a
	// second run is the same as a first.
	err := b.db.Batch(func(tx *bolt.Tx) error {
		if cur := readEpoch(tx.Bucket(bucketEpochs), guildID); cur == 0 || cur != epoch {
			return fmt.Errorf("%w (guild %s, epoch %d, newest %d)", ErrFenced, guildID, epoch, cur)
		}
		return write(tx.Bucket(bucketSessions))
	})
	if err != nil {
		return fmt.Errorf("store: write session %s: %w", guildID, err)
	}
	return nil
}

func (b *Bolt) LoadSettings(ctx context.Context, guildID string) ([]byte, error) {
	return b.get(ctx, bucketSettings, guildID)
}

func (b *Bolt) SaveSettings(ctx context.Context, guildID string, settings []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSettings).Put([]byte(guildID), settings)
	})
	if err != nil {
		return fmt.Errorf("store: save settings %s: %w", guildID, err)
	}
	return nil
}

// LoadGuild reads both in one read transaction.
func (b *Bolt) LoadGuild(ctx context.Context, guildID string) (Guild, error) {
	if err := ctx.Err(); err != nil {
		return Guild{}, err
	}
	var g Guild
	err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSettings).Get([]byte(guildID)); v != nil {
			// bbolt's slices are only valid inside the transaction.
			g.Settings = append([]byte{}, v...)
		}
		g.HasSession = tx.Bucket(bucketSessions).Get([]byte(guildID)) != nil
		return nil
	})
	if err != nil {
		return Guild{}, fmt.Errorf("store: load guild %s: %w", guildID, err)
	}
	return g, nil
}

func (b *Bolt) get(ctx context.Context, bucket []byte, guildID string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(guildID))
		if v == nil {
			return ErrNotFound
		}
		// bbolt's slices are only valid inside the transaction.
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

func (b *Bolt) Ping(ctx context.Context) error { return ctx.Err() }

func (b *Bolt) Close() error { return b.db.Close() }

// Sessions lists the keys of the sessions bucket.
func (b *Bolt) Sessions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

func (b *Bolt) TakeShard(ctx context.Context, shard int, member, evict string, ttl time.Duration) (uint64, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	key := []byte(strconv.Itoa(shard))
	var epoch uint64
	var state []byte
	err := b.db.Update(func(tx *bolt.Tx) error {
		now := time.Now()
		leases := tx.Bucket(bucketShardLeases)
		if v := leases.Get(key); len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) > now.UnixNano() {
			if holder := string(v[8:]); holder != member && holder != evict {
				return &ShardHeldError{Shard: shard, Holder: holder}
			}
		}
		epochs := tx.Bucket(bucketShardEpochs)
		epoch = readEpoch(epochs, string(key)) + 1
		if err := epochs.Put(key, binary.BigEndian.AppendUint64(nil, epoch)); err != nil {
			return err
		}
		if v := tx.Bucket(bucketShardResume).Get(key); v != nil {
			state = append([]byte{}, v...)
		}
		return leases.Put(key, lease(now.Add(ttl), member))
	})
	if err != nil {
		var held *ShardHeldError
		if errors.As(err, &held) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("store: take shard %d: %w", shard, err)
	}
	return epoch, state, nil
}

func lease(expires time.Time, member string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(expires.UnixNano())), member...)
}

func (b *Bolt) RenewShard(ctx context.Context, shard int, member string, epoch uint64, ttl time.Duration, state []byte) error {
	return b.shardWrite(ctx, "renew", shard, epoch, state, func(tx *bolt.Tx, key []byte) error {
		return tx.Bucket(bucketShardLeases).Put(key, lease(time.Now().Add(ttl), member))
	})
}

func (b *Bolt) ReleaseShard(ctx context.Context, shard int, epoch uint64, state []byte) error {
	// The epoch ends with the lease, so a renew still on its way from the
	// releasing holder cannot bring the lease back.
	return b.shardWrite(ctx, "release", shard, epoch, state, func(tx *bolt.Tx, key []byte) error {
		if err := tx.Bucket(bucketShardEpochs).Put(key, binary.BigEndian.AppendUint64(nil, epoch+1)); err != nil {
			return err
		}
		return tx.Bucket(bucketShardLeases).Delete(key)
	})
}

// shardWrite stores state (unless nil) and changes the lease, while epoch
// is the shard's newest.
func (b *Bolt) shardWrite(ctx context.Context, op string, shard int, epoch uint64, state []byte, change func(tx *bolt.Tx, key []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := []byte(strconv.Itoa(shard))
	err := b.db.Update(func(tx *bolt.Tx) error {
		if cur := readEpoch(tx.Bucket(bucketShardEpochs), string(key)); cur == 0 || cur != epoch {
			return fmt.Errorf("%w (shard %d, epoch %d, newest %d)", ErrFenced, shard, epoch, cur)
		}
		if state != nil {
			if err := tx.Bucket(bucketShardResume).Put(key, state); err != nil {
				return err
			}
		}
		return change(tx, key)
	})
	if err != nil {
		return fmt.Errorf("store: %s shard %d: %w", op, shard, err)
	}
	return nil
}
