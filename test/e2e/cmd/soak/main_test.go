package main

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

func TestOffset(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "+0:00.000"},
		{1500 * time.Millisecond, "+0:01.500"},
		{59999 * time.Millisecond, "+0:59.999"},
		{59999600 * time.Microsecond, "+1:00.000"}, // rounded to the millisecond first
		{61234 * time.Millisecond, "+1:01.234"},
		{12*time.Minute + 3*time.Second, "+12:03.000"},
		{1234567 * time.Microsecond, "+0:01.235"},
	} {
		if got := offset(tc.d); got != tc.want {
			t.Errorf("offset(%s): got %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestBetween(t *testing.T) {
	lo, hi := 500*time.Millisecond, 700*time.Millisecond
	s := &soak{rng: rand.New(rand.NewPCG(1, 2))}
	again := &soak{rng: rand.New(rand.NewPCG(1, 2))}
	var low, high bool
	for range 1000 {
		d := s.between(lo, hi)
		if d < lo || d >= hi {
			t.Fatalf("between(%s, %s): got %s, want it in [%s, %s)", lo, hi, d, lo, hi)
		}
		low, high = low || d < 510*time.Millisecond, high || d >= 690*time.Millisecond
		if d2 := again.between(lo, hi); d2 != d {
			t.Fatalf("the same seed: got %s and %s, want the same schedule", d, d2)
		}
	}
	if !low || !high {
		t.Errorf("1000 draws in [%s, %s): got one in the lowest 10 ms: %v, in the highest: %v; want both", lo, hi, low, high)
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	// Should run take bad flags, it fails at once instead of building
	// k8s-elector and starting a control plane.
	t.Setenv(controlplane.BinDirEnv, filepath.Join(t.TempDir(), "none"))
	const need = "need -n ≥ 2, -every > 0, -duration > 0 and -ttl ≥ 1s"
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-n=1"}, need},
		{[]string{"-every=0s"}, need},
		{[]string{"-every=-1s"}, need},
		{[]string{"-duration=0s"}, need},
		{[]string{"-ttl=999ms"}, need},
		{[]string{"-no-such-flag"}, ""}, // the flag set says what is wrong
		{[]string{"-n=many"}, ""},
	} {
		var out strings.Builder
		code, err := run(context.Background(), append([]string{"-binary=/nonexistent/k8s-elector"}, tc.args...), &out)
		if code != 2 || errString(err) != tc.wantErr {
			t.Errorf("run(%q): got %d, %q, want 2, %q", tc.args, code, errString(err), tc.wantErr)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) wrote %q, want nothing: it stops before it starts", tc.args, out.String())
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCountHandovers(t *testing.T) {
	runs := func(ids ...string) []history.Run {
		var r []history.Run
		for _, id := range ids {
			r = append(r, history.Run{Elector: id})
		}
		return r
	}
	for _, tc := range []struct {
		runs []history.Run
		want int
	}{
		{nil, 0},
		{runs("a"), 0},
		{runs("a", "a"), 0}, // a new term of the same elector
		{runs("a", "b"), 1},
		{runs("a", "b", "b", "a", "c"), 3},
		{runs("a", "b", "b", "c"), 2},
	} {
		if got := countHandovers(tc.runs); got != tc.want {
			t.Errorf("countHandovers of %d runs: got %d, want %d", len(tc.runs), got, tc.want)
		}
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	run := func(from, to float64) history.Run { return history.Run{From: at(from), To: at(to)} }
	for _, tc := range []struct {
		name  string
		runs  []history.Run
		end   float64
		gap   time.Duration
		gapAt time.Time
	}{
		{"nobody led", nil, 10, 0, time.Time{}},
		{"one run to the end", []history.Run{run(1, 10)}, 10, 0, time.Time{}},
		{"one run, then nobody", []history.Run{run(1, 4)}, 10, 6 * time.Second, at(4)},
		{"between two runs", []history.Run{run(1, 4), run(6.5, 10)}, 10, 2500 * time.Millisecond, at(4)},
		{"the longest of several", []history.Run{run(0, 1), run(2, 3), run(6, 7), run(8, 10)}, 10, 3 * time.Second, at(3)},
		{
			// A run that ends before the one before it does leaves no gap.
			name: "overlapping runs", runs: []history.Run{run(0, 5), run(1, 2), run(4, 6), run(7, 10)}, end: 10,
			gap: time.Second, gapAt: at(6),
		},
		{"a gap before the end", []history.Run{run(0, 5), run(6, 7)}, 10, 3 * time.Second, at(7)},
		{"the first of two equal gaps", []history.Run{run(0, 1), run(3, 4), run(6, 10)}, 10, 2 * time.Second, at(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gap, gapAt := longestGap(tc.runs, at(tc.end))
			if gap != tc.gap || !gapAt.Equal(tc.gapAt) {
				t.Errorf("got %s from %v, want %s from %v", gap, gapAt, tc.gap, tc.gapAt)
			}
		})
	}
}

func TestReportWithoutALeader(t *testing.T) {
	var out strings.Builder
	s := &soak{o: options{n: 3, lock: "leases", ttl: 6 * time.Second, seed: 7}, out: &out, rec: history.NewRecorder(),
		begin: time.Now(), counts: map[string]int{"kill": 2, "blackhole": 1, "delay": 4}}
	if code := s.report(); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
	for _, want := range []string{
		"faults injected:                        7 (kill 2, pause 0, blackhole 1, delay 4)\n",
		"handovers:                              0\n",
		"longest leaderless gap:                 the whole run: nobody ever led\n",
		"two-leader instants:                    0\n",
		"\nPASS\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q; got\n%s", want, out.String())
		}
	}
}
