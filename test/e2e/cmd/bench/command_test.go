package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/k8s-elector/elector/test/e2e/cmd/bench/internal/childrec"
)

func TestWithinNoise(t *testing.T) {
	for _, tc := range []struct {
		name          string
		with, without [2]float64
		res           float64
		want          bool
	}{
		// Means 1.5 and 0.5: 1 apart, the spread of the pair with.
		{"at the spread of the pair with", [2]float64{1, 2}, [2]float64{0.375, 0.625}, 0, true},
		{"beyond it", [2]float64{1, 1.5}, [2]float64{0.5, 0.75}, 0, false},                         // 0.625 apart, spread 0.5
		{"within the spread of the pair without", [2]float64{2, 2}, [2]float64{0.5, 1.5}, 0, true}, // 1 apart, spread 1
		{"beyond, no spread", [2]float64{2, 2}, [2]float64{1, 1}, 0.5, false},
		{"within the rounding", [2]float64{2, 2}, [2]float64{1, 1}, 1, true},
		{"cheaper with the command", [2]float64{1, 1}, [2]float64{3, 3}, 0, true},
		{"all equal", [2]float64{1, 1}, [2]float64{1, 1}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withinNoise(tc.with, tc.without, tc.res); got != tc.want {
				t.Errorf("withinNoise(%v, %v, %v): got %v, want %v", tc.with, tc.without, tc.res, got, tc.want)
			}
		})
	}
}

func TestPerSecond(t *testing.T) {
	c0 := procCounters{mono: 5e9, ticks: 100, schedNS: 1e9, vol: 10, nonvol: 2}
	c1 := procCounters{mono: 7e9, ticks: 150, schedNS: 1.5e9, vol: 30, nonvol: 3}
	// 2 s apart: 50 ticks of 10 ms, 500 ms on the CPU, 20 and 1 switches.
	want := procRates{cpu: 250, sched: 250, vol: 10, nonvol: 0.5, resCPU: 10, resCount: 0.5}
	got := perSecond(c0, c1)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procRates{})); diff != "" {
		t.Errorf("perSecond (-want +got):\n%s", diff)
	}
	for _, f := range []struct {
		name string
		get  func(procRates) float64
		want float64
	}{
		{"cpuMS", procRates.cpuMS, 250}, {"schedMS", procRates.schedMS, 250},
		{"volPS", procRates.volPS, 10}, {"nonvolPS", procRates.nonvolPS, 0.5},
	} {
		if v := f.get(got); v != f.want {
			t.Errorf("%s: got %v, want %v", f.name, v, f.want)
		}
	}
}

func TestCPUResultFigures(t *testing.T) {
	c := &cpuResult{
		with:    [2]procRates{{cpu: 1, vol: 10}, {cpu: 2, vol: 20}},
		without: [2]procRates{{cpu: 3, vol: 30}, {cpu: 4, vol: 40}},
	}
	for _, tc := range []struct {
		get           func(procRates) float64
		with, without [2]float64
	}{
		{procRates.cpuMS, [2]float64{1, 2}, [2]float64{3, 4}},
		{procRates.volPS, [2]float64{10, 20}, [2]float64{30, 40}},
	} {
		w, o := c.figures(tc.get)
		if w != tc.with || o != tc.without {
			t.Errorf("figures: got %v, %v, want %v, %v", w, o, tc.with, tc.without)
		}
	}
}

