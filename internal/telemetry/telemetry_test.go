package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != "shown" {
		t.Fatalf("record %q: %v", lines[0], err)
	}

	buf.Reset()
	log, err = NewLogger(&buf, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("dbg")
	if !strings.Contains(buf.String(), "level=DEBUG msg=dbg") {
		t.Fatalf("text output %q", buf.String())
	}

	for _, bad := range [][2]string{{"xml", "info"}, {"text", "loud"}} {
		if _, err := NewLogger(&buf, bad[0], bad[1]); err == nil {
			t.Errorf("NewLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestMetricsBridgeOTelIntoRegistry(t *testing.T) {
	m, err := NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	// Through the global provider, as protoactor does.
	c, err := otel.Meter("bridge-test").Int64Counter("bridge_test_events")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			if metric.GetCounter() != nil {
				seen[f.GetName()] = metric.GetCounter().GetValue()
			}
		}
		if f.GetName() == "go_goroutines" {
			seen["go_goroutines"] = 1
		}
	}
	if seen["bridge_test_events_total"] != 3 {
		t.Errorf("bridged counter = %v (families %v)", seen["bridge_test_events_total"], seen)
	}
	if _, ok := seen["go_goroutines"]; !ok {
		t.Error("go collector missing")
	}
}

func TestWithMinLevel(t *testing.T) {
	var buf bytes.Buffer
	base, err := NewLogger(&buf, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(WithMinLevel(base.Handler(), slog.LevelWarn)).With("lib", "x").WithGroup("g")
	log.Info("dropped")
	log.Warn("kept", "k", 1)
	out := buf.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, "kept") || !strings.Contains(out, "lib=x") || !strings.Contains(out, "g.k=1") {
		t.Fatalf("output %q", out)
	}
}

// TestPrintfLoggerWritesThroughSlog: a library's printf line becomes one
// structured record at the given level, with the logger's attributes.
func TestPrintfLoggerWritesThroughSlog(t *testing.T) {
	var b strings.Builder
	log, err := NewLogger(&b, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	p := PrintfLogger{Log: log.With("lib", "go-redis"), Level: slog.LevelWarn}
	p.Printf(context.Background(), "redis: %s: connection pool: failed to dial after %d attempts\n", "pool.go:123", 5)
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", b.String(), err)
	}
	if rec["level"] != "WARN" || rec["lib"] != "go-redis" || rec["msg"] != "redis: pool.go:123: connection pool: failed to dial after 5 attempts" {
		t.Fatalf("record %v", rec)
	}
}
