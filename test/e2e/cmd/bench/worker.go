package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// workerProgress is one line of the scale program's progress:
// "<leading> <total> <terms> <failures>".
type workerProgress struct {
	leading  int // elections led by one of the program's candidates
	total    int // all its elections
	terms    int // terms started so far, by every candidate
	failures int // log lines so far that report an error
}

// parseProgress reads one line of the scale program's progress.
func parseProgress(line string) (workerProgress, error) {
	var p workerProgress
	if _, err := fmt.Sscan(line, &p.leading, &p.total, &p.terms, &p.failures); err != nil {
		return workerProgress{}, fmt.Errorf("scale program progress %q: %w", line, err)
	}
	return p, nil
}

// workerProc is a running scale program (cmd/bench/internal/scaleworker).
type workerProc struct {
	cmd      *exec.Cmd
	started  time.Time
	stderr   *fleet.SyncBuffer
	progress chan workerProgress // the latest line not yet read; closed when stdout ends
	eof      chan struct{}       // closed when stdout ends
	exited   chan struct{}       // closed when the program has exited and its stderr is read
	exitErr  error               // its exit status, once exited is closed
	stopOnce sync.Once
	stopped  workerExit

	mu          sync.Mutex
	lastFailure time.Time // when the count of failures last grew; the start at first
}

// workerExit is how the scale program stopped.
type workerExit struct {
	took   time.Duration // from SIGTERM to its exit, or to the SIGKILL
	killed bool          // it did not exit within the bound, and was killed
	err    error         // its exit status, or why it was killed
}

// startWorker starts the scale program with args. It dies with the bench.
func (b *bench) startWorker(ctx context.Context, args ...string) (*workerProc, error) {
	cmd := exec.CommandContext(ctx, b.worker, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	w := &workerProc{cmd: cmd, stderr: &fleet.SyncBuffer{}, progress: make(chan workerProgress, 1),
		eof: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.started = time.Now()
	w.lastFailure = w.started
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the scale program: %w", err)
	}
	go w.read(out)
	go func() {
		w.exitErr = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

// read keeps the latest line of progress in w.progress, and the time the
// failures last grew, until out ends.
func (w *workerProc) read(out io.Reader) {
	defer close(w.eof)
	sc := bufio.NewScanner(out)
	failures := 0
	for sc.Scan() {
		p, err := parseProgress(sc.Text())
		if err != nil {
			continue
		}
		if p.failures != failures {
			failures = p.failures
			w.mu.Lock()
			w.lastFailure = time.Now()
			w.mu.Unlock()
		}
		select {
		case <-w.progress:
		default:
		}
		w.progress <- p
	}
	close(w.progress)
}

// next returns the next line of progress; false if the program exited.
func (w *workerProc) next() (workerProgress, bool) {
	p, ok := <-w.progress
	return p, ok
}

// waitLeading waits until all n elections have a leader, logging the
// progress every 10s, and returns how long that took from the start.
func (w *workerProc) waitLeading(ctx context.Context, n int, limit time.Duration, logf func(string, ...any)) (time.Duration, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	last, most, lastLog := 0, 0, time.Now()
	for last < n {
		select {
		case p, ok := <-w.progress:
			if !ok {
				return 0, w.exitedEarly()
			}
			last, most = p.leading, max(most, p.leading)
			if time.Since(lastLog) > 10*time.Second {
				logf("%d of %d elections lead; %d failures logged so far", p.leading, n, p.failures)
				lastLog = time.Now()
			}
		case <-deadline.C:
			return 0, &notLeadingError{led: last, most: most, n: n, limit: limit, tail: w.tail()}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return time.Since(w.started), nil
}

// waitQuiet waits until the program has logged no failure for quiet, and
// returns true; or false if it still logged some after limit.
func (w *workerProc) waitQuiet(ctx context.Context, quiet, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		since := time.Since(w.lastFailure)
		w.mu.Unlock()
		switch {
		case since >= quiet:
			return true, nil
		case time.Now().After(deadline):
			return false, nil
		}
		select {
		case <-tick.C:
		case <-w.eof:
			return false, w.exitedEarly()
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// notLeadingError is waitLeading's error when not every election had a
// leader in time.
type notLeadingError struct {
	led, most, n int // elections led at the end, at most at once, all
	limit        time.Duration
	tail         string // of the program's stderr
}

func (e *notLeadingError) Error() string { return e.summary() + ":\n" + e.tail }

// summary is the error without the program's stderr.
func (e *notLeadingError) summary() string {
	return fmt.Sprintf("only %d of %d elections lead after %s (at most %d at once)", e.led, e.n, e.limit, e.most)
}

// stop sends the program SIGTERM and waits up to limit for it to exit, then
// kills it. Only the first call stops it; every call returns how.
func (w *workerProc) stop(limit time.Duration) workerExit {
	w.stopOnce.Do(func() {
		t0 := time.Now()
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
			w.stopped = workerExit{took: time.Since(t0), err: w.exitErr}
		case <-time.After(limit):
			_ = w.cmd.Process.Kill()
			w.stopped = workerExit{took: time.Since(t0), killed: true,
				err: fmt.Errorf("the scale program did not stop within %s of SIGTERM: killed", limit)}
			<-w.exited
		}
	})
	return w.stopped
}

// exitedEarly returns the error for a program whose stdout ended while it
// was awaited, with the end of its stderr once it has exited.
func (w *workerProc) exitedEarly() error {
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("the scale program exited:\n%s", w.tail())
}

// tail returns the last lines the program wrote on stderr.
func (w *workerProc) tail() string { return tail(w.stderr.String(), 20) }

// summary returns the lines of the program's closing summary on stderr: its
// Electors' lock request counters and its count of log lines.
func (w *workerProc) summary() []string {
	var lines []string
	for line := range strings.Lines(w.stderr.String()) {
		if strings.HasPrefix(line, "lock requests") || strings.HasPrefix(line, "log ") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}
