package discordemu

import (
	"strconv"
	"sync/atomic"
	"time"
)

// DiscordEpoch is the first millisecond of 2015, the origin of Discord snowflake timestamps.
const DiscordEpoch = 1420070400000

// Snowflake is a Discord ID. It encodes to JSON as a string, as Discord does, because
// 64-bit integers do not survive JavaScript number parsing.
type Snowflake uint64

// String returns the decimal form used on the wire.
func (s Snowflake) String() string { return strconv.FormatUint(uint64(s), 10) }

// MarshalJSON encodes the ID as a JSON string.
func (s Snowflake) MarshalJSON() ([]byte, error) {
	return []byte(`"` + s.String() + `"`), nil
}

// UnmarshalJSON accepts a quoted or bare decimal, since clients send both.
func (s *Snowflake) UnmarshalJSON(b []byte) error {
	str := string(b)
	if str == "null" {
		*s = 0
		return nil
	}
	if len(str) >= 2 && str[0] == '"' {
		str = str[1 : len(str)-1]
	}
	v, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		return err
	}
	*s = Snowflake(v)
	return nil
}

// Time returns the creation time encoded in the ID.
func (s Snowflake) Time() time.Time {
	return time.UnixMilli(int64(s>>22) + DiscordEpoch)
}

// ParseSnowflake parses a decimal ID.
func ParseSnowflake(s string) (Snowflake, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	return Snowflake(v), err
}

// snowflakeCounter feeds the 22 low bits so that IDs generated in the same millisecond
// stay unique across the whole process (several emulators may run in one test binary).
var snowflakeCounter atomic.Uint64

// NewSnowflake returns a fresh, time-ordered, process-unique ID.
func NewSnowflake() Snowflake {
	ms := uint64(time.Now().UnixMilli() - DiscordEpoch)
	return Snowflake(ms<<22 | (snowflakeCounter.Add(1) & (1<<22 - 1)))
}

// ShardForGuild is Discord's routing rule: shard = (guild_id >> 22) % shard_count.
func ShardForGuild(guildID Snowflake, shardCount int) int {
	if shardCount <= 0 {
		return 0
	}
	return int((uint64(guildID) >> 22) % uint64(shardCount))
}

// SnowflakeForShard returns a fresh guild ID that lands on shard when the bot runs
// shardCount shards. The timestamp part is moved back by at most shardCount-1 ms, so the ID
// is still a plausible recent snowflake.
func SnowflakeForShard(shard, shardCount int) Snowflake {
	if shardCount <= 0 {
		shardCount = 1
	}
	id := NewSnowflake()
	ts := uint64(id) >> 22
	low := uint64(id) & (1<<22 - 1)
	diff := (ts%uint64(shardCount) + uint64(shardCount) - uint64(shard%shardCount)) % uint64(shardCount)
	return Snowflake((ts-diff)<<22 | low)
}
