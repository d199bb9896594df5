package discordrest

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/disgoorg/disgo/rest"
	"github.com/prometheus/client_golang/prometheus"
)

// FuzzRateLimitHeaders: whatever Discord (or a proxy in front of it) puts
// in the rate-limit headers, learning from them never panics and never
// holds a route or the bot for more than maxHold.
func FuzzRateLimitHeaders(f *testing.F) {
	f.Add(429, "2", "", "", "", "", "user", "1.1 google")
	f.Add(429, "65", "", "", "", "true", "global", "1.1 google")
	f.Add(200, "", "1.5", "0", "1712345678.123", "", "", "1.1 google")
	f.Add(429, "", "", "", "", "", "", "")
	f.Add(429, "1e308", "NaN", "-1", "-Inf", "x", "shared", "v")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := NewLimiter(quiet, prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	ep := rest.CreateMessage.Compile(nil, "1")
	f.Fuzz(func(t *testing.T, status int, retryAfter, resetAfter, remaining, reset, global, scope, via string) {
		h := http.Header{}
		for k, v := range map[string]string{"Retry-After": retryAfter, "X-RateLimit-Reset-After": resetAfter,
			"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset, "X-RateLimit-Global": global,
			"X-RateLimit-Scope": scope, "Via": via} {
			if v != "" {
				h.Set(k, v)
			}
		}
		b := &bucket{remaining: -1}
		l.mu.Lock()
		l.global = time.Time{}
		l.mu.Unlock()
		before := time.Now()
		l.learn(ep, b, &http.Response{StatusCode: status, Header: h})
		limit := time.Now().Add(maxHold + time.Second)
		if b.exhausted(before) && b.reset.After(limit) {
			t.Fatalf("a route held until %v", b.reset)
		}
		l.mu.Lock()
		g := l.global
		l.mu.Unlock()
		if g.After(limit) {
			t.Fatalf("the bot held until %v", g)
		}
	})
}
