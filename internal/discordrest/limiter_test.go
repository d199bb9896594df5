package discordrest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/snowflake/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// harness is disgo's REST client as New makes it, against the Discord
// emulator: the 429s and 5xx below are the emulator's, with Discord's
// headers and bodies.
type harness struct {
	emu     *discordemu.Emulator
	rest    rest.Rest
	limiter *Limiter
	reg     *prometheus.Registry
	channel snowflake.ID
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	emu, err := discordemu.Start(context.Background(), discordemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	text := discordemu.NewSnowflake()
	if err := emu.AddGuild(discordemu.Guild{ID: discordemu.SnowflakeForShard(0, 1), Name: "g",
		Channels: []discordemu.Channel{{ID: text, Name: "general", Type: discordemu.ChannelText}}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, l, err := New(emu.Token(), quiet, reg, rest.WithURL(emu.RESTURL()), rest.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{emu: emu, rest: r, limiter: l, reg: reg, channel: snowflake.ID(text)}
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) requests(method, pattern string) []discordemu.RecordedRequest {
	return h.emu.Recorder().RequestsMatching(method, pattern)
}

func (h *harness) waitRequests(t *testing.T, method, pattern string, n int) []discordemu.RecordedRequest {
	t.Helper()
	rs, err := h.emu.WaitRequests(within(t, 20*time.Second), method, pattern, n)
	if err != nil {
		t.Fatalf("%d %s %s requests: %v (have %d)", n, method, pattern, err, len(h.requests(method, pattern)))
	}
	return rs
}

// counter reads a counter from the registry, -1 when it is not there.
func (h *harness) counter(name, scope string) float64 {
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if scope == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == scope {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func (h *harness) limited(scope string) float64 {
	return h.counter("ensemble_discord_rest_rate_limited_total", scope)
}

// TestGlobalLimitHoldsBotRoutesOnly: Discord's global 429 has no bucket
// header (disgo's own limiter ignores it and retries at once). The retry
// waits for Retry-After; meanwhile another bot route that cannot wait that
// long fails at once without reaching Discord, and an interaction
// callback, exempt from the global limit, goes through.
func TestGlobalLimitHoldsBotRoutesOnly(t *testing.T) {
	h := newHarness(t)
	// Retry-After 5 s against calls that can wait 1 s (or 4 s): a busy
	// machine has seconds of slack before the checks below could blur.
	h.emu.RateLimitNext(discordemu.RateLimit{Method: "GET", Path: "/users/@me", Global: true, RetryAfter: 5 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := h.rest.GetCurrentUser("", rest.WithCtx(within(t, 30*time.Second)))
		done <- err
	}()
	first := h.waitRequests(t, "GET", "/users/@me", 1)[0]
	if first.Status != http.StatusTooManyRequests || first.Header.Get("X-RateLimit-Bucket") != "" {
		t.Fatalf("first answer %d", first.Status)
	}
	// The limit is known once the 429 is read; the counter says when.
	for h.limited("global") == 0 {
		select {
		case err := <-done:
			t.Fatalf("the call returned before its retry: %v", err)
		case <-time.After(time.Millisecond):
		}
	}

	_, err := h.rest.GetGatewayBot(rest.WithCtx(within(t, time.Second)))
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a bot route under the global limit: %v, want ErrRateLimited", err)
	}
	if n := len(h.requests("GET", "/gateway/bot")); n != 0 {
		t.Fatalf("%d requests reached Discord under the global limit", n)
	}
	// Held by the global limit, it would fail at once (its deadline is
	// before the limit's end).
	err = h.rest.CreateInteractionResponse(1, "token", discord.InteractionResponse{Type: discord.InteractionResponseTypeDeferredCreateMessage},
		rest.WithCtx(within(t, 4*time.Second)))
	var re *rest.Error
	if !errors.As(err, &re) || re.Code != rest.JSONErrorCodeUnknownInteraction {
		t.Fatalf("callback under the global limit: %v, want Discord's unknown interaction", err)
	}

	if err := <-done; err != nil {
		t.Fatalf("the limited call: %v", err)
	}
	rs := h.requests("GET", "/users/@me")
	if len(rs) != 2 || rs[1].Status != http.StatusOK {
		t.Fatalf("%d requests to /users/@me", len(rs))
	}
	if gap := rs[1].At.Sub(rs[0].At); gap < 5*time.Second {
		t.Fatalf("retried %v after a global 429 with Retry-After 5", gap)
	}
	if h.limited("global") != 1 || h.limited("user") != 0 {
		t.Fatalf("counted global %v, user %v", h.limited("global"), h.limited("user"))
	}
}

// TestRouteLimitHoldsItsBucketOnly: a per-route 429 holds that route for
// that channel; the same route in another channel goes on, and a call
// that cannot wait for the reset fails at once.
func TestRouteLimitHoldsItsBucketOnly(t *testing.T) {
	h := newHarness(t)
	other := discordemu.NewSnowflake()
	if err := h.emu.AddGuild(discordemu.Guild{ID: discordemu.SnowflakeForShard(0, 1) + 1, Name: "g2",
		Channels: []discordemu.Channel{{ID: other, Name: "general", Type: discordemu.ChannelText}}}); err != nil {
		t.Fatal(err)
	}
	path := "/channels/" + h.channel.String() + "/messages"
	h.emu.RateLimitNext(discordemu.RateLimit{Method: "POST", Path: path, RetryAfter: 2 * time.Second})
	msg := discord.MessageCreate{Content: "hello"}
	if _, err := h.rest.CreateMessage(h.channel, msg, rest.WithCtx(within(t, 30*time.Second))); err != nil {
		t.Fatal(err)
	}
	rs := h.requests("POST", path)
	if len(rs) != 2 || rs[0].Status != http.StatusTooManyRequests || rs[1].Status != http.StatusOK {
		t.Fatalf("requests %+v", rs)
	}
	if gap := rs[1].At.Sub(rs[0].At); gap < 1500*time.Millisecond {
		t.Fatalf("retried %v after a 429 with Reset-After 2", gap)
	}
	if h.limited("user") != 1 {
		t.Fatalf("counted user %v", h.limited("user"))
	}

	h.emu.RateLimitNext(discordemu.RateLimit{Method: "POST", Path: path, RetryAfter: 5 * time.Second})
	_, err := h.rest.CreateMessage(h.channel, msg, rest.WithCtx(within(t, time.Second)))
	if !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "/channels/{channel.id}/messages") {
		t.Fatalf("a call that cannot wait for the reset: %v", err)
	}
	if n := len(h.requests("POST", path)); n != 3 {
		t.Fatalf("%d requests, want the 429 and no retry", n)
	}
	if _, err := h.rest.CreateMessage(snowflake.ID(other), msg, rest.WithCtx(within(t, 10*time.Second))); err != nil {
		t.Fatalf("another channel: %v", err)
	}
	if h.limiter.Len() != 1 {
		t.Fatalf("%d buckets kept, want the exhausted one", h.limiter.Len())
	}
}

// TestBucketsDoNotPileUp: one bucket per interaction token would grow
// with every interaction; buckets without a limit in force are dropped.
func TestBucketsDoNotPileUp(t *testing.T) {
	h := newHarness(t)
	app := snowflake.ID(h.emu.AppID())
	for i := range 200 {
		_, _ = h.rest.UpdateInteractionResponse(app, "token-"+strings.Repeat("x", i%7)+string(rune('a'+i%26)), discord.MessageUpdate{},
			rest.WithCtx(within(t, 10*time.Second)))
	}
	if n := len(h.requests("PATCH", "/webhooks/*/*/messages/@original")); n != 200 {
		t.Fatalf("%d requests", n)
	}
	if h.limiter.Len() != 0 {
		t.Fatalf("%d buckets kept after 200 calls without a limit", h.limiter.Len())
	}
}

// TestServerErrorsRetriedWhereSafe: 5xx answers are retried with backoff
// for calls a second try cannot do twice, and only for those.
func TestServerErrorsRetriedWhereSafe(t *testing.T) {
	h := newHarness(t)
	retries := func() float64 { return h.counter("ensemble_discord_rest_retries_total", "") }
	ctx := within(t, 30*time.Second)

	h.emu.FailNext(discordemu.ServerError{Method: "GET", Path: "/users/@me", Status: 503, Count: 2})
	if _, err := h.rest.GetCurrentUser("", rest.WithCtx(ctx)); err != nil {
		t.Fatalf("a read after two 503s: %v", err)
	}
	if n := len(h.requests("GET", "/users/@me")); n != 3 || retries() != 2 {
		t.Fatalf("%d requests, %v retries; want 3, 2", n, retries())
	}

	h.emu.FailNext(discordemu.ServerError{Method: "GET", Path: "/users/@me", Status: 500, Count: 10})
	_, err := h.rest.GetCurrentUser("", rest.WithCtx(ctx))
	var re *rest.Error
	if !errors.As(err, &re) || re.Response.StatusCode != 500 {
		t.Fatalf("a read after four 500s: %v", err)
	}
	if n := len(h.requests("GET", "/users/@me")); n != 3+4 {
		t.Fatalf("%d requests, want 3 tries more", n-3)
	}

	// A channel message whose answer was lost: sent again with its
	// enforced nonce, it exists once.
	path := "/channels/" + h.channel.String() + "/messages"
	h.emu.FailNext(discordemu.ServerError{Method: "POST", Path: path, AfterHandling: true})
	m, err := h.rest.CreateMessage(h.channel, discord.MessageCreate{Content: "now playing", Nonce: "np-1", EnforceNonce: true}, rest.WithCtx(ctx))
	if err != nil || m.Content != "now playing" {
		t.Fatalf("a message whose answer was a 502: %v", err)
	}
	if got := h.emu.Messages(discordemu.Snowflake(h.channel)); len(got) != 1 {
		t.Fatalf("%d messages in the channel, want 1", len(got))
	}
	// Without a nonce it is not sent again.
	h.emu.FailNext(discordemu.ServerError{Method: "POST", Path: path, AfterHandling: true})
	if _, err := h.rest.CreateMessage(h.channel, discord.MessageCreate{Content: "x"}, rest.WithCtx(ctx)); !errors.As(err, &re) || re.Response.StatusCode != 502 {
		t.Fatalf("a message without a nonce after a 502: %v", err)
	}
	if n := len(h.requests("POST", path)); n != 3 {
		t.Fatalf("%d message posts, want 3 (one retried once, one not retried)", n)
	}

	// A follow-up cannot be deduplicated: not retried.
	app := snowflake.ID(h.emu.AppID())
	h.emu.FailNext(discordemu.ServerError{Method: "POST", Path: "/webhooks/{app}/{token}"})
	before := len(h.requests("POST", "/webhooks/*/*"))
	_, err = h.rest.CreateFollowupMessage(app, "tok", discord.MessageCreate{Content: "x"}, rest.WithCtx(ctx))
	if !errors.As(err, &re) || re.Response.StatusCode != 502 || len(h.requests("POST", "/webhooks/*/*")) != before+1 {
		t.Fatalf("follow-up after a 502: %v", err)
	}
}

// TestRetryStopsAtTheDeadline: the backoff waits under the call's
// context (here a backoff of an hour against a deadline of seconds); the
// error keeps the 5xx for callers that inspect it.
func TestRetryStopsAtTheDeadline(t *testing.T) {
	h := newHarness(t)
	h.emu.FailNext(discordemu.ServerError{Method: "GET", Path: "/users/@me", Status: 503, Count: 10})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	slow := rest.New(&retrier{
		Client:  rest.NewClient(h.emu.Token(), rest.WithURL(h.emu.RESTURL()), rest.WithLogger(quiet), rest.WithRateLimiter(h.limiter)),
		backoff: supervisor.Backoff{Base: time.Hour, Max: time.Hour, Limit: 3},
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "retries"}),
	})
	_, err := slow.GetCurrentUser("", rest.WithCtx(within(t, 5*time.Second)))
	var re *rest.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &re) || re.Response.StatusCode != 503 {
		t.Fatalf("retries past the deadline: %v", err)
	}
	if n := len(h.requests("GET", "/users/@me")); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}
