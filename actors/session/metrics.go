package session

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are what every session of a member counts. Labels are bounded:
// a track's source is one of a fixed set.
type Metrics struct {
	songs       *prometheus.CounterVec
	queueLength prometheus.Histogram
	activations prometheus.Gauge
	takeovers   prometheus.Histogram
}

// sources are the source labels; Lavalink plugins name others, counted as
// "other".
var sources = []string{"youtube", "soundcloud", "bandcamp", "twitch", "vimeo", "http", "spotify", "applemusic", "deezer", "other"}

// NewMetrics registers the sessions' series.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		songs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_songs_started_total",
			Help: "Tracks that became a session's current track, by source (as Lavalink names it).",
		}, []string{"source"}),
		queueLength: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ensemble_queue_length",
			Help:    "Tracks left in the queue each time a track starts.",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		activations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ensemble_session_activations",
			Help: "Session grains active on this member.",
		}),
		takeovers: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ensemble_session_failover_seconds",
			Help:    "Sessions restored here while a previous activation's player still held them (its member died, left or handed over): time from the activation to the player playing here. The membership's detection time (etcd_lease_ttl) comes before it.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 30},
		}),
	}
	for _, s := range sources {
		m.songs.WithLabelValues(s)
	}
	for _, c := range []prometheus.Collector{m.songs, m.queueLength, m.activations, m.takeovers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// started counts a track that became current, with the queue behind it.
func (m *Metrics) started(source string, queued int) {
	if m == nil {
		return
	}
	m.songs.WithLabelValues(sourceLabel(source)).Inc()
	m.queueLength.Observe(float64(queued))
}

// tookOver counts a session that plays here after a failover, and how long
// it took from its activation.
func (m *Metrics) tookOver(d time.Duration) {
	if m != nil {
		m.takeovers.Observe(d.Seconds())
	}
}

func (m *Metrics) activated(delta float64) {
	if m != nil {
		m.activations.Add(delta)
	}
}

func sourceLabel(s string) string {
	s = strings.ToLower(s)
	for _, known := range sources {
		if s == known {
			return s
		}
	}
	return "other"
}
