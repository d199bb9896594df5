package shard

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/disgoorg/snowflake/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// endedSpan waits until the exporter holds a span named name (spans are
// exported when they end, just after the answer the test saw).
func endedSpan(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q among %v", name, exp.GetSpans())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// errAfter waits for the span name to end, then reports ctx's error; an
// error of its own if the span never ends.
func errAfter(ctx context.Context, exp *tracetest.InMemoryExporter, name string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				return ctx.Err()
			}
		}
	}
	return errors.New("span " + name + " never ended")
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if a.Key == attribute.Key(key) {
			return a.Value.String()
		}
	}
	return ""
}

// TestRefusalsAreTraced: an interaction the shard refuses starts a trace
// of its own at its arrival; a busy answer after a failed delivery is a
// span of the interaction's trace.
func TestRefusalsAreTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	g, _, s := newTestGrain(t, 1, 2)
	g.deps.Tracer = tp.Tracer("test")
	g.deps.Guilds = func(context.Context, *clusterpb.Interaction) error { return errors.New("member unreachable") }
	// The busy answer's context must outlive the failed delivery's: with
	// a tracer it is the delivery's child, and the delivery ends (and
	// cancels its own context) before the answer is sent. The answer of
	// 921 is held until the delivery's span has ended, which is after
	// its cancel.
	answerErr := make(chan error, 1)
	g.deps.Refuse = func(ctx context.Context, id, _ string, _ clusterpb.InteractionKind, message string) error {
		if id == "921" {
			answerErr <- errAfter(ctx, exp, "interaction play")
		}
		s.refused <- refusal{id: id, message: message}
		return nil
	}
	guild, foreign := snowflake.ID(discordemu.SnowflakeForShard(1, 2)), snowflake.ID(discordemu.SnowflakeForShard(0, 2))
	text, alice := snowflake.ID(10), snowflake.ID(2000)
	g.handle(time.Now(), ready(1000, guild))

	at := time.Now().Add(-time.Millisecond)
	g.handle(at, interaction(t, interactionJSON(920, foreign, text, alice, "queue")))
	recv(t, s.refused)
	root := endedSpan(t, exp, "interaction refused")
	if !root.StartTime.Equal(at) || root.SpanKind != trace.SpanKindServer || root.Parent.IsValid() {
		t.Errorf("refusal span starts %v (want %v), kind %v, parent %v; want a server root span from the arrival",
			root.StartTime, at, root.SpanKind, root.Parent)
	}
	if attr(root, "ensemble.answer") != "refused" || attr(root, "ensemble.shard") != "1" {
		t.Errorf("refusal span attributes %v", root.Attributes)
	}

	g.handle(time.Now(), interaction(t, interactionJSON(921, guild, text, alice, "queue")))
	if r := recv(t, s.refused); r.id != "921" {
		t.Fatalf("refusal %+v; want 921 answered busy", r)
	}
	if err := recv(t, answerErr); err != nil {
		t.Errorf("the busy answer after a failed delivery was sent with a dead context: %v", err)
	}
	busy := endedSpan(t, exp, "answer busy")
	delivery := endedSpan(t, exp, "interaction play")
	if busy.Parent.SpanID() != delivery.SpanContext.SpanID() || busy.SpanContext.TraceID() != delivery.SpanContext.TraceID() {
		t.Errorf("busy answer span is not a child of the delivery's %q span", delivery.Name)
	}
	if delivery.Status.Code != codes.Error || attr(busy, "ensemble.answer") != "busy" {
		t.Errorf("delivery status %v, busy answer attributes %v", delivery.Status, busy.Attributes)
	}
}
