package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func TestParseProgress(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    workerProgress
		wantErr string
	}{
		{"998 1000 1003 12", workerProgress{998, 1000, 1003, 12}, ""},
		{"0 3 0 0\n", workerProgress{0, 3, 0, 0}, ""},
		{"1 2 3", workerProgress{}, `scale program progress "1 2 3": EOF`},
		{"a b c d", workerProgress{}, `scale program progress "a b c d": expected integer`},
	} {
		got, err := parseProgress(tc.line)
		if got != tc.want || errString(err) != tc.wantErr {
			t.Errorf("parseProgress(%q): got %v, %q, want %v, %q", tc.line, got, errString(err), tc.want, tc.wantErr)
		}
	}
}

// shellWorker starts script under sh as if it were the scale program.
func shellWorker(t *testing.T, script string) *workerProc {
	t.Helper()
	b := &bench{worker: "/bin/sh"}
	w, err := b.startWorker(context.Background(), "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(time.Second) })
	return w
}

func TestWorkerWaitLeading(t *testing.T) {
	nolog := func(string, ...any) {}
	// Like the program, it exits 0 on SIGTERM.
	w := shellWorker(t, `trap "exit 0" TERM; echo "1 3 1 0"; echo noise; echo "3 3 4 0"; while :; do sleep 0.05; done`)
	if _, err := w.waitLeading(context.Background(), 3, 10*time.Second, nolog); err != nil {
		t.Fatalf("waitLeading: %v", err)
	}
	if x := w.stop(5 * time.Second); x.killed || x.err != nil {
		t.Errorf("stop: got %+v, want an exit on SIGTERM", x)
	}

	w = shellWorker(t, `echo "1 3 1 0"; echo "it broke" >&2; exit 1`)
	_, err := w.waitLeading(context.Background(), 3, 10*time.Second, nolog)
	if want := "the scale program exited:\nit broke"; errString(err) != want {
		t.Errorf("waitLeading of a program that exits: got %v, want %q", err, want)
	}

	w = shellWorker(t, `echo "1 3 1 0"; exec sleep 30`)
	_, err = w.waitLeading(context.Background(), 3, 100*time.Millisecond, nolog)
	if want := "only 1 of 3 elections lead after 100ms (at most 1 at once):\n"; errString(err) != want {
		t.Errorf("waitLeading past its limit: got %v, want %q", err, want)
	}
}

func TestWorkerWaitQuiet(t *testing.T) {
	// Failures grow for about 0.3 s, then stay.
	w := shellWorker(t, `for f in 1 2 3 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4; do echo "1 1 1 $f"; sleep 0.1; done; exec sleep 30`)
	t0 := time.Now()
	quiet, err := w.waitQuiet(context.Background(), 500*time.Millisecond, 10*time.Second)
	if took := time.Since(t0); !quiet || err != nil || took < 700*time.Millisecond || took > 5*time.Second {
		t.Errorf("waitQuiet: got %v, %v after %s, want true after about 0.8 s", quiet, err, took)
	}

	// Failures keep growing.
	w = shellWorker(t, `f=0; while :; do f=$((f+1)); echo "1 1 1 $f"; sleep 0.05; done`)
	if quiet, err := w.waitQuiet(context.Background(), 500*time.Millisecond, 300*time.Millisecond); quiet || err != nil {
		t.Errorf("waitQuiet while failing: got %v, %v, want false", quiet, err)
	}

	w = shellWorker(t, `echo "1 1 1 1"; echo "it broke" >&2; exit 1`)
	if _, err := w.waitQuiet(context.Background(), 5*time.Second, 10*time.Second); errString(err) != "the scale program exited:\nit broke" {
		t.Errorf("waitQuiet of a program that exits: got %v", err)
	}
}

func TestWorkerStopKillsWithinTheLimit(t *testing.T) {
	// SIGTERM stays ignored across exec.
	w := shellWorker(t, `trap "" TERM; echo "1 1 1 0"; exec sleep 30`)
	if _, ok := w.next(); !ok {
		t.Fatal("no progress")
	}
	x := w.stop(200 * time.Millisecond)
	if !x.killed || x.took > 5*time.Second {
		t.Errorf("stop: got %+v, want it killed after 200ms", x)
	}
	want := "the scale program did not stop within 200ms of SIGTERM: killed"
	if errString(x.err) != want {
		t.Errorf("stop: got error %v, want %q", x.err, want)
	}
	if again := w.stop(time.Hour); again != x {
		t.Errorf("second stop: got %+v, want the first's %+v", again, x)
	}
}

func TestWorkerSummary(t *testing.T) {
	w := &workerProc{}
	w.stderr = newSyncBuffer("lock requests (all): get/ok=3\nnoise\nlog      2× V(0) \"x\"\n")
	want := []string{"lock requests (all): get/ok=3", "log      2× V(0) \"x\""}
	if got := w.summary(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("summary: got %q, want %q", got, want)
	}
}

// newSyncBuffer returns a buffer that holds s.
func newSyncBuffer(s string) *fleet.SyncBuffer {
	b := &fleet.SyncBuffer{}
	_, _ = io.WriteString(b, s)
	return b
}
