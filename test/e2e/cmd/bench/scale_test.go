package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 3000: "3,000", 12345: "12,345",
		123456: "123,456", 1234567: "1,234,567", -1000: "-1,000", -999: "-999",
	} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d): got %q, want %q", n, got, want)
		}
	}
}

func TestScalePlan(t *testing.T) {
	p := newPlan(false).scale
	if got, want := p.String(), "1,000 elections × 3 candidates, TTL 10s"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	// 2 minutes and 30 ms per candidate.
	if got, want := p.leadLimit(), 3*time.Minute+30*time.Second; got != want {
		t.Errorf("leadLimit: got %s, want %s", got, want)
	}
	if err := p.set(0, 0, 0, 0); err != nil || p != newPlan(false).scale {
		t.Errorf("set of zeros: got %+v, %v, want the defaults", p, err)
	}
}

// scaleBench is a bench with both runs of the scale experiment: k8s-elector
// in watch mode, client-go in the reference column, against a cluster of
// -kubeconfig for client-go (no CPU figures of the servers).
func scaleBench() *bench {
	b := testBench()
	b.scale.elections = 200
	b.clockTick = 100
	b.tickOnce.Do(func() {})
	b.result(modeWatch).scale = &scaleResult{
		allLead: 4200 * time.Millisecond, startup: 72 * time.Second, quiet: true, failures: 0,
		rates:   rates{verbs: map[string]float64{"PUT": 7200, "POST": 0.01, "GET": 30}, conflicts: 6},
		watches: 800, apiserver: cpuFigure{perMin: 21.456}, etcd: cpuFigure{perMin: 4.5}, worker: cpuFigure{perMin: 12},
		rss: 412_300_000, terms: 0, exit: workerExit{took: 1500 * time.Millisecond},
	}
	na := "-kubeconfig: not local"
	b.ref.scale = &scaleResult{
		allLead: 15 * time.Second, startup: 312 * time.Second, quiet: false, failures: 14,
		rates:     rates{verbs: map[string]float64{"PUT": 7300, "GET": 14500}, conflicts: 0},
		apiserver: cpuFigure{na: na}, etcd: cpuFigure{na: na}, worker: cpuFigure{perMin: 30},
		rss: 380_000_000, terms: 3, exit: workerExit{took: time.Minute, killed: true},
	}
	return b
}

func TestScaleRows(t *testing.T) {
	tb := scaleBench().rows()
	label := "200 elections × 3 candidates, TTL 10s: "
	for _, tc := range []struct {
		metric     string
		watch, ref string
	}{
		{"time until every election has a leader", "4.20 s", "15.00 s"},
		{"start → window (every election led, then no failure logged for 1m5s)", "72.00 s", "312.00 s, still failing"},
		{"API requests/s", "120.5", "363.3"},
		// A verb that either run saw; POST, noise in both, has no row.
		{"  · GET", "0.5", "241.7"},
		{"  · PUT (update)", "120.0", "121.7"},
		{"  409 conflicts/s", "0.1", "0.0"},
		{"open lease watches", "800", "0"},
		{"kube-apiserver CPU s/min", "21.46", "n/a: -kubeconfig: not local"},
		{"etcd CPU s/min", "4.50", "n/a: -kubeconfig: not local"},
		{"RSS of the process", "412.3 MB", "380.0 MB"},
		{"CPU s/min of the process", "12.00", "30.00"},
		{"terms started in the window (leadership lost and regained)", "0", "3"},
		{"failures logged in the window (failed requests, mostly)", "0", "14"},
		{"SIGTERM → exit of the process", "1.50 s", "killed after 1m0s"},
	} {
		t.Run(tc.metric, func(t *testing.T) {
			want := tableRow{metric: label + tc.metric, cells: map[string]string{modeWatch: tc.watch, modePoll: "–"},
				ref: tc.ref, ratio: "–", target: "–"}
			if diff := cmp.Diff(want, rowOf(t, tb, label+tc.metric), cmp.AllowUnexported(tableRow{})); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
		})
	}
	var scaleRows []string
	for _, r := range tb.rows {
		if rest, ok := strings.CutPrefix(r.metric, label); ok {
			scaleRows = append(scaleRows, rest)
		}
	}
	if len(scaleRows) != 14 {
		t.Errorf("scale rows: got %q, want the 14 above", scaleRows)
	}
}

