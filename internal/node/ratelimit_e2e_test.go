//go:build !race

package node

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/ratelimit"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestRateLimitsAnswerWithTheWait: with the Redis store the node counts
// commands in Redis; a user past limits.user_commands, then a guild past
// limits.guild_commands, get an ephemeral answer saying when to try
// again, and the others' commands run meanwhile.
func TestRateLimitsAnswerWithTheWait(t *testing.T) {
	srv := testserver.StartRedis(t)
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: srv, userCommands: 3, guildCommands: 5})
	for i := 0; i < 3; i++ {
		if r := w.run(w.listener, "queue"); r.ephemeral && strings.Contains(r.content, "try again") {
			t.Fatalf("/queue %d within the limits: %+v", i, r)
		}
	}
	r := w.run(w.listener, "queue")
	wantRefusal(t, r, "You're sending commands faster than I take them; please try again in")
	wait := regexp.MustCompile(`try again in (\d+) s`).FindStringSubmatch(r.content)
	if secs, _ := strconv.Atoi(wait[1]); secs < 1 || secs > 60 {
		t.Fatalf("wait of %s s in a one-minute window", wait[1])
	}
	// The listener's refused command did not count for the guild: two more
	// commands fit (3 + 2 = 5), the next is the guild's sixth.
	for i := 0; i < 2; i++ {
		if r := w.run(w.dj, "queue"); r.ephemeral && strings.Contains(r.content, "try again") {
			t.Fatalf("another user's /queue %d: %+v", i, r)
		}
	}
	wantRefusal(t, w.run(w.dj, "queue"), "This server is sending commands faster than I take them")

	// The counters are Redis's, with the window as their expiry.
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	ctx := context.Background()
	if n, err := rc.Get(ctx, ratelimit.UserKey(w.listener.String())).Int(); err != nil || n != 4 {
		t.Fatalf("the listener's counter in Redis: %d, %v; want 4", n, err)
	}
	if ttl, err := rc.PTTL(ctx, ratelimit.GuildKey(w.guild.String())).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the guild counter's TTL: %v, %v", ttl, err)
	}
	m := metricsText(t, w)
	for _, s := range []string{
		`ensemble_ratelimit_decisions_total{backend="redis",outcome="allowed"} 5`,
		`ensemble_ratelimit_decisions_total{backend="redis",outcome="limited_user"} 1`,
		`ensemble_ratelimit_decisions_total{backend="redis",outcome="limited_guild"} 1`,
		"ensemble_ratelimit_fallback 0",
	} {
		if !strings.Contains(m, s) {
			t.Fatalf("/metrics lacks %s:\n%s", s, grepLines(m, "ensemble_ratelimit"))
		}
	}
}
