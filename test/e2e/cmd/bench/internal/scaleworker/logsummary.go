package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
)

// logSummary is a logr sink that counts the Electors' log lines up to V(1)
// by message and error, so that the bench can report what went wrong across
// hundreds of elections in a few lines.
type logSummary struct {
	mu       sync.Mutex
	counts   map[string]int
	failures atomic.Int64 // the lines that report an error
}

func newLogSummary() *logSummary { return &logSummary{counts: map[string]int{}} }

func (s *logSummary) logger() logr.Logger { return logr.New(summarySink{s: s}) }

// names are the elections' lock names in URLs and messages: the bench's
// prefixes are scale-<mode> and scale-<implementation>.
var names = regexp.MustCompile(`[a-z]+-(watch|poll|elector|clientgo)-\d+`)

func (s *logSummary) add(level int, msg string, err error, kvs ...[]any) {
	line := fmt.Sprintf("V(%d) %q", level, msg)
	failed := level < 0 || err != nil
	if err != nil {
		line += " err=" + err.Error()
	}
	for _, kv := range kvs {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "err" {
				line += fmt.Sprintf(" err=%v", kv[i+1])
				failed = true
			}
		}
	}
	if failed {
		s.failures.Add(1)
	}
	line = names.ReplaceAllString(line, "<election>")
	s.mu.Lock()
	s.counts[line]++
	s.mu.Unlock()
}

// String lists the lines, most frequent first.
func (s *logSummary) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := slices.SortedFunc(maps.Keys(s.counts), func(a, b string) int { return s.counts[b] - s.counts[a] })
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "log %6d× %s\n", s.counts[l], l)
	}
	return b.String()
}

type summarySink struct {
	s  *logSummary
	kv []any
}

func (k summarySink) Init(logr.RuntimeInfo)  {}
func (k summarySink) Enabled(level int) bool { return level <= 1 }
func (k summarySink) Info(level int, msg string, kv ...any) {
	k.s.add(level, msg, nil, k.kv, kv)
}
func (k summarySink) Error(err error, msg string, kv ...any) {
	k.s.add(-1, msg, err, k.kv, kv)
}
func (k summarySink) WithValues(kv ...any) logr.LogSink {
	return summarySink{s: k.s, kv: append(slices.Clone(k.kv), kv...)}
}
func (k summarySink) WithName(string) logr.LogSink { return k }
