package session

import (
	"context"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

func TestSourceLabelIsBounded(t *testing.T) {
	for _, tc := range []struct{ source, want string }{
		{"youtube", "youtube"},
		{"YouTube", "youtube"},
		{"SoundCloud", "soundcloud"},
		{"http", "http"},
		{"applemusic", "applemusic"},
		// Lavalink plugins name sources of their own; each would be a
		// new series.
		{"jiosaavn", "other"},
		{"", "other"},
		{"other", "other"},
	} {
		if got := sourceLabel(tc.source); got != tc.want {
			t.Errorf("sourceLabel(%q) = %q, want %q", tc.source, got, tc.want)
		}
	}
}

// gathered is the value of the series name{label=value} in reg (a
// histogram's sample count), and whether it exists.
func gathered(t *testing.T, reg *prometheus.Registry, name, label, value string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() != value {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// TestMetricsAndTraces: what a member's operators see of its sessions
// (one cluster member for both: each costs a second to start).
//
//   - Metrics: every source's counter exists at zero before its first
//     track; a started track counts under its source with the queue behind
//     it; the activations gauge follows the sessions active on the member.
//     A second registration of the same series fails.
//   - Traces: a command that comes with a traceparent (the guild grain's
//     span) gets a span of its own under it, and the effects it starts
//     (the search, the join) are spans under the command's. A command
//     without one, and the session's own work, make no spans.
func TestMetricsAndTraces(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("the sessions' series registered twice")
	}
	for _, s := range sources {
		if v, ok := gathered(t, reg, "ensemble_songs_started_total", "source", s); !ok || v != 0 {
			t.Fatalf("songs started from %s: %v (present %v), want 0 before any track", s, v, ok)
		}
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := newHarness(t, func(d *Deps) { d.Metrics, d.Tracer = m, tp.Tracer("session-test") })

	h.exec("queue") // untraced
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		guildSp = "00f067aa0ba902b7"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = ecluster.Call(ctx, 3, func(o ...pcluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		return h.client().Execute(&clusterpb.SessionRequest{
			GuildId: testGuild, Command: "play", Options: []*clusterpb.Option{opt("query", "counted playlist")}, TextChannelId: "222",
			RequestId: "traced-1", Traceparent: "00-" + traceID + "-" + guildSp + "-01",
			Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"},
		}, o...)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("playing", func() bool { _, n := h.audio.lastPlay(); return n == 1 })

	if v, _ := gathered(t, reg, "ensemble_songs_started_total", "source", "youtube"); v != 1 {
		t.Fatalf("youtube songs started: %v, want 1", v)
	}
	if v, _ := gathered(t, reg, "ensemble_songs_started_total", "source", "other"); v != 0 {
		t.Fatalf("other songs started: %v, want 0", v)
	}
	if v, _ := gathered(t, reg, "ensemble_queue_length", "", ""); v != 1 {
		t.Fatalf("queue lengths observed: %v, want 1", v)
	}
	if v, _ := gathered(t, reg, "ensemble_session_activations", "", ""); v != 1 {
		t.Fatalf("activations: %v, want 1", v)
	}

	byName := func() map[string][]sdktrace.ReadOnlySpan {
		out := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			out[s.Name()] = append(out[s.Name()], s)
		}
		return out
	}
	// An effect's span ends after its result reached the grain.
	h.waitFor("the command's spans", func() bool {
		s := byName()
		return len(s["session play"]) == 1 && len(s["session search"]) == 1 && len(s["session gateway"]) == 1
	})
	spans := byName()
	if n := len(spans["session queue"]); n != 0 {
		t.Fatalf("an untraced command made %d spans", n)
	}
	cmd := spans["session play"][0]
	if cmd.SpanContext().TraceID().String() != traceID || cmd.Parent().SpanID().String() != guildSp || !cmd.Parent().IsRemote() {
		t.Fatalf("command span in trace %s under %s (remote %v), want trace %s under the guild's span %s",
			cmd.SpanContext().TraceID(), cmd.Parent().SpanID(), cmd.Parent().IsRemote(), traceID, guildSp)
	}
	// The search and the join; the store write and the play, unless one
	// of the session's own (untraced) writes or plays took them along.
	for _, s := range rec.Ended() {
		if s.Name() == "session play" {
			continue
		}
		if s.SpanContext().TraceID() != cmd.SpanContext().TraceID() || s.Parent().SpanID() != cmd.SpanContext().SpanID() {
			t.Fatalf("%s span in trace %s under %s, want the command's %s",
				s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID(), cmd.SpanContext().SpanID())
		}
	}

	h.exec("skip")
	if v, _ := gathered(t, reg, "ensemble_songs_started_total", "source", "youtube"); v != 2 {
		t.Fatalf("youtube songs started after a skip: %v, want 2", v)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if n, err := StopLocal(stopCtx, h.member.System); n != 1 || err != nil {
		t.Fatalf("StopLocal: %d, %v", n, err)
	}
	if v, _ := gathered(t, reg, "ensemble_session_activations", "", ""); v != 0 {
		t.Fatalf("activations after the stop: %v, want 0", v)
	}
}