func TestScaleRowsWithoutRuns(t *testing.T) {
	// Not run: the rows are there, without figures or verbs, and no notes.
	b := testBench()
	tb := b.rows()
	row := rowOf(t, tb, "1,000 elections × 3 candidates, TTL 10s: API requests/s")
	if row.cells[modeWatch] != "–" || row.ref != "" {
		t.Errorf("row: got %+v, want no figures", row)
	}
	if slices.ContainsFunc(tb.rows, func(r tableRow) bool { return strings.Contains(r.metric, "candidates, TTL 10s:   · ") }) {
		t.Error("verb rows without a run")
	}
	if n := b.scaleNotes(); n != nil {
		t.Errorf("notes without a run: %q", n)
	}
	if _, ok := b.res[modeWatch]; ok {
		t.Error("the rows created a watch result")
	}
}

func TestScaleNotes(t *testing.T) {
	notes := strings.Join(scaleBench().scaleNotes(), "\n")
	for _, want := range []string{
		"runs 600 candidates, 3 in each of 200 elections",
		"LeaseDuration 10s, RenewDeadline 3.33 s, RetryPeriod 1.67 s",
		"CLK_TCK 100 ticks a second",
		"limit 2m18s",
		"limit 1m0s, then SIGKILL",
		"no failure (an error, or a line with an err value) for 1m5s",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

func TestScaleRowsOfAFailedRun(t *testing.T) {
	b := scaleBench()
	b.result(modeWatch).scale = &scaleResult{failed: "only 48 of 200 elections lead after 2m18s (at most 399 at once)"}
	tb := b.rows()
	label := "200 elections × 3 candidates, TTL 10s: "
	first := rowOf(t, tb, label+"time until every election has a leader")
	if got, want := first.cells[modeWatch], "only 48 of 200 elections lead after 2m18s (at most 399 at once)"; got != want {
		t.Errorf("first row: got %q, want %q", got, want)
	}
	if first.ref != "15.00 s" {
		t.Errorf("first row, client-go: got %q, want its figure", first.ref)
	}
	for _, metric := range []string{"API requests/s", "  · PUT (update)", "kube-apiserver CPU s/min", "RSS of the process"} {
		if r := rowOf(t, tb, label+metric); r.cells[modeWatch] != "–" || r.ref == "" {
			t.Errorf("%s: got %q beside %q, want – beside client-go's figure", metric, r.cells[modeWatch], r.ref)
		}
	}
}

func TestScaleWarnings(t *testing.T) {
	b := scaleBench()
	if got, want := b.scaleWarnings(), []string{
		"scale, client-go: the candidates still logged failures 5m12s after the start, so its window is not a steady state",
	}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	b.result(modeWatch).scale.failed = "only 0 of 200 elections lead after 2m18s (at most 13 at once)"
	b.ref.scale = nil
	b.result(modePoll) // as every active mode has one after a run
	want := "scale, k8s-elector: only 0 of 200 elections lead after 2m18s (at most 13 at once), so the run has no steady window"
	if got := b.modeWarnings(); !slices.Contains(got, want) {
		t.Errorf("modeWarnings: got %q, want %q among them", got, want)
	}
}

func TestServerProbesWithoutLocalControlPlane(t *testing.T) {
	// With -kubeconfig: no local process to read, and a reason.
	b := testBench()
	probes := b.serverProbes()
	if len(probes) != 2 || probes[0].name != "kube-apiserver" || probes[1].name != "etcd" {
		t.Fatalf("probes: got %+v, want kube-apiserver and etcd", probes)
	}
	figs := startCPU(probes...).end(100)
	for i, f := range figs {
		if want := "-kubeconfig: the API server is not a process of this bench"; f.na != want {
			t.Errorf("%s: got %+v, want n/a %q", probes[i].name, f, want)
		}
	}
}
