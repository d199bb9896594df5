package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/internal/secret"
)

// RedisOptions configure the Redis backend.
type RedisOptions struct {
	Addr     string
	DB       int
	Password secret.String
	Timeout  time.Duration
}

// Redis is the cluster backend.
type Redis struct {
	c *redis.Client
}

// fencedSet writes ARGV[2] to KEYS[2] only while KEYS[1] (the epoch) equals
// ARGV[1]. Comparing the strings avoids Lua's double precision; a session
// never activated has no epoch and refuses every write.
var fencedSet = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1`)

var fencedDel = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
return 1`)

// OpenRedis connects and pings once, so a wrong address fails at start.
func OpenRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	r := ConnectRedis(o)
	if err := r.Ping(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// ConnectRedis returns the store without waiting for Redis: its calls fail
// until Redis answers (a node that starts while Redis is down runs, and
// works once it comes up). Ping says when it does.
func ConnectRedis(o RedisOptions) *Redis {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Redis{c: redis.NewClient(&redis.Options{
		Addr:         o.Addr,
		DB:           o.DB,
		Password:     o.Password.Reveal(),
		DialTimeout:  timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		// No retries inside go-redis: its default three, with a hung
		// Redis, made one call wait 16 s (measured) instead of the
		// timeout. Callers retry with their own backoff, and the breaker
		// counts each failure.
		MaxRetries: -1,
	})}
}

// Keys share a hash tag per guild so that, on Redis Cluster, the epoch and
// the value a script touches live in one slot.
func epochKey(g string) string    { return "ensemble:{" + g + "}:epoch" }
func sessionKey(g string) string  { return "ensemble:{" + g + "}:session" }
func settingsKey(g string) string { return "ensemble:{" + g + "}:settings" }

func (r *Redis) Activate(ctx context.Context, guildID string) (uint64, error) {
	n, err := r.c.Incr(ctx, epochKey(guildID)).Uint64()
	if err != nil {
		return 0, fmt.Errorf("store: activate %s: %w", guildID, err)
	}
	return n, nil
}

func (r *Redis) LoadSession(ctx context.Context, guildID string) ([]byte, error) {
	return r.get(ctx, sessionKey(guildID))
}

func (r *Redis) SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error {
	if snapshot == nil {
		snapshot = []byte{} // nil would mean "no value" to fenced
	}
	return r.fenced(ctx, fencedSet, guildID, epoch, snapshot)
}

func (r *Redis) DeleteSession(ctx context.Context, guildID string, epoch uint64) error {
	return r.fenced(ctx, fencedDel, guildID, epoch, nil)
}

func (r *Redis) fenced(ctx context.Context, s *redis.Script, guildID string, epoch uint64, value []byte) error {
	args := []any{strconv.FormatUint(epoch, 10)}
	if value != nil {
		args = append(args, value)
	}
	ok, err := s.Run(ctx, r.c, []string{epochKey(guildID), sessionKey(guildID)}, args...).Int()
	if err != nil {
		return fmt.Errorf("store: write session %s: %w", guildID, err)
	}
	if ok != 1 {
		return fmt.Errorf("%w (guild %s, epoch %d)", ErrFenced, guildID, epoch)
	}
	return nil
}

func (r *Redis) LoadSettings(ctx context.Context, guildID string) ([]byte, error) {
	return r.get(ctx, settingsKey(guildID))
}

func (r *Redis) SaveSettings(ctx context.Context, guildID string, settings []byte) error {
	if err := r.c.Set(ctx, settingsKey(guildID), settings, 0).Err(); err != nil {
		return fmt.Errorf("store: save settings %s: %w", guildID, err)
	}
	return nil
}

// LoadGuild pipelines GET and EXISTS: one round trip. The two keys share
// the guild's hash tag, so on Redis Cluster they live on one node.
func (r *Redis) LoadGuild(ctx context.Context, guildID string) (Guild, error) {
	var settings *redis.StringCmd
	var session *redis.IntCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		settings = p.Get(ctx, settingsKey(guildID))
		session = p.Exists(ctx, sessionKey(guildID))
		return nil
	})
	// A missing settings key fails the pipeline with redis.Nil; each
	// command's own error says what really failed.
	if err != nil && !errors.Is(err, redis.Nil) {
		return Guild{}, fmt.Errorf("store: load guild %s: %w", guildID, err)
	}
	var g Guild
	switch b, err := settings.Bytes(); {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return Guild{}, fmt.Errorf("store: load guild %s settings: %w", guildID, err)
	default:
		// Stored but empty (settings that are all proto defaults) is
		// still stored: only nil means none.
		g.Settings = append([]byte{}, b...)
	}
	n, err := session.Result()
	if err != nil {
		return Guild{}, fmt.Errorf("store: load guild %s session: %w", guildID, err)
	}
	g.HasSession = n > 0
	return g, nil
}

