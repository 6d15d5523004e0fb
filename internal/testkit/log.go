package testkit

import (
	"fmt"
	"strings"
	"sync"

	"github.com/go-logr/logr"
)

// Log records log lines for assertions; its zero value is ready. Lines
// up to V(2) are recorded; names are dropped.
type Log struct {
	mu    sync.Mutex
	lines []line
}

type line struct {
	level int
	err   error
	msg   string
	kv    []any
}

func (l line) String() string {
	s := fmt.Sprintf("V(%d) %s %v", l.level, l.msg, l.kv)
	if l.err != nil {
		s = fmt.Sprintf("ERROR %s: %v %v", l.msg, l.err, l.kv)
	}
	return s
}

// Logger returns a logger that records into s.
func (s *Log) Logger() logr.Logger { return logr.New(&sinkFor{s: s}) }

// ErrorsContaining counts error lines whose error or message contains sub.
func (s *Log) ErrorsContaining(sub string) int {
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

// InfosContaining counts non-error lines at level 0 whose message contains sub.
func (s *Log) InfosContaining(sub string) int {
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

func (s *Log) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// sinkFor is the logr.LogSink of a Log, with the values of WithValues.
type sinkFor struct {
	s  *Log
	kv []any
}

func (f *sinkFor) Init(logr.RuntimeInfo)  {}
func (f *sinkFor) Enabled(level int) bool { return level <= 2 }
func (f *sinkFor) Info(level int, msg string, kv ...any) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.lines = append(f.s.lines, line{level: level, msg: msg, kv: append(append([]any{}, f.kv...), kv...)})
}
func (f *sinkFor) Error(err error, msg string, kv ...any) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.lines = append(f.s.lines, line{err: err, msg: msg, kv: append(append([]any{}, f.kv...), kv...)})
}
func (f *sinkFor) WithValues(kv ...any) logr.LogSink {
	return &sinkFor{s: f.s, kv: append(append([]any{}, f.kv...), kv...)}
}
func (f *sinkFor) WithName(string) logr.LogSink { return f }
