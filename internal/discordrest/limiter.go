// Package discordrest makes disgo's REST client obey Discord's rate limits
// and ride out its front end's 5xx answers.
//
// disgo v0.19.6's own limiter ignores a 429 that carries no
// X-RateLimit-Bucket header, which is how Discord answers when the bot's
// global limit is hit: the client then retries at once, ten times, and
// every other route goes on as if nothing happened. It also keeps one
// bucket per interaction token and sweeps them every 10 s under one lock,
// which stalls every call for a moment under load. Limiter replaces it;
// retrier adds the retries of 5xx answers where a second try cannot do a
// thing twice.
package discordrest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/disgoorg/disgo/rest"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrRateLimited is returned (wrapped by disgo) when a call would have to
// wait for a rate limit past its context's deadline: it fails at once
// instead, so an interaction callback is never sent after Discord stopped
// taking it.
var ErrRateLimited = errors.New("rate limited past the call's deadline")

const (
	// maxRetries bounds disgo's retries of a 429; each waits for the limit
	// it hit (within the call's deadline).
	maxRetries = 3
	// defaultRetryAfter applies to a 429 that says nothing about its wait.
	defaultRetryAfter = time.Second
	// maxHold bounds any wait learned from headers: Discord's limits reset
	// within seconds, and a header claiming hours (a clock far off, a proxy
	// that makes things up) must not stop a route for that long.
	maxHold = time.Hour
	// sweepFloor is the bucket count from which a new bucket first makes
	// the limiter drop the expired ones.
	sweepFloor = 1024
)

// Limiter is a rest.RateLimiter. Requests of one bucket (route and major
// parameters, as Discord counts them) run one at a time; a bucket is kept
// only while it is in use or exhausted, so per-token buckets of
// interactions do not pile up. The global limit holds back every
// bot-authenticated request; interaction callbacks and webhook-token
// routes are exempt from it, as on Discord.
type Limiter struct {
	log     *slog.Logger
	limited *prometheus.CounterVec

	mu      sync.Mutex
	global  time.Time // no bot-authenticated request before this
	buckets map[string]*bucket
	sweepAt int
}

type bucket struct {
	// lock holds a token while a request of the bucket runs.
	lock chan struct{}
	// refs counts the holder and the waiters, under Limiter.mu: a bucket
	// without refs can go.
	refs int
	// remaining and reset are touched by the lock's holder only.
	remaining int // -1: unknown
	reset     time.Time
}

func (b *bucket) exhausted(now time.Time) bool { return b.remaining == 0 && b.reset.After(now) }

// NewLimiter makes a Limiter counting the 429s it sees by scope in
// ensemble_discord_rest_rate_limited_total.
func NewLimiter(log *slog.Logger, reg prometheus.Registerer) (*Limiter, error) {
	l := &Limiter{
		log: log,
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_discord_rest_rate_limited_total",
			Help: "Discord REST answers 429 by scope: user and shared (a route's limit), global (the bot's), cloudflare (the IP's).",
		}, []string{"scope"}),
		buckets: map[string]*bucket{},
		sweepAt: sweepFloor,
	}
	for _, s := range []string{"user", "shared", "global", "cloudflare"} {
		l.limited.WithLabelValues(s)
	}
	if err := reg.Register(l.limited); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return l, nil
}

func bucketKey(ep *rest.CompiledEndpoint) string {
	return ep.Endpoint.Method + " " + ep.Endpoint.Route + " " + ep.MajorParams
}

// MaxRetries is how often disgo retries a request answered 429.
func (l *Limiter) MaxRetries() int { return maxRetries }

// Close has nothing to wait for: requests hold no resource of the limiter
// past their return.
func (l *Limiter) Close(context.Context) {}

// Reset forgets every limit. Requests under way keep their buckets.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global = time.Time{}
	for k, b := range l.buckets {
		if b.refs == 0 {
			delete(l.buckets, k)
		}
	}
}

