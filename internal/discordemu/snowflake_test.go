package discordemu

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSnowflakeForShard(t *testing.T) {
	for _, count := range []int{1, 2, 4, 16, 48} {
		for shard := 0; shard < count; shard++ {
			id := SnowflakeForShard(shard, count)
			if got := ShardForGuild(id, count); got != shard {
				t.Fatalf("SnowflakeForShard(%d, %d) = %s lands on shard %d", shard, count, id, got)
			}
			if age := time.Since(id.Time()); age < 0 || age > time.Minute {
				t.Fatalf("snowflake %s is %v old", id, age)
			}
		}
	}
	seen := map[Snowflake]bool{}
	for i := 0; i < 10000; i++ {
		id := NewSnowflake()
		if seen[id] {
			t.Fatalf("duplicate snowflake %s", id)
		}
		seen[id] = true
	}
}

func TestSnowflakeJSON(t *testing.T) {
	id := Snowflake(1 << 60)
	b, _ := json.Marshal(id)
	if string(b) != `"1152921504606846976"` {
		t.Fatalf("marshal %s", b)
	}
	for _, in := range []string{`"1152921504606846976"`, `1152921504606846976`} {
		var got Snowflake
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != id {
			t.Fatalf("unmarshal %s: %v %v", in, got, err)
		}
	}
}

func TestRecorderRedactsToken(t *testing.T) {
	emu := startEmu(t, Config{})
	c := dial(t, emu, CompressionNone)
	c.identify(emu.Token(), 0, 1, 1)
	do(t, emu, "GET", "/gateway/bot", "bot", "")
	for _, p := range emu.Recorder().Payloads() {
		if strings.Contains(string(p.Data), emu.Token()) {
			t.Fatalf("token recorded in op %d payload", p.Op)
		}
	}
	ids := emu.Recorder().PayloadsWithOp(opIdentify)
	if len(ids) != 1 || ids[0].Shard != 0 || ids[0].SessionID == "" {
		t.Fatalf("identify record %+v", ids)
	}
	for _, r := range emu.Recorder().Requests() {
		if strings.Contains(r.Header.Get("Authorization"), emu.Token()) {
			t.Fatal("token recorded in a request header")
		}
	}
}
