package main

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStatTicksOfServers(t *testing.T) {
	// Real lines of kube-apiserver and etcd, and names that would trip a
	// parser that splits on spaces or takes the first ")".
	for _, tc := range []struct {
		stat string
		want int64
	}{
		{"4242 (kube-apiserver) S 4100 4242 4100 0 -1 1077936384 81234 0 12 0 15210 3021 0 0 20 0 31 0 8812 2062594048 98304 18446744073709551615", 18231},
		{"4243 (etcd) S 4100 4243 4100 0 -1 1077936384 5120 0 0 0 2210 1450 0 0 20 0 12 0 8790 11612160 12000 18446744073709551615", 3660},
		{"7 (a) S 1 2) R 4100 7 4100 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1 1", 11},
		{"8 (x 12 34 (y)) S 4100 8 4100 0 -1 0 0 0 0 0 100 200 0 0 20 0 1 0 1 1 1 1", 300},
	} {
		got, err := statTicks(1, []byte(tc.stat))
		if err != nil || got != tc.want {
			t.Errorf("statTicks(%q): got %d, %v, want %d", tc.stat, got, err, tc.want)
		}
	}
}

func TestReadCPUOfThisProcess(t *testing.T) {
	s0, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); { // spin: use CPU
	}
	s1, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s0.pid != os.Getpid() || s1.ticks < s0.ticks || !s1.at.After(s0.at) {
		t.Errorf("samples %+v, then %+v", s0, s1)
	}
	if _, err := readCPU(-1); err == nil {
		t.Error("readCPU(-1): no error")
	}
}

func TestCPUPerMinute(t *testing.T) {
	t0 := time.Now()
	at := func(s0, s1 float64) (time.Time, time.Time) {
		return t0.Add(time.Duration(s0 * float64(time.Second))), t0.Add(time.Duration(s1 * float64(time.Second)))
	}
	a0, a1 := at(0, 60)
	b0, b1 := at(5, 25)
	for _, tc := range []struct {
		name    string
		s0, s1  cpuSample
		tick    int64
		want    float64
		wantErr string
	}{
		{"a minute, 3000 ticks of 100 a second", cpuSample{9, 1000, a0}, cpuSample{9, 4000, a1}, 100, 30, ""},
		{"20 s, 250 ticks: 2.5 s, 7.5 s a minute", cpuSample{9, 50, b0}, cpuSample{9, 300, b1}, 100, 7.5, ""},
		{"another tick", cpuSample{9, 0, a0}, cpuSample{9, 6000, a1}, 1000, 6, ""},
		{"idle", cpuSample{9, 7, a0}, cpuSample{9, 7, a1}, 100, 0, ""},
		{"the process changed", cpuSample{9, 0, a0}, cpuSample{10, 5, a1}, 100, 0,
			"the process changed during the window: pid 9, then 10"},
		{"time went back", cpuSample{9, 0, a1}, cpuSample{9, 5, a0}, 100, 0,
			"pid 9: samples -1m0s apart, want the second later"},
		{"no time", cpuSample{9, 0, a0}, cpuSample{9, 5, a0}, 100, 0,
			"pid 9: samples 0s apart, want the second later"},
		{"CPU time went back", cpuSample{9, 5, a0}, cpuSample{9, 4, a1}, 100, 0,
			"pid 9: CPU time went back from 5 to 4 ticks"},
		{"no tick", cpuSample{9, 0, a0}, cpuSample{9, 5, a1}, 0, 0, "invalid clock tick 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cpuPerMinute(tc.s0, tc.s1, tc.tick)
			if errString(err) != tc.wantErr || got < tc.want-1e-9 || got > tc.want+1e-9 {
				t.Errorf("got %v, %q, want %v, %q", got, errString(err), tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseClockTick(t *testing.T) {
	for _, tc := range []struct {
		out     string
		want    int64
		wantErr string
	}{
		{"100\n", 100, ""},
		{" 250 ", 250, ""},
		{"", 0, `getconf CLK_TCK: unexpected output ""`},
		{"0\n", 0, `getconf CLK_TCK: unexpected output "0\n"`},
		{"undefined\n", 0, `getconf CLK_TCK: unexpected output "undefined\n"`},
	} {
		got, err := parseClockTick(tc.out)
		if got != tc.want || errString(err) != tc.wantErr {
			t.Errorf("parseClockTick(%q): got %d, %q, want %d, %q", tc.out, got, errString(err), tc.want, tc.wantErr)
		}
	}
}

func TestClockTick(t *testing.T) {
	tick, err := clockTick()
	if tick <= 0 || (err != nil && tick != userHZ) {
		t.Errorf("clockTick: got %d, %v", tick, err)
	}
}

func TestCPUWindow(t *testing.T) {
	self := func() (int, error) { return os.Getpid(), nil }
	gone := errors.New("no such process")
	w := startCPU(
		cpuProbe{name: "self", pid: self},
		cpuProbe{name: "remote", na: "-kubeconfig: not local"},
		cpuProbe{name: "gone", pid: func() (int, error) { return 0, gone }},
	)
	time.Sleep(10 * time.Millisecond)
	figs := w.end(100)
	if figs[0].na != "" || figs[0].perMin < 0 {
		t.Errorf("self: got %+v, want a figure", figs[0])
	}
	if want := (cpuFigure{na: "-kubeconfig: not local"}); figs[1] != want {
		t.Errorf("remote: got %+v, want %+v", figs[1], want)
	}
	if want := "no such process"; figs[2].na != want {
		t.Errorf("gone: got %+v, want n/a %q", figs[2], want)
	}
	if got := figs[1].String(); got != "n/a: -kubeconfig: not local" {
		t.Errorf("String of n/a: got %q", got)
	}
	if got := (cpuFigure{perMin: 1.234}).String(); got != "1.23 s/min" {
		t.Errorf("String: got %q", got)
	}
	if !strings.HasSuffix(figs[0].String(), " s/min") {
		t.Errorf("String of self: got %q", figs[0].String())
	}
}
