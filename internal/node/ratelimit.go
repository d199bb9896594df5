package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/ratelimit"
)

// limiterTimeout bounds one rate-limit call to Redis: a command waits on
// it (in its delivery, never in a grain), and past it the in-memory
// fallback decides.
const limiterTimeout = 250 * time.Millisecond

// newLimiter is the command rate limiter cluster.yaml asks for: in Redis
// with the redis store, on a client of its own (short timeouts, no
// retries: a failure goes to the fallback, not to a second wait), in
// memory with bbolt. release closes the client.
func newLimiter(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (l *ratelimit.Limiter, release func(), err error) {
	rc := ratelimit.Config{
		User:       ratelimit.Rule{Limit: cfg.Limits.UserCommands, Window: cfg.Limits.RateWindow},
		Guild:      ratelimit.Rule{Limit: cfg.Limits.GuildCommands, Window: cfg.Limits.RateWindow},
		Timeout:    limiterTimeout,
		Registerer: reg,
		Log:        log.With("component", "ratelimit"),
	}
	release = func() {}
	if cfg.Store.Kind == config.StoreRedis {
		c := redis.NewClient(&redis.Options{
			Addr:         cfg.Store.Redis.Addr,
			DB:           cfg.Store.Redis.DB,
			Password:     cfg.Store.Redis.Password.Reveal(),
			DialTimeout:  limiterTimeout,
			ReadTimeout:  limiterTimeout,
			WriteTimeout: limiterTimeout,
			MaxRetries:   -1,
		})
		rc.Redis, release = c, func() { _ = c.Close() }
	}
	if l, err = ratelimit.New(rc); err != nil {
		release()
		return nil, nil, err
	}
	return l, release, nil
}

// limited counts an interaction against the rate limits and, past them,
// answers it (ephemeral, with the wait) and reports true. Autocompletes
// are not commands (one per keystroke), and a replayed interaction was
// counted by the member that first received it.
func limited(ctx context.Context, l *ratelimit.Limiter, r replier, log *slog.Logger, in *clusterpb.Interaction) bool {
	if in.GetKind() == clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE || in.GetReplayed() {
		return false
	}
	d := l.Allow(ctx, in.GetGuildId(), in.GetInvoker().GetUserId())
	if d.Allowed {
		return false
	}
	msg := commands.RateLimitedMessage(d.Scope == ratelimit.ScopeGuild, d.RetryAfter)
	if err := r.Refuse(ctx, in.GetId(), in.GetToken(), in.GetKind(), msg); err != nil {
		log.Warn("answer a rate-limited interaction", "err", err, "interaction", in.GetId(), "scope", string(d.Scope))
	}
	return true
}