func TestStatTicks(t *testing.T) {
	// utime is field 14, stime 15; the command name may hold spaces and
	// parentheses.
	const rest = " S 1 1234 1234 0 -1 4194560 100 0 0 0 12 34 0 0 20 0 5 0 12345 1000000 300 18446744073709551615"
	for _, tc := range []struct {
		name    string
		stat    string
		want    int64
		wantErr string
	}{
		{"plain", "1234 (k8s-elector)" + rest, 46, ""},
		{"a name with spaces and parentheses", "1234 (a (b) c)" + rest, 46, ""},
		{"too few fields", "1234 (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 12", 0,
			`pid 1234: unexpected /proc/1234/stat "1234 (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 12"`},
		{"no name", "1234 x" + rest, 0, `pid 1234: unexpected /proc/1234/stat "1234 x` + rest + `"`},
		{"not a number", "1234 (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 12 3x 0", 0,
			`pid 1234: /proc/1234/stat: strconv.ParseInt: parsing "3x": invalid syntax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := statTicks(1234, []byte(tc.stat))
			if got != tc.want || errString(err) != tc.wantErr {
				t.Errorf("got %d, %q, want %d, %q", got, errString(err), tc.want, tc.wantErr)
			}
		})
	}
}

func TestAddSwitches(t *testing.T) {
	const status = "Name:\tk8s-elector\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t15\nnonvoluntary_ctxt_switches:\t3\n"
	c := procCounters{vol: 5, nonvol: 1, ticks: 9}
	if err := addSwitches(&c, "/proc/1/task/2", []byte(status)); err != nil {
		t.Fatal(err)
	}
	want := procCounters{vol: 20, nonvol: 4, ticks: 9}
	if diff := cmp.Diff(want, c, cmp.AllowUnexported(procCounters{})); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	err := addSwitches(&c, "/proc/1/task/2", []byte("voluntary_ctxt_switches:\tmany\n"))
	if got, want := errString(err), `/proc/1/task/2/status: strconv.ParseInt: parsing "many": invalid syntax`; got != want {
		t.Errorf("error: got %q, want %q", got, want)
	}
}

func TestLogTimeIn(t *testing.T) {
	const logs = `not json
{"level":"info","ts":"2026-01-02T03:04:05.123456789Z","msg":"became leader"}
{"level":"info","ts":"yesterday","msg":"started the command"}
{"level":"info","ts":"2026-01-02T03:04:06+01:00","msg":"started the command"}
{"level":"info","ts":"2026-01-02T03:04:07Z","msg":"became leader"}
`
	for _, tc := range []struct {
		msg  string
		want time.Time
		ok   bool
	}{
		{msgBecameLeader, time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), true}, // the first
		{msgStartedCommand, time.Date(2026, 1, 2, 2, 4, 6, 0, time.UTC), true},       // the first with a time
		{"released lock", time.Time{}, false},
		{"became", time.Time{}, false}, // the whole message
	} {
		got, ok := logTimeIn(logs, tc.msg)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("logTimeIn(%q): got %v, %v, want %v, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHandoverOf(t *testing.T) {
	const m0 = int64(1e12)
	ms := func(n int64) int64 { return m0 + n*1e6 }
	got := handoverOf(m0,
		childrec.Event{Kind: childrec.SIGTERM, Mono: ms(125)},
		childrec.Event{Kind: childrec.Exit, Mono: ms(375)},
		childrec.Event{Kind: childrec.Start, Mono: ms(750)})
	want := handover{took: 0.75, toSigterm: 0.125, ownExit: 0.25, afterExit: 0.375, lessExit: 0.5}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(handover{})); diff != "" {
		t.Errorf("handoverOf (-want +got):\n%s", diff)
	}
}

func TestNewCommandGroup(t *testing.T) {
	b := testBench()
	b.tmp, b.child, b.binary, b.kubecfg, b.namespace = "/tmp/run", "/tmp/run/benchchild", "/bin/k8s-elector", "/tmp/kubeconfig", "bench-ns"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := b.newCommandGroup(ctx, modeWatch, "cmdstart-watch-0", 3*time.Second)
	defer g.cancel()
	if want := "/tmp/run/commands/cmdstart-watch-0.jsonl"; g.file != want {
		t.Errorf("file: got %q, want %q", g.file, want)
	}
	want := []string{"-watch=true", "--", "/tmp/run/benchchild", "-out=/tmp/run/commands/cmdstart-watch-0.jsonl"}
	if diff := cmp.Diff(want, g.cfg.Extra); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	// A plain group of the same bench runs no command.
	p := b.newGroup(ctx, modePoll, "plain", 3*time.Second)
	defer p.cancel()
	if diff := cmp.Diff([]string{"-watch=false"}, p.cfg.Extra); diff != "" {
		t.Errorf("flags of a plain group (-want +got):\n%s", diff)
	}
}

func TestCommandWarnings(t *testing.T) {
	b := testBench()
	b.result(modeWatch).cmd.orphans = 1
	b.result(modePoll).cmd.orphans = 0
	want := []string{"watch: 1 commands still ran 2 s after their elector's SIGKILL (the bench killed them)"}
	if diff := cmp.Diff(want, b.commandWarnings()); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	b.hasWatch = false // the watch column is not measured: nor warned about
	if got := b.commandWarnings(); len(got) != 0 {
		t.Errorf("warnings without -watch: got %q, want none", got)
	}
}