func (r *Redis) get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", key, err)
	}
	return b, nil
}

func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}

func (r *Redis) Close() error { return r.c.Close() }

// Sessions scans for session keys (SCAN, not KEYS: it does not block
// Redis on a large keyspace).
func (r *Redis) Sessions(ctx context.Context) ([]string, error) {
	var out []string
	iter := r.c.Scan(ctx, 0, "ensemble:{*}:session", 500).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		open, end := strings.Index(k, "{"), strings.Index(k, "}")
		if open >= 0 && end > open {
			out = append(out, k[open+1:end])
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	return out, nil
}

// Shard keys share a hash tag per shard, like a guild's keys. The lease
// holds "member|epoch" and lapses by itself (PX).
func shardKeys(shard int) []string {
	p := "ensemble:{shard-" + strconv.Itoa(shard) + "}:"
	return []string{p + "epoch", p + "lease", p + "resume"}
}

// takeShard: ARGV member, evict, ttl ms. Returns {epoch, resume state} or
// {0, holder}. The holder is what precedes the last '|' of the lease.
var takeShard = redis.NewScript(`
local cur = redis.call('GET', KEYS[2])
if cur then
  local holder = string.match(cur, '^(.*)|')
  if holder ~= ARGV[1] and holder ~= ARGV[2] then return {0, holder} end
end
local epoch = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. epoch, 'PX', ARGV[3])
return {epoch, redis.call('GET', KEYS[3])}`)

// renewShard: ARGV member, epoch, ttl ms, [state].
var renewShard = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
if ARGV[4] then redis.call('SET', KEYS[3], ARGV[4]) end
return 1`)

// releaseShard: ARGV epoch, [state]. It ends the epoch too, so a renew
// still on its way from the releasing holder cannot bring the lease back.
var releaseShard = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] then redis.call('SET', KEYS[3], ARGV[2]) end
redis.call('INCR', KEYS[1])
redis.call('DEL', KEYS[2])
return 1`)

func (r *Redis) TakeShard(ctx context.Context, shard int, member, evict string, ttl time.Duration) (uint64, []byte, error) {
	res, err := takeShard.Run(ctx, r.c, shardKeys(shard), member, evict, ttl.Milliseconds()).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("store: take shard %d: %w", shard, err)
	}
	epoch, _ := res[0].(int64)
	if epoch == 0 {
		holder, _ := res[1].(string)
		return 0, nil, &ShardHeldError{Shard: shard, Holder: holder}
	}
	var state []byte
	if len(res) > 1 {
		// A missing resume key comes back as Lua false: nil here.
		if s, ok := res[1].(string); ok {
			state = []byte(s)
		}
	}
	return uint64(epoch), state, nil
}

func (r *Redis) RenewShard(ctx context.Context, shard int, member string, epoch uint64, ttl time.Duration, state []byte) error {
	args := []any{member, strconv.FormatUint(epoch, 10), ttl.Milliseconds()}
	if state != nil {
		args = append(args, state)
	}
	return r.shardWrite(ctx, renewShard, "renew", shard, epoch, args)
}

func (r *Redis) ReleaseShard(ctx context.Context, shard int, epoch uint64, state []byte) error {
	args := []any{strconv.FormatUint(epoch, 10)}
	if state != nil {
		args = append(args, state)
	}
	return r.shardWrite(ctx, releaseShard, "release", shard, epoch, args)
}

func (r *Redis) shardWrite(ctx context.Context, s *redis.Script, op string, shard int, epoch uint64, args []any) error {
	ok, err := s.Run(ctx, r.c, shardKeys(shard), args...).Int()
	if err != nil {
		return fmt.Errorf("store: %s shard %d: %w", op, shard, err)
	}
	if ok != 1 {
		return fmt.Errorf("%w (shard %d, epoch %d)", ErrFenced, shard, epoch)
	}
	return nil
}