// Len is how many buckets the limiter keeps.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Wait takes the endpoint's bucket once it and, for a bot-authenticated
// route, the global limit allow a request. A wait that would end past the
// context's deadline fails at once with ErrRateLimited.
func (l *Limiter) Wait(ctx context.Context, ep *rest.CompiledEndpoint) error {
	key := bucketKey(ep)
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweepLocked(time.Now())
		}
		b = &bucket{lock: make(chan struct{}, 1), remaining: -1}
		l.buckets[key] = b
	}
	b.refs++
	l.mu.Unlock()

	select {
	case b.lock <- struct{}{}:
	case <-ctx.Done():
		l.release(key, b, false)
		return ctx.Err()
	}
	now := time.Now()
	var until time.Time
	if b.exhausted(now) {
		until = b.reset
	}
	if ep.Endpoint.BotAuth {
		l.mu.Lock()
		if l.global.After(until) {
			until = l.global
		}
		l.mu.Unlock()
	}
	if !until.After(now) {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && until.After(dl) {
		l.release(key, b, true)
		// Also a deadline exceeded, for callers that only know that one.
		return fmt.Errorf("%w (%w): %s %s for %s", ErrRateLimited, context.DeadlineExceeded, ep.Endpoint.Method, ep.Endpoint.Route, until.Sub(now).Round(time.Millisecond))
	}
	t := time.NewTimer(until.Sub(now))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.release(key, b, true)
		return ctx.Err()
	}
}

// Unlock learns the bucket's state from the response, if there is one,
// and lets the bucket's next request go.
func (l *Limiter) Unlock(ep *rest.CompiledEndpoint, rs *http.Response) error {
	key := bucketKey(ep)
	l.mu.Lock()
	b := l.buckets[key]
	l.mu.Unlock()
	if b == nil {
		return nil // not taken through Wait
	}
	if rs != nil {
		l.learn(ep, b, rs)
	}
	l.release(key, b, true)
	return nil
}

// release gives the bucket's lock back (if held) and drops the bucket
// when nobody uses it and it holds no limit worth remembering.
func (l *Limiter) release(key string, b *bucket, held bool) {
	keep := false
	if held {
		keep = b.exhausted(time.Now())
		<-b.lock
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b.refs--
	if b.refs == 0 && !keep && l.buckets[key] == b {
		delete(l.buckets, key)
	}
}

// sweepLocked drops exhausted buckets whose reset has passed; the next
// sweep comes when the map has doubled, so sweeps cost O(1) per bucket.
func (l *Limiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		// refs == 0: nobody holds the lock, so reset is safe to read.
		if b.refs == 0 && !b.reset.After(now) {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(sweepFloor, 2*len(l.buckets))
}

// learn updates the limits from Discord's headers. Missing or malformed
// headers leave them unknown rather than failing a call that succeeded.
func (l *Limiter) learn(ep *rest.CompiledEndpoint, b *bucket, rs *http.Response) {
	h := rs.Header
	now := time.Now()
	if rs.StatusCode != http.StatusTooManyRequests {
		b.remaining = -1
		if n, err := strconv.Atoi(h.Get("X-RateLimit-Remaining")); err == nil {
			b.remaining = n
		}
		if d, ok := seconds(h.Get("X-RateLimit-Reset-After")); ok {
			b.reset = now.Add(d)
		} else if f, err := strconv.ParseFloat(h.Get("X-RateLimit-Reset"), 64); err == nil && f > 0 && f < 1e11 {
			if at := time.UnixMilli(int64(f * 1000)); at.Before(now.Add(maxHold)) {
				b.reset = at
			}
		}
		return
	}
	wait, ok := seconds(h.Get("Retry-After"))
	if !ok {
		if wait, ok = seconds(h.Get("X-RateLimit-Reset-After")); !ok {
			wait = defaultRetryAfter
		}
	}
	until := now.Add(wait)
	scope := h.Get("X-RateLimit-Scope")
	switch {
	case h.Get("X-RateLimit-Global") != "" || scope == "global":
		scope = "global"
	case h.Get("Via") == "":
		// Not from Discord's API but from Cloudflare in front of it: a ban
		// of this IP, which holds back every route.
		scope = "cloudflare"
	case scope != "shared":
		scope = "user"
	}
	if scope == "global" || scope == "cloudflare" {
		l.mu.Lock()
		if until.After(l.global) {
			l.global = until
		}
		l.mu.Unlock()
	} else {
		b.remaining, b.reset = 0, until
	}
	l.limited.WithLabelValues(scope).Inc()
	// The route, never the URL: interaction routes carry the token.
	l.log.Warn("discord rate limit", "scope", scope, "method", ep.Endpoint.Method, "route", ep.Endpoint.Route, "retry_after", wait)
}

// seconds parses a header in seconds, whole or fractional.
func seconds(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= maxHold.Seconds()) { // NaN fails too
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}
