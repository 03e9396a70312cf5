package devserver

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// minServerLogLevel drops the server's informational chatter (service
// start/stop, membership, shard ownership, ...) which is useless during
// development and drowns the product's own logs.
const minServerLogLevel = slog.LevelWarn

// slogLogger adapts an *slog.Logger to the server's log.Logger interface.
type slogLogger struct {
	l *slog.Logger
	// muted is set when the server is being stopped: shutting down makes
	// every service log a burst of "context canceled" and "connection
	// refused" errors that mean nothing.
	muted *atomic.Bool
}

var _ log.Logger = slogLogger{}

// newServerLogger returns the logger handed to the Temporal server: a no-op
// logger when l is nil, otherwise l restricted to warnings and errors and
// silenced once muted is set.
func newServerLogger(l *slog.Logger, muted *atomic.Bool) log.Logger {
	if l == nil {
		return log.NewNoopLogger()
	}
	return slogLogger{l: l.With("component", "temporal-server"), muted: muted}
}

func (s slogLogger) Debug(msg string, tags ...tag.Tag) { s.log(slog.LevelDebug, msg, tags) }
func (s slogLogger) Info(msg string, tags ...tag.Tag)  { s.log(slog.LevelInfo, msg, tags) }
func (s slogLogger) Warn(msg string, tags ...tag.Tag)  { s.log(slog.LevelWarn, msg, tags) }
func (s slogLogger) Error(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }

// DPanic, Panic and Fatal are logged as errors: an embedded server must never
// panic or exit the host process because of a log call.
func (s slogLogger) DPanic(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }
func (s slogLogger) Panic(msg string, tags ...tag.Tag)  { s.log(slog.LevelError, msg, tags) }
func (s slogLogger) Fatal(msg string, tags ...tag.Tag)  { s.log(slog.LevelError, msg, tags) }

func (s slogLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if level < minServerLogLevel || s.muted.Load() || !s.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	s.l.LogAttrs(ctx, level, msg, attrs...)
}
