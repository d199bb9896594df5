package lavalink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pool's Prometheus series. Labels are bounded: node names
// come from configuration, the rest are fixed sets.
type metrics struct {
	breakerState       *prometheus.GaugeVec
	breakerTransitions *prometheus.CounterVec
	nodeUp             *prometheus.GaugeVec
	resuming           *prometheus.GaugeVec
	loadScore          *prometheus.GaugeVec
	failures           *prometheus.CounterVec
	reconnects         *prometheus.CounterVec
	migrations         *prometheus.CounterVec
	migrationSeconds   prometheus.Histogram
	watchdog           *prometheus.CounterVec
	takeovers          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ensemble_lavalink_breaker_state",
			Help: "Circuit breaker state per Lavalink node: 0 closed, 1 half-open, 2 open.",
		}, []string{"node"}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_lavalink_breaker_transitions_total",
			Help: "Circuit breaker transitions per Lavalink node.",
		}, []string{"node", "from", "to"}),
		nodeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ensemble_lavalink_node_up",
			Help: "1 while this member's websocket to the Lavalink node is connected and alive.",
		}, []string{"node"}),
		resuming: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ensemble_lavalink_node_resuming",
			Help: "1 when session resuming is on for this member's session on the Lavalink node, 0 when the server cannot resume (a websocket loss then ends its players).",
		}, []string{"node"}),
		loadScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ensemble_lavalink_node_load_score",
			Help: "Load score used for node selection (lower is better).",
		}, []string{"node"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_lavalink_node_failures_total",
			Help: "Failures counted by the breaker, by node and kind.",
		}, []string{"node", "kind"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_lavalink_reconnects_total",
			Help: "Websocket reconnections by node and result (resumed, new_session, failed).",
		}, []string{"node", "result"}),
		migrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_lavalink_player_migrations_total",
			Help: "Players moved from one Lavalink node to another.",
		}, []string{"from", "to"}),
		migrationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ensemble_lavalink_migration_duration_seconds",
			Help:    "Time from a node's loss being signalled to the player playing on another node.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		watchdog: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_lavalink_watchdog_actions_total",
			Help: "Watchdog actions on stalled players: nudge, move, give_up.",
		}, []string{"action"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_lavalink_takeovers_total",
			Help: "Players of a previous session activation (another member's or a dead process's Lavalink session) taken over, by node and result: taken (read if it had a track, and destroyed), gone (already), failed.",
		}, []string{"node", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.breakerState, m.breakerTransitions, m.nodeUp, m.resuming, m.loadScore, m.failures,
		m.reconnects, m.migrations, m.migrationSeconds, m.watchdog, m.takeovers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("lavalink: register metrics: %w", err)
		}
	}
	return m, nil
}

// initNodes creates the per-node series at zero, so that rules and
// dashboards see a node's counters before its first event (an absent
// series makes sums and ratios over it empty, not zero).
func (m *metrics) initNodes(names []string) {
	for _, n := range names {
		// The kinds of escalate's callers and classify.
		for _, k := range []string{"connect", "websocket", "silent", "hung", "timeout", "transport", "rest_5xx"} {
			m.failures.WithLabelValues(n, k)
		}
		for _, r := range []string{"taken", "gone", "failed"} {
			m.takeovers.WithLabelValues(n, r)
		}
		for _, to := range names {
			if to != n {
				m.migrations.WithLabelValues(n, to)
			}
		}
	}
}
