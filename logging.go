package elector

import (
	"context"

	"github.com/go-logr/logr"
)

// cgCtxFor returns ctx with the logger for client-go: client-go logs through
// the context's logger, and its lines repeat ours, so they come one
// verbosity level lower.
func cgCtxFor(ctx context.Context, log logr.Logger) context.Context {
	if log.GetSink() == nil {
		return logr.NewContext(ctx, logr.Discard())
	}
	return logr.NewContext(ctx, logr.New(quietSink{log.GetSink()}))
}

// quietSink passes client-go's log lines on one verbosity level lower, and its
// error lines as V(1) info: the Elector logs the same events itself, once per
// change rather than once per retry.
type quietSink struct{ logr.LogSink }

// Init does nothing: the wrapped sink was initialised by its own Logger, and
// initialising it again would change that Logger's call depth.
func (s quietSink) Init(logr.RuntimeInfo)  {}
func (s quietSink) Enabled(level int) bool { return s.LogSink.Enabled(level + 1) }
func (s quietSink) Info(level int, msg string, kv ...any) {
	s.LogSink.Info(level+1, msg, kv...)
}
func (s quietSink) Error(err error, msg string, kv ...any) {
	if s.LogSink.Enabled(1) {
		s.LogSink.Info(1, msg, append(kv, "err", err)...)
	}
}
func (s quietSink) WithValues(kv ...any) logr.LogSink { return quietSink{s.LogSink.WithValues(kv...)} }
func (s quietSink) WithName(name string) logr.LogSink { return quietSink{s.LogSink.WithName(name)} }
