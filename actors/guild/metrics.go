package guild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// How an interaction was first answered (ensemble_interaction_acks_total).
const (
	ackNone     = "never"    // no answer reached Discord
	ackDirect   = "direct"   // the reply itself, within the budget
	ackDeferred = "deferred" // "thinking…", the reply edited in later
	ackLate     = "late"     // refused by Discord, or not sent: past its 3 s
	ackFailed   = "failed"   // another error
)

// What the user finally got (the outcome label of
// ensemble_command_duration_seconds).
const (
	outcomeOK      = "ok"      // the command's answer
	outcomeError   = "error"   // an error reply (bad input, refusal, failure)
	outcomeBusy    = "busy"    // "busy, try again"
	outcomeExpired = "expired" // no reply before the token expired
	outcomeFailed  = "failed"  // the reply could not be sent
)

// Metrics are what every guild grain of a member counts. Labels are
// bounded: command names from the command table, fixed outcome sets.
type Metrics struct {
	commandSeconds *prometheus.HistogramVec
	acks           *prometheus.CounterVec
	activations    prometheus.Gauge
}

// NewMetrics registers the guild grains' series.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		commandSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ensemble_command_duration_seconds",
			Help:    "From the interaction's arrival at the shard to its final reply sent, by command and outcome (ok, error, busy, expired, failed).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5, 10, 30},
		}, []string{"command", "outcome"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ensemble_interaction_acks_total",
			Help: "How interactions were first answered: direct, deferred, late (past Discord's 3 s), failed, never.",
		}, []string{"result"}),
		activations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ensemble_guild_activations",
			Help: "Guild grains active on this member.",
		}),
	}
	for _, r := range []string{ackNone, ackDirect, ackDeferred, ackLate, ackFailed} {
		m.acks.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.commandSeconds, m.acks, m.activations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// answered records one interaction's end. A nil Metrics records nothing.
func (m *Metrics) answered(s answerSpec, ack, outcome string) {
	if m == nil {
		return
	}
	m.acks.WithLabelValues(ack).Inc()
	m.commandSeconds.WithLabelValues(s.command, outcome).Observe(time.Since(s.received).Seconds())
}

func (m *Metrics) activated(delta float64) {
	if m != nil {
		m.activations.Add(delta)
	}
}

// commandLabel is a command's name if the table knows it: what users type
// is never a label.
func commandLabel(name string) string {
	if _, ok := commands.Lookup(name); ok {
		return name
	}
	return "other"
}

// ackResult is how an acknowledgement of the given kind ended.
func ackResult(kind string, err error) string {
	switch {
	case err == nil:
		return kind
	case errors.Is(err, commands.ErrUnknownInteraction), errors.Is(err, context.DeadlineExceeded):
		return ackLate
	default:
		return ackFailed
	}
}

func outcomeOf(r *clusterpb.Reply) string {
	switch c := r.GetContent(); {
	case commands.IsBusy(c):
		return outcomeBusy
	case commands.IsError(r):
		return outcomeError
	default:
		return outcomeOK
	}
}
