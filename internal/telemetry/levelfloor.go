package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// WithMinLevel wraps h so records below min are dropped. Libraries that log
// routine events at INFO (protoactor logs every topology update) get a
// higher floor than the node's own logs.
func WithMinLevel(h slog.Handler, min slog.Leveler) slog.Handler {
	return levelFloor{h: h, min: min}
}

type levelFloor struct {
	h   slog.Handler
	min slog.Leveler
}

func (l levelFloor) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= l.min.Level() && l.h.Enabled(ctx, lvl)
}

func (l levelFloor) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }

func (l levelFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFloor{h: l.h.WithAttrs(attrs), min: l.min}
}

func (l levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h: l.h.WithGroup(name), min: l.min}
}

// PrintfLogger is a library's printf-style logger (go-redis's) writing to
// log at level, so the library's lines are structured like ours and go
// where ours go instead of to the standard logger.
type PrintfLogger struct {
	Log   *slog.Logger
	Level slog.Level
}

// Printf logs the formatted message.
func (p PrintfLogger) Printf(ctx context.Context, format string, v ...any) {
	p.Log.Log(ctx, p.Level, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
