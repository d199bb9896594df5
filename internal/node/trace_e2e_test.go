//go:build !race

package node

import (
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// TestInteractionTrace: one trace per interaction, from the shard through
// the guild grain to the session grain and its Lavalink call, and to the
// Discord REST calls that answer it; a line logged inside it carries its
// trace and span IDs. An autocomplete's search and answer are traced too.
func TestInteractionTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	w := newWorld(t, worldOpts{tracer: tp})
	w.join(w.listener, w.voice)
	// /play is deferred at once, and the deferral fails every try: its WARN
	// is logged inside the trace.
	w.discord.FailNext(discordemu.ServerError{Method: "POST", Path: "/interactions/{id}/{token}/callback", Status: http.StatusServiceUnavailable, Count: 4})
	mustInvoke(t, w.discord, w.guild, w.listener, w.text, "play", discordemu.StringOption("query", "lofi beats"))
	w.player(playing("lofi beats"))

	byName := map[string]tracetest.SpanStub{}
	waitFor(t, "the interaction's spans", func() bool {
		byName = map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			byName[s.Name] = s
		}
		for _, n := range []string{"interaction play", "guild play", "session play", "session audio", "discord defer interaction"} {
			if _, ok := byName[n]; !ok {
				return false
			}
		}
		return true
	})
	parentOf := map[string]string{
		"guild play":                "interaction play",
		"session play":              "guild play",
		"session audio":             "session play",
		"discord defer interaction": "guild play",
	}
	trace := byName["interaction play"].SpanContext.TraceID()
	for child, parent := range parentOf {
		c, p := byName[child], byName[parent]
		if c.SpanContext.TraceID() != trace || c.Parent.SpanID() != p.SpanContext.SpanID() {
			t.Errorf("%q is not a child of %q in trace %s", child, parent, trace)
		}
	}
	if !byName["interaction play"].StartTime.Before(byName["guild play"].StartTime.Add(time.Nanosecond)) {
		t.Error("the trace does not start when the shard received the interaction")
	}
	answer := byName["discord defer interaction"]
	want := "trace_id=" + trace.String() + " span_id=" + answer.SpanContext.SpanID().String()
	waitFor(t, "the failed answer's log line", func() bool { return strings.Contains(w.logs.String(), want) })

	// Autocomplete: the search and the answer under the guild's span.
	if _, err := w.discord.Autocomplete(w.guild, w.listener, w.text, "play", discordemu.FocusedOption("query", "lofi")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the autocomplete's spans", func() bool {
		byID := map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			byID[s.SpanContext.SpanID().String()] = s
		}
		var ok [3]bool
		for _, s := range exp.GetSpans() {
			parent := byID[s.Parent.SpanID().String()]
			switch {
			case s.Name == "guild autocomplete" && parent.Name == "interaction play" && parent.SpanContext.TraceID() == s.SpanContext.TraceID():
				ok[0] = true
			case s.Name == "lavalink search" && parent.Name == "guild autocomplete":
				ok[1] = true
			case s.Name == "discord autocomplete" && parent.Name == "guild autocomplete":
				ok[2] = true
			}
		}
		return ok == [3]bool{true, true, true}
	})
}
