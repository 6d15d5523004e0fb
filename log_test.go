package elector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
)

// logSink records log lines for assertions.
type logSink struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	level int
	err   error
	msg   string
	kv    []any
}

func (l logLine) String() string {
	s := fmt.Sprintf("V(%d) %s %v", l.level, l.msg, l.kv)
	if l.err != nil {
		s = fmt.Sprintf("ERROR %s: %v %v", l.msg, l.err, l.kv)
	}
	return s
}

func (s *logSink) logger() logr.Logger { return logr.New(&sinkFor{s: s}) }

// errorsContaining counts error lines whose error or message contains sub.
func (s *logSink) errorsContaining(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if l.err != nil && (strings.Contains(l.err.Error(), sub) || strings.Contains(l.msg, sub)) {
			n++
		}
	}
	return n
}

// infosContaining counts non-error lines at level 0 whose message contains sub.
func (s *logSink) infosContaining(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if l.err == nil && l.level == 0 && strings.Contains(l.msg, sub) {
			n++
		}
	}
	return n
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

type sinkFor struct {
	s  *logSink
	kv []any
}

func (f *sinkFor) Init(logr.RuntimeInfo)  {}
func (f *sinkFor) Enabled(level int) bool { return level <= 2 }
func (f *sinkFor) Info(level int, msg string, kv ...any) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.lines = append(f.s.lines, logLine{level: level, msg: msg, kv: append(append([]any{}, f.kv...), kv...)})
}
func (f *sinkFor) Error(err error, msg string, kv ...any) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.lines = append(f.s.lines, logLine{err: err, msg: msg, kv: append(append([]any{}, f.kv...), kv...)})
}
func (f *sinkFor) WithValues(kv ...any) logr.LogSink {
	return &sinkFor{s: f.s, kv: append(append([]any{}, f.kv...), kv...)}
}
func (f *sinkFor) WithName(string) logr.LogSink { return f }

// TestCancelledLockRequestIsNoError: a request cut off because its pass or
// Run ended, as on every shutdown, is logged at V(1), never as an error; a
// request that fails on its own still is.
func TestCancelledLockRequestIsNoError(t *testing.T) {
	var sink logSink
	l := &observed{log: sink.logger(), kind: "lease", lock: &stubLock{}}
	_ = l.failed("get", fmt.Errorf("Get \"https://127.0.0.1:1/\": %w", context.Canceled))
	if n := sink.errorsContaining("lock request"); n != 0 {
		t.Errorf("a cancelled request logged %d error lines, want none:\n%s", n, &sink)
	}
	_ = l.failed("get", errors.New("connection refused"))
	if n := sink.errorsContaining("lock request failed"); n != 1 {
		t.Errorf("a failed request logged %d error lines, want 1:\n%s", n, &sink)
	}
}
