// Package store persists what must outlive a node: session snapshots (with
// the fencing epoch that keeps a session single-writer) and guild settings.
//
// Two backends implement Store: Redis for clusters and an embedded bbolt
// file for a single node, so a bot without Redis still keeps every queue
// across a crash. Values are opaque bytes: the grains own their encodings.
//
// Fencing (ARCHITECTURE.md, Failover and fencing): protoactor can run two activations of one session
// during membership changes. Each activation takes a new epoch with
// Activate; every write carries it and is refused atomically (ErrFenced)
// unless it is still the newest epoch. The refused activation must stop.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// Errors callers branch on.
var (
	// ErrFenced means a newer activation took the session: stop at once.
	ErrFenced = errors.New("store: write refused, a newer activation owns this session")
	// ErrNotFound means nothing is stored under the key.
	ErrNotFound = errors.New("store: not found")
	// ErrShardHeld means another member holds a shard's lease; errors
	// that wrap it are *ShardHeldError, which names the holder.
	ErrShardHeld = errors.New("store: the shard's lease is held by another member")
)

// ShardHeldError is TakeShard refusing a shard another member holds.
type ShardHeldError struct {
	Shard  int
	Holder string
}

func (e *ShardHeldError) Error() string {
	return fmt.Sprintf("store: shard %d is held by member %s", e.Shard, e.Holder)
}

func (e *ShardHeldError) Is(target error) bool { return target == ErrShardHeld }

// Store is the persistence contract both backends meet.
type Store interface {
	// Activate takes the next fencing epoch of a guild's session. Epochs
	// start at 1 and only grow.
	Activate(ctx context.Context, guildID string) (uint64, error)
	// LoadSession returns the last snapshot saved, or ErrNotFound.
	LoadSession(ctx context.Context, guildID string) ([]byte, error)
	// SaveSession stores a snapshot if epoch is still the newest, else
	// returns ErrFenced and changes nothing.
	SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error
	// DeleteSession removes the snapshot under the same fencing rule.
	DeleteSession(ctx context.Context, guildID string, epoch uint64) error
	// Sessions lists the guilds that have a stored session, so a starting
	// member can wake them and resume their playback.
	Sessions(ctx context.Context) ([]string, error)
	// LoadSettings returns a guild's settings, or ErrNotFound.
	LoadSettings(ctx context.Context, guildID string) ([]byte, error)
	// LoadGuild reads what a guild grain needs when it activates: its
	// settings and whether a session snapshot exists, in one round trip.
	LoadGuild(ctx context.Context, guildID string) (Guild, error)
	// SaveSettings stores a guild's settings (last write wins: settings are
	// written by the guild grain in answer to one user command).
	SaveSettings(ctx context.Context, guildID string, settings []byte) error
	Shards
	// Ping checks the backend is reachable, for readiness.
	Ping(ctx context.Context) error
	Close() error
}

// Shards keeps one gateway connection per Discord shard across members:
// a member connects a shard only while it holds the shard's lease, and the
// lease carries the shard's resume state (its Discord session and voice
// states, opaque bytes), so that the next holder resumes the session
// instead of identifying again.
//
// Each take starts a new epoch; renewing and releasing are refused
// (ErrFenced) once a newer take has happened, and the refused holder must
// close its connection. A lease lapses after its TTL unless renewed, so a
// holder that vanished without a trace blocks its shard for one TTL at
// most; a holder the caller knows is gone (not a member any more) can be
// evicted at once.
type Shards interface {
	// TakeShard makes member the shard's holder for ttl, with a new epoch,
	// and returns that epoch and the resume state last stored (nil if
	// none). It fails with a *ShardHeldError while another member's lease
	// runs, unless that member is evict ("" evicts no one).
	TakeShard(ctx context.Context, shard int, member, evict string, ttl time.Duration) (uint64, []byte, error)
	// RenewShard extends member's lease to ttl from now and stores state
	// (unless nil) if epoch is still the newest; else ErrFenced.
	RenewShard(ctx context.Context, shard int, member string, epoch uint64, ttl time.Duration, state []byte) error
	// ReleaseShard stores state (unless nil) and ends the lease and its
	// epoch if epoch is still the newest, so that the next holder need not
	// wait for it to lapse; else ErrFenced.
	ReleaseShard(ctx context.Context, shard int, epoch uint64, state []byte) error
}

// Guild is what a guild grain reads when it activates.
type Guild struct {
	// Settings are the stored settings, nil when none are stored.
	Settings []byte
	// HasSession reports a stored session snapshot. A session with nothing
	// (no track, no queue, no voice connection) deletes its snapshot, so
	// without one the guild can answer /queue and /nowplaying itself
	// instead of activating a session.
	HasSession bool
}

// Open opens the backend cfg names.
func Open(ctx context.Context, cfg config.Store, redisPassword secret.String) (Store, error) {
	// Each case returns a nil interface on error, never a typed nil.
	switch cfg.Kind {
	case config.StoreBbolt:
		b, err := OpenBolt(cfg.Bbolt.Path)
		if err != nil {
			return nil, err
		}
		return b, nil
	case config.StoreRedis:
		r, err := OpenRedis(ctx, RedisOptions{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB, Password: redisPassword, Timeout: cfg.Redis.Timeout})
		if err != nil {
			return nil, err
		}
		return r, nil
	default:
		return nil, fmt.Errorf("store: unknown kind %q", cfg.Kind)
	}
}
