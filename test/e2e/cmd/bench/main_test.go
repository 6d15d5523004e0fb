package main

import (
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewPlan(t *testing.T) {
	full := plan{
		window: time.Minute, idle: time.Minute,
		firstReps: 5, gracefulRep: 5, crashReps: 7, bigReps: 3,
		candidates: []int{50, 500}, elections: 500, loadConns: 8, loadFor: 5 * time.Second, loadOneFor: 2 * time.Second,
		cmdReps:     5,
		failoverTTL: []time.Duration{3 * time.Second, 10 * time.Second},
		steadyTTL:   []time.Duration{3 * time.Second, 10 * time.Second},
		scale:       scalePlan{elections: 1000, candidates: 3, ttl: 10 * time.Second, window: time.Minute},
	}
	quick := full
	quick.quick = true
	quick.window, quick.idle = 20*time.Second, 15*time.Second
	quick.firstReps, quick.gracefulRep, quick.crashReps, quick.bigReps, quick.cmdReps = 3, 3, 3, 1, 3
	quick.steadyTTL = []time.Duration{10 * time.Second}
	quick.candidates = []int{50}
	quick.scale.window = 20 * time.Second
	for _, tc := range []struct {
		quick bool
		want  plan
	}{{false, full}, {true, quick}} {
		if diff := cmp.Diff(tc.want, newPlan(tc.quick), cmp.AllowUnexported(plan{}, scalePlan{})); diff != "" {
			t.Errorf("newPlan(%v) (-want +got):\n%s", tc.quick, diff)
		}
	}
}

func TestParseArgs(t *testing.T) {
	with := func(quick bool, f func(o *options)) options {
		o := options{plan: newPlan(quick), modes: []string{modeWatch, modePoll}, modesArg: "watch,poll"}
		if f != nil {
			f(&o)
		}
		return o
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    options
		wantErr string
	}{
		{name: "defaults", want: with(false, nil)},
		{name: "quick", args: []string{"-quick"}, want: with(true, nil)},
		{
			name: "files", args: []string{"-binary=bin/k8s-elector", "-kubeconfig=/k", "-out=bench.md"},
			want: with(false, func(o *options) { o.binary, o.kubeconfig, o.out = "bin/k8s-elector", "/k", "bench.md" }),
		},
		{
			name: "modes in the order given, spaces trimmed", args: []string{"-modes=poll, watch"},
			want: with(false, func(o *options) { o.modes, o.modesArg = []string{modePoll, modeWatch}, "poll, watch" }),
		},
		{
			name: "one mode", args: []string{"-modes=poll"},
			want: with(false, func(o *options) { o.modes, o.modesArg = []string{modePoll}, "poll" }),
		},
		{name: "an unknown mode", args: []string{"-modes=watch,push"}, wantErr: `invalid -modes entry "push": want watch or poll`},
		{name: "no mode", args: []string{"-modes="}, wantErr: `invalid -modes entry "": want watch or poll`},
		{
			name: "only some experiments", args: []string{"-only=steady, load,command"},
			want: with(false, func(o *options) { o.only = map[string]bool{"steady": true, "load": true, "command": true} }),
		},
		{
			name: "candidates", args: []string{"-candidates=3, 200"},
			want: with(false, func(o *options) { o.candidates = []int{3, 200} }),
		},
		{name: "no candidates is the default", args: []string{"-candidates="}, want: with(false, nil)},
		{name: "too few candidates", args: []string{"-candidates=50,2"}, wantErr: `invalid -candidates entry "2": want a number of 3 or more`},
		{name: "not a number", args: []string{"-candidates=fifty"}, wantErr: `invalid -candidates entry "fifty": want a number of 3 or more`},
		{
			name: "a shorter window shortens the idle time", args: []string{"-window=30s"},
			want: with(false, func(o *options) { o.window, o.idle, o.scale.window = 30*time.Second, 30*time.Second, 30*time.Second }),
		},
		{
			name: "a longer one does not lengthen it", args: []string{"-quick", "-window=40s"},
			want: with(true, func(o *options) { o.window, o.scale.window = 40*time.Second, 40*time.Second }),
		},
		{
			name: "the scale experiment", args: []string{"-quick", "-scale-elections=200", "-scale-candidates=2", "-scale-ttl=20s", "-scale-window=30s"},
			want: with(true, func(o *options) {
				o.scale = scalePlan{elections: 200, candidates: 2, ttl: 20 * time.Second, window: 30 * time.Second}
			}),
		},
		{
			name: "-scale-window over -window", args: []string{"-window=30s", "-scale-window=90s"},
			want: with(false, func(o *options) {
				o.window, o.idle, o.scale.window = 30*time.Second, 30*time.Second, 90*time.Second
			}),
		},
		{name: "no elections", args: []string{"-scale-elections=-1"}, wantErr: "invalid -scale-elections=-1: want 1 or more"},
		{name: "no candidates", args: []string{"-scale-candidates=-3"}, wantErr: "invalid -scale-candidates=-3: want 1 or more"},
		{name: "a TTL of part seconds", args: []string{"-scale-ttl=2500ms"}, wantErr: "invalid -scale-ttl=2.5s: want whole seconds, 2s or more"},
		{name: "a TTL too short", args: []string{"-scale-ttl=1s"}, wantErr: "invalid -scale-ttl=1s: want whole seconds, 2s or more"},
		{name: "a negative window", args: []string{"-scale-window=-1s"}, wantErr: "invalid -scale-window=-1s: want a positive duration"},
		{name: "no window is the default", args: []string{"-window=0s"}, want: with(false, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.args)
			if errString(err) != tc.wantErr {
				t.Fatalf("parseArgs(%q): got error %v, want %q", tc.args, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(options{}, plan{}, scalePlan{})); diff != "" {
				t.Errorf("parseArgs(%q) (-want +got):\n%s", tc.args, diff)
			}
		})
	}
	if _, err := parseArgs([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseArgs(-h): got %v, want %v", err, flag.ErrHelp)
	}
}

func TestActiveAndModeFlags(t *testing.T) {
	for _, tc := range []struct {
		modes    []string
		hasWatch bool
		active   []string
		flags    map[string][]string
	}{
		{[]string{modeWatch, modePoll}, true, []string{modeWatch, modePoll},
			map[string][]string{modeWatch: {"-watch=true"}, modePoll: {"-watch=false"}}},
		{[]string{modePoll, modeWatch}, true, []string{modePoll, modeWatch},
			map[string][]string{modeWatch: {"-watch=true"}, modePoll: {"-watch=false"}}},
		// A binary without -watch polls: it gets no flag.
		{[]string{modeWatch, modePoll}, false, []string{modePoll},
			map[string][]string{modeWatch: nil, modePoll: nil}},
		{[]string{modeWatch}, false, nil, map[string][]string{modeWatch: nil}},
	} {
		b := &bench{modes: tc.modes, hasWatch: tc.hasWatch}
		if diff := cmp.Diff(tc.active, b.active()); diff != "" {
			t.Errorf("active of %v, hasWatch %v (-want +got):\n%s", tc.modes, tc.hasWatch, diff)
		}
		for mode, want := range tc.flags {
			if diff := cmp.Diff(want, b.modeFlags(mode)); diff != "" {
				t.Errorf("modeFlags(%s), hasWatch %v (-want +got):\n%s", mode, tc.hasWatch, diff)
			}
		}
	}
}
