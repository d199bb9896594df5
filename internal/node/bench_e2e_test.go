//go:build !race

package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// BenchmarkAck measures how long a user waits for the bot's first answer
// (the emulator's Response.Latency: from INTERACTION_CREATE written to the
// bot's socket to the callback arriving), for /play (a Lavalink search and
// a stored queue change) and, as the same-run baseline, /queue (answered
// from the session's memory). Run:
//
//	go test -run '^$' -bench Ack -benchtime 300x ./internal/node
func BenchmarkAck(b *testing.B) {
	for _, cmd := range []string{"play", "queue"} {
		b.Run(cmd, func(b *testing.B) {
			w := newWorld(b, worldOpts{queueMax: 10000})
			w.join(w.listener, w.voice)
			w.run(w.listener, "play", discordemu.StringOption("query", "warm up"))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var r reply
				if cmd == "play" {
					r = w.run(w.listener, "play", discordemu.StringOption("query", fmt.Sprintf("song %d", i)))
				} else {
					r = w.run(w.listener, "queue")
				}
				if r.deferred {
					b.Fatalf("/%s deferred", cmd)
				}
				lat = append(lat, r.latency)
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}
