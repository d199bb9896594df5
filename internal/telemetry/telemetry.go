// Package telemetry sets up what every node reports through: one slog
// logger, one Prometheus registry, and an OpenTelemetry MeterProvider that
// feeds that registry (protoactor publishes its actor metrics through OTel).
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// NewLogger returns a logger writing format ("text" or "json") at level
// ("debug", "info", "warn", "error") to w.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
}

// Metrics is a node's metric plumbing.
type Metrics struct {
	// Registry is what /metrics serves.
	Registry *prometheus.Registry
	// MeterProvider exports OTel instruments into Registry.
	MeterProvider *sdkmetric.MeterProvider
}

// NewMetrics builds a registry with the Go and process collectors and an
// OTel MeterProvider exporting into it. It also installs the provider as
// OTel's global one: protoactor's actor metrics call otel.Meter directly, so
// passing the provider to the actor system alone is not enough.
func NewMetrics() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("otel prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	otel.SetMeterProvider(mp)
	return &Metrics{Registry: reg, MeterProvider: mp}, nil
}

// Shutdown flushes and stops the MeterProvider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	return m.MeterProvider.Shutdown(ctx)
}
