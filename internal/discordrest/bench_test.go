package discordrest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/disgoorg/disgo/rest"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkLimiter: one Wait and Unlock per interaction callback, each on
// a bucket of its own (the token is a major parameter), against disgo's
// own limiter in the same run. disgo's sweeps its buckets every 10 s
// under one lock, so the benchmark holds ~10 s of calls (-benchtime 10s)
// to include a sweep.
func BenchmarkLimiter(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ours, err := NewLimiter(quiet, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		l    rest.RateLimiter
	}{
		{"disgo", rest.NewRateLimiter(rest.WithRateLimiterLogger(quiet))},
		{"discordrest", ours},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n atomic.Int64
			ok := &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}}
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := strconv.FormatInt(n.Add(1), 10)
					ep := rest.CreateInteractionResponse.Compile(nil, id, "token-"+id)
					if err := bc.l.Wait(ctx, ep); err != nil {
						b.Fatal(err)
					}
					if err := bc.l.Unlock(ep, ok); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
