package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func TestDistMedianMax(t *testing.T) {
	for _, tc := range []struct {
		name        string
		d           dist
		median, max float64
	}{
		{"one", dist{5}, 5, 5},
		{"odd, unsorted", dist{3, 1, 2}, 2, 3},
		{"even: the mean of the middle two", dist{4, 1, 3, 2}, 2.5, 4},
		{"two", dist{0.1, 0.3}, 0.2, 0.3},
		{"negative", dist{-2, -1, -3}, -2, -1},
		{"repeats", dist{7, 7, 1, 7}, 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.d)
			if got := tc.d.median(); got != tc.median {
				t.Errorf("median of %v: got %v, want %v", in, got, tc.median)
			}
			if got := tc.d.max(); got != tc.max {
				t.Errorf("max of %v: got %v, want %v", in, got, tc.max)
			}
			if !slices.Equal(tc.d, in) {
				t.Errorf("median reordered its figures: got %v, want %v", tc.d, in)
			}
		})
	}
}

func TestFmtSeconds(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want string
	}{
		{0, "0 µs"},
		{0.0005, "500 µs"},
		{-0.0005, "-500 µs"},
		{0.001, "1.00 ms"},
		{0.00123, "1.23 ms"},
		{-0.0042, "-4.20 ms"},
		{0.01, "10 ms"},
		{0.0999, "100 ms"},
		{0.5, "500 ms"},
		{-0.25, "-250 ms"},
		{1, "1.00 s"},
		{3.666666665, "3.67 s"},
		{-1.5, "-1.50 s"},
		{125, "125.00 s"},
	} {
		if got := fmtSeconds(tc.s); got != tc.want {
			t.Errorf("fmtSeconds(%v): got %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestFmtMemory(t *testing.T) {
	for _, tc := range []struct {
		b    int64
		want string
	}{
		{0, "0.0 MB"},
		{1_234_567, "1.2 MB"},
		{20_000_000, "20.0 MB"},
		{20_960_000, "21.0 MB"},
	} {
		if got := fmtMB(tc.b); got != tc.want {
			t.Errorf("fmtMB(%d): got %q, want %q", tc.b, got, tc.want)
		}
	}
	m := fleet.ProcMemory{RSS: 12_300_000, Anon: 4_500_000, File: 7_800_000}
	if got, want := fmtMemory(m), "12.3 MB (RssAnon 4.5 MB, RssFile 7.8 MB)"; got != want {
		t.Errorf("fmtMemory(%+v): got %q, want %q", m, got, want)
	}
}

func TestDistCell(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    dist
		want cell
		ok   bool
	}{
		{"none", nil, cell{}, false},
		{"one: no max", dist{0.2}, cell{0.2, "200 ms"}, true},
		{"several: median and max", dist{0.3, 0.1, 0.2}, cell{0.2, "200 ms (max 300 ms)"}, true},
		{"even", dist{1, 2, 3, 4}, cell{2.5, "2.50 s (max 4.00 s)"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := distCell(tc.d)
			if ok != tc.ok {
				t.Fatalf("distCell(%v) ok: got %v, want %v", tc.d, ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(cell{})); diff != "" {
				t.Errorf("distCell(%v) (-want +got):\n%s", tc.d, diff)
			}
		})
	}
}

func TestRateCell(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want cell
	}{
		{0, cell{0, "0.0"}},
		{0.04, cell{0, "0.0"}},    // noise: no "0.0" with a value behind it
		{-0.04, cell{0, "0.0"}},   // and no "-0.0"
		{0.05, cell{0.05, "0.1"}}, // the bound itself is kept
		{-0.2, cell{-0.2, "-0.2"}},
		{12.34, cell{12.34, "12.3"}},
	} {
		if diff := cmp.Diff(tc.want, rateCell(tc.v), cmp.AllowUnexported(cell{})); diff != "" {
			t.Errorf("rateCell(%v) (-want +got):\n%s", tc.v, diff)
		}
	}
}

func TestOnly(t *testing.T) {
	pass := func(r *modeResult) bool { return r.scaleLost == 0 }
	check := only(watchOnly, pass)
	for _, tc := range []struct {
		mode          string
		lost          int
		applies, want bool
	}{
		{modeWatch, 0, true, true},
		{modeWatch, 1, true, false},
		{modePoll, 0, false, false},
		{modePoll, 1, false, false},
	} {
		applies, ok := check(tc.mode, &modeResult{scaleLost: tc.lost})
		if applies != tc.applies || ok != tc.want {
			t.Errorf("only(watch) for %s with scaleLost %d: got (%v, %v), want (%v, %v)", tc.mode, tc.lost, applies, ok, tc.applies, tc.want)
		}
	}
}

func TestVerbAndRatioNames(t *testing.T) {
	for v, want := range map[string]string{
		"POST": "POST (create)", "PUT": "PUT (update)", "PATCH": "PATCH (patch)",
		"GET": "GET", "WATCH": "WATCH", "LIST": "LIST",
	} {
		if got := verbName(v); got != want {
			t.Errorf("verbName(%q): got %q, want %q", v, got, want)
		}
	}
	for _, tc := range []struct {
		modes []string
		want  string
	}{
		{[]string{modeWatch, modePoll}, "watch/poll"},
		{[]string{modePoll, modeWatch}, "watch/poll"},
		{[]string{modePoll}, ""},
		{[]string{modeWatch}, ""},
	} {
		if got := ratioName(tc.modes); got != tc.want {
			t.Errorf("ratioName(%v): got %q, want %q", tc.modes, got, tc.want)
		}
	}
}

// testBench returns a bench of both modes with a binary that has -watch, the
// plan of a full run, and no figures yet.
func testBench() *bench {
	return &bench{plan: newPlan(false), modes: []string{modeWatch, modePoll}, hasWatch: true,
		res: map[string]*modeResult{}, ref: newRefResult()}
}

func TestTableAddRow(t *testing.T) {
	// The figure is the shutdown time; the check passes when it is at most 1.
	get := func(r *modeResult) (cell, bool) {
		if len(r.shutdown) == 0 {
			return cell{}, false
		}
		return cell{r.shutdown[0], fmtSeconds(r.shutdown[0])}, true
	}
	atMost1 := target{text: "≤ 1 s", check: only(bothModes, func(r *modeResult) bool { return r.shutdown[0] <= 1 })}
	for _, tc := range []struct {
		name        string
		hasWatch    bool
		watch, poll dist // nil: no result for the mode; empty: no figure
		tg          target
		ratio       bool
		want        tableRow
	}{
		{
			name: "both modes, one fails", hasWatch: true, watch: dist{0.5}, poll: dist{2}, tg: atMost1, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "500 ms", modePoll: "2.00 s"},
				ratio: "0.25×", target: "≤ 1 s: watch ✓, poll ✗"},
		},
		{
			name: "both pass, at the bound", hasWatch: true, watch: dist{1}, poll: dist{1}, tg: atMost1, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "1.00 s", modePoll: "1.00 s"},
				ratio: "1.00×", target: "≤ 1 s: watch ✓, poll ✓"},
		},
		{
			name: "no ratio asked", hasWatch: true, watch: dist{0.5}, poll: dist{2}, tg: atMost1, ratio: false,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "500 ms", modePoll: "2.00 s"},
				ratio: "–", target: "≤ 1 s: watch ✓, poll ✗"},
		},
		{
			name: "a binary without -watch", hasWatch: false, watch: dist{0.5}, poll: dist{2}, tg: atMost1, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "n/a", modePoll: "2.00 s"},
				ratio: "–", target: "≤ 1 s: poll ✗"},
		},
		{
			name: "a mode not measured", hasWatch: true, watch: nil, poll: dist{0.5}, tg: atMost1, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "–", modePoll: "500 ms"},
				ratio: "–", target: "≤ 1 s: poll ✓"},
		},
		{
			name: "a mode without the figure", hasWatch: true, watch: dist{}, poll: dist{0.5}, tg: atMost1, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "–", modePoll: "500 ms"},
				ratio: "–", target: "≤ 1 s: poll ✓"},
		},
		{
			name: "no target", hasWatch: true, watch: dist{3}, poll: dist{2}, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "3.00 s", modePoll: "2.00 s"},
				ratio: "1.50×", target: "–"},
		},
		{
			name: "a target without a check", hasWatch: true, watch: dist{3}, poll: dist{2}, tg: target{text: "fast"}, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "3.00 s", modePoll: "2.00 s"},
				ratio: "1.50×", target: "fast"},
		},
		{
			name: "a check that does not apply", hasWatch: true, watch: dist{3}, poll: dist{2},
			tg: target{text: "watch fast", check: only(watchOnly, func(*modeResult) bool { return true })}, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "3.00 s", modePoll: "2.00 s"},
				ratio: "1.50×", target: "watch fast: watch ✓"},
		},
		{
			name: "poll zero: no ratio", hasWatch: true, watch: dist{3}, poll: dist{0}, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "3.00 s", modePoll: "0 µs"},
				ratio: "–", target: "–"},
		},
		{
			name: "watch negative: no ratio", hasWatch: true, watch: dist{-0.5}, poll: dist{2}, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "-500 ms", modePoll: "2.00 s"},
				ratio: "–", target: "–"},
		},
		{
			name: "watch zero: a ratio of 0", hasWatch: true, watch: dist{0}, poll: dist{2}, ratio: true,
			want: tableRow{metric: "m", cells: map[string]string{modeWatch: "0 µs", modePoll: "2.00 s"},
				ratio: "0.00×", target: "–"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBench()
			b.hasWatch = tc.hasWatch
			if tc.watch != nil {
				b.result(modeWatch).shutdown = tc.watch
			}
			if tc.poll != nil {
				b.result(modePoll).shutdown = tc.poll
			}
			tb := &table{b: b}
			tb.addRow("m", get, tc.tg, tc.ratio)
			if len(tb.rows) != 1 {
				t.Fatalf("rows: got %d, want 1", len(tb.rows))
			}
			if diff := cmp.Diff(tc.want, tb.rows[0], cmp.AllowUnexported(tableRow{})); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTableWithRef(t *testing.T) {
	b := testBench()
	b.ref.size = 7_000_000
	tb := &table{b: b}
	get := func(*modeResult) (cell, bool) { return cell{}, false }
	tb.add("first", get, target{})
	tb.add("second", get, target{})
	tb.withRef(func(r *refResult) (cell, bool) { return cell{float64(r.size), fmtMB(r.size)}, true })
	tb.add("third", get, target{})
	tb.withRef(func(*refResult) (cell, bool) { return cell{1, "ignored"}, false })
	var got []string
	for _, r := range tb.rows {
		got = append(got, r.ref)
	}
	if want := []string{"", "7.0 MB", ""}; !slices.Equal(got, want) {
		t.Errorf("refs: got %q, want %q", got, want)
	}
}

func TestTableAddRates(t *testing.T) {
	b := testBench()
	b.result(modeWatch).scalePerElection = rates{verbs: map[string]float64{"PUT": 6, "GET": 0.01, "WATCH": -0.04, "DELETE": -1}}
	b.result(modePoll).scalePerElection = rates{verbs: map[string]float64{"PUT": 6.3, "GET": 12}}
	tb := &table{b: b}
	putRule := target{text: "put rule"}
	tb.addRates("API", func(r *modeResult) (rates, bool) { return r.scalePerElection, r.scalePerElection.verbs != nil }, target{text: "total rule"}, putRule)
	// GET is seen in poll mode and DELETE, below 0, in watch mode; WATCH is
	// noise in every mode, so it has no row. The ratio is watch/poll of the
	// figure each cell shows, if neither is below 0.
	want := []tableRow{
		{metric: "API", cells: map[string]string{modeWatch: "5.0", modePoll: "18.3"}, ratio: "0.27×", target: "total rule"},
		{metric: "  · DELETE", cells: map[string]string{modeWatch: "-1.0", modePoll: "0.0"}, ratio: "–", target: "–"},
		{metric: "  · GET", cells: map[string]string{modeWatch: "0.0", modePoll: "12.0"}, ratio: "0.00×", target: "–"},
		{metric: "  · PUT (update)", cells: map[string]string{modeWatch: "6.0", modePoll: "6.3"}, ratio: "0.95×", target: "put rule"},
	}
	if diff := cmp.Diff(want, tb.rows, cmp.AllowUnexported(tableRow{})); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestTableRender(t *testing.T) {
	rows := []tableRow{
		{metric: "a", cells: map[string]string{modeWatch: "1", modePoll: "22"}, ratio: "0.05×", target: "t"},
		{metric: "bb", cells: map[string]string{modeWatch: "–", modePoll: "n/a"}, ratio: "–", target: "–", ref: "7 MB"},
	}
	for _, tc := range []struct {
		name  string
		modes []string
		rows  []tableRow
		want  []string
	}{
		{
			name: "with the reference column", modes: []string{modeWatch, modePoll}, rows: rows,
			want: []string{
				"| metric | watch | poll | client-go | ratio watch/poll | target |",
				"|--------|------:|-----:|----------:|-----------------:|--------|",
				"| a      |     1 |   22 |         – |            0.05× | t      |",
				"| bb     |     – |  n/a |      7 MB |                – | –      |",
			},
		},
		{
			name: "without: no row has a reference figure", modes: []string{modeWatch, modePoll}, rows: rows[:1],
			want: []string{
				"| metric | watch | poll | ratio watch/poll | target |",
				"|--------|------:|-----:|-----------------:|--------|",
				"| a      |     1 |   22 |            0.05× | t      |",
			},
		},
		{
			name: "one mode", modes: []string{modePoll}, rows: rows[:1],
			want: []string{
				"| metric | poll | ratio  | target |",
				"|--------|-----:|-------:|--------|",
				"| a      |   22 |  0.05× | t      |",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBench()
			b.modes = tc.modes
			tb := &table{b: b, rows: tc.rows}
			got := strings.Split(strings.TrimSuffix(tb.render(), "\n"), "\n")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("render (-want +got):\n%s", diff)
			}
		})
	}
}

// rowOf returns the row of t with the given metric.
func rowOf(t *testing.T, tb *table, metric string) tableRow {
	t.Helper()
	i := slices.IndexFunc(tb.rows, func(r tableRow) bool { return r.metric == metric })
	if i < 0 {
		var have []string
		for _, r := range tb.rows {
			have = append(have, r.metric)
		}
		t.Fatalf("no row %q; the rows:\n%s", metric, strings.Join(have, "\n"))
	}
	return tb.rows[i]
}

// TestRowsTargets checks each target of the table, the ✓ and ✗ of the
// strict rules, at and beyond their bounds.
func TestRowsTargets(t *testing.T) {
	const (
		graceful10 = "graceful failover (SIGTERM → new leader), TTL 10s, median (max) of 5"
		graceful3  = "graceful failover (SIGTERM → new leader), TTL 3s, median (max) of 5"
		crash10    = "crash failover (SIGKILL at a random instant between renewals → another holds the Lease), TTL 10s, median (max) of 7"
		crash3     = "crash failover (SIGKILL at a random instant between renewals → another holds the Lease), TTL 3s, median (max) of 7"
		leaderPUT  = "  · PUT (update)" // the first PUT row: the leader's at TTL 3s
		follower10 = "API req/min, each follower, TTL 10s"
		rssLeader  = "idle RSS, leader, after ≥ 1m0s idle, TTL 10s"
		rssFollow  = "idle RSS, follower (max of 2), after ≥ 1m0s idle, TTL 10s"
		p99        = "GET / latency p99 (client side)"
		bigFleet   = "scale: 1 election, 50 candidates, TTL 10s, API req/min, whole fleet (per candidate)"
		passedOver = "scale: 1 election, 50 candidates, TTL 10s, handover to a stopped successor: the release → another leads, median (max) of 3"
		lockWrites = "scale: 1 election, 50 candidates, TTL 10s, lock writes per graceful failover (409s included), median (max) of 3"
		handover   = "command: graceful handover (SIGTERM → the new leader's command starts), TTL 10s, median (max) of 5"
		cpu        = "command: leaders' CPU (utime+stime), 2 with a sleeping command vs 2 without, TTL 10s, 1m0s"
		switches   = "  voluntary context switches, 2 with vs 2 without"
	)
	put := func(n float64) rates { return rates{verbs: map[string]float64{"PUT": n}} }
	steadyAt := func(ttl time.Duration, s steady) func(*modeResult) {
		return func(r *modeResult) { r.steady[ttl] = s }
	}
	for _, tc := range []struct {
		name        string
		metric      string
		steadyTTL   time.Duration    // the only TTL of the steady state, if not 0
		ref         func(*refResult) // sets client-go's figures, if not nil
		watch, poll func(*modeResult)
		want        string
	}{
		{
			name: "graceful at the default TTL: both within", metric: graceful10,
			watch: func(r *modeResult) { r.graceful[defaultTTL] = dist{0.005, 0.01, 0.1} },
			poll:  func(r *modeResult) { r.graceful[defaultTTL] = dist{1, 3.6} },
			want:  "watch median ≤ 10 ms, max ≤ 100 ms; poll ≤ 2.2×RP = 3.67 s: watch ✓, poll ✓",
		},
		{
			name: "graceful at the default TTL: both beyond", metric: graceful10,
			watch: func(r *modeResult) { r.graceful[defaultTTL] = dist{0.005, 0.101} },
			poll:  func(r *modeResult) { r.graceful[defaultTTL] = dist{1, 3.7} },
			want:  "watch median ≤ 10 ms, max ≤ 100 ms; poll ≤ 2.2×RP = 3.67 s: watch ✗, poll ✗",
		},
		{
			name: "graceful at the default TTL: the median beyond", metric: graceful10,
			watch: func(r *modeResult) { r.graceful[defaultTTL] = dist{0.009, 0.011, 0.012} },
			want:  "watch median ≤ 10 ms, max ≤ 100 ms; poll ≤ 2.2×RP = 3.67 s: watch ✗",
		},
		{
			// A mode without the figure has a "–" and no verdict.
			name: "graceful at the default TTL: no figure, no verdict", metric: graceful10,
			watch: func(r *modeResult) {},
			poll:  func(r *modeResult) { r.graceful[defaultTTL] = dist{1} },
			want:  "watch median ≤ 10 ms, max ≤ 100 ms; poll ≤ 2.2×RP = 3.67 s: poll ✓",
		},
		{
			name: "a stopped successor: passed over within the window and 50 ms", metric: passedOver,
			watch: func(r *modeResult) { bigOf(r.big, 50).passedOver = dist{1.02, 1.05} },
			want:  "≤ window + 50 ms = 1.05 s (watch): watch ✓",
		},
		{
			name: "a stopped successor: passed over later", metric: passedOver,
			watch: func(r *modeResult) { bigOf(r.big, 50).passedOver = dist{1.02, 1.051} },
			want:  "≤ window + 50 ms = 1.05 s (watch): watch ✗",
		},
		{
			name: "lock writes per handover: at most 3", metric: lockWrites,
			watch: func(r *modeResult) { bigOf(r.big, 50).lockWrites = dist{2, 3, 2} },
			want:  "≤ 3 (watch): watch ✓",
		},
		{
			name: "lock writes per handover: 4 once", metric: lockWrites,
			watch: func(r *modeResult) { bigOf(r.big, 50).lockWrites = dist{2, 4, 2} },
			want:  "≤ 3 (watch): watch ✗",
		},
		{
			name: "graceful at TTL 3s: poll only, 2.2×RP = 1.1 s", metric: graceful3,
			watch: func(r *modeResult) { r.graceful[3*time.Second] = dist{5} },
			poll:  func(r *modeResult) { r.graceful[3*time.Second] = dist{0.6, 1.1} },
			want:  "poll ≤ 2.2×RP = 1.10 s: poll ✓",
		},
		{
			name: "graceful at TTL 3s: poll beyond", metric: graceful3,
			poll: func(r *modeResult) { r.graceful[3*time.Second] = dist{0.6, 1.11} },
			want: "poll ≤ 2.2×RP = 1.10 s: poll ✗",
		},
		{
			name: "crash: median and max within", metric: crash10,
			watch: func(r *modeResult) { r.crash[defaultTTL] = dist{9.0, 9.36, 10.2} },
			poll:  func(r *modeResult) { r.crash[defaultTTL] = dist{20} },
			want:  "watch: median ≤ TTL − renew interval/2 + 200 ms = 9.37 s, max ≤ TTL + 200 ms = 10.20 s: watch ✓",
		},
		{
			name: "crash: median beyond", metric: crash10,
			watch: func(r *modeResult) { r.crash[defaultTTL] = dist{9.0, 9.37, 9.5} },
			want:  "watch: median ≤ TTL − renew interval/2 + 200 ms = 9.37 s, max ≤ TTL + 200 ms = 10.20 s: watch ✗",
		},
		{
			name: "crash: max beyond", metric: crash10,
			watch: func(r *modeResult) { r.crash[defaultTTL] = dist{9.0, 9.1, 10.21} },
			want:  "watch: median ≤ TTL − renew interval/2 + 200 ms = 9.37 s, max ≤ TTL + 200 ms = 10.20 s: watch ✗",
		},
		{
			// TTL 3s: RP 0.5 s, so the median's bound is 3 − 0.25 + 0.2.
			name: "crash at TTL 3s", metric: crash3,
			watch: func(r *modeResult) { r.crash[3*time.Second] = dist{2.9, 2.94, 3.19} },
			want:  "watch: median ≤ TTL − renew interval/2 + 200 ms = 2.95 s, max ≤ TTL + 200 ms = 3.20 s: watch ✓",
		},
		{
			name: "leader's PUTs: half of client-go's", metric: leaderPUT,
			steadyTTL: defaultTTL,
			watch:     steadyAt(defaultTTL, steady{leader: put(17.1)}),
			poll:      steadyAt(defaultTTL, steady{leader: put(17.1)}),
			ref:       func(r *refResult) { r.leader = put(35.9) },
			want:      "PUT ≤ 0.5 × plain client-go's leader alone (the reference program), ± one request a window: watch ✓, poll ✓",
		},
		{
			name: "leader's PUTs: more than half", metric: leaderPUT,
			steadyTTL: defaultTTL,
			watch:     steadyAt(defaultTTL, steady{leader: put(20)}),
			ref:       func(r *refResult) { r.leader = put(35.9) },
			want:      "PUT ≤ 0.5 × plain client-go's leader alone (the reference program), ± one request a window: watch ✗",
		},
		{
			name: "leader's PUTs: no client-go figure to compare with", metric: leaderPUT,
			steadyTTL: defaultTTL,
			watch:     steadyAt(defaultTTL, steady{leader: put(17)}),
			want:      "PUT ≤ 0.5 × plain client-go's leader alone (the reference program), ± one request a window",
		},
		{
			name: "idle follower: 2 requests a minute", metric: follower10,
			watch: steadyAt(defaultTTL, steady{follower: rates{verbs: map[string]float64{"GET": 1.5, "WATCH": 0.5}}}),
			poll:  steadyAt(defaultTTL, steady{follower: rates{verbs: map[string]float64{"GET": 36}}}),
			want:  "idle follower ≤ 2 (watch): watch ✓",
		},
		{
			name: "idle follower: more", metric: follower10,
			watch: steadyAt(defaultTTL, steady{follower: rates{verbs: map[string]float64{"GET": 1.5, "WATCH": 0.6}}}),
			want:  "idle follower ≤ 2 (watch): watch ✗",
		},
		{
			name: "RSS of the leader", metric: rssLeader,
			watch: func(r *modeResult) { r.memLeader.RSS = 20e6 },
			poll:  func(r *modeResult) { r.memLeader.RSS = 20e6 + 1 },
			want:  "≤ 20 MB: watch ✓, poll ✗",
		},
		{
			name: "RSS of the follower", metric: rssFollow,
			watch: func(r *modeResult) { r.memFollower.RSS = 20e6 + 1 },
			poll:  func(r *modeResult) { r.memFollower.RSS = 19e6 },
			want:  "≤ 20 MB: watch ✗, poll ✓",
		},
		{
			name: "GET / p99", metric: p99,
			watch: func(r *modeResult) { r.load = loadResult{RPS: 1000, P99: time.Millisecond - 1} },
			poll:  func(r *modeResult) { r.load = loadResult{RPS: 1000, P99: time.Millisecond} },
			want:  "< 1 ms: watch ✓, poll ✗",
		},
		{
			name: "GET / p99 without a load run: no verdict", metric: p99,
			watch: func(r *modeResult) { r.load = loadResult{P99: time.Microsecond} },
			want:  "< 1 ms",
		},
		{
			// 50 candidates: 47 beyond the fleet of 3, 2 requests a minute each.
			name: "many candidates: at the bound", metric: bigFleet,
			watch: func(r *modeResult) {
				r.steady[defaultTTL] = steady{fleet: rates{verbs: map[string]float64{"PUT": 10}}}
				bigOf(r.big, 50).fleet = rates{verbs: map[string]float64{"PUT": 10, "GET": 94}}
			},
			want: "≤ fleet of 3 + 2 × 47 (watch): watch ✓",
		},
		{
			name: "many candidates: beyond", metric: bigFleet,
			watch: func(r *modeResult) {
				r.steady[defaultTTL] = steady{fleet: rates{verbs: map[string]float64{"PUT": 10}}}
				bigOf(r.big, 50).fleet = rates{verbs: map[string]float64{"PUT": 10, "GET": 94.5}}
			},
			want: "≤ fleet of 3 + 2 × 47 (watch): watch ✗",
		},
		{
			name: "many candidates: no steady state to compare with", metric: bigFleet,
			watch: func(r *modeResult) { bigOf(r.big, 50).fleet = rates{verbs: map[string]float64{"PUT": 10}} },
			want:  "≤ fleet of 3 + 2 × 47 (watch)",
		},
		{
			name: "command handover: 150 ms beyond the command's exit", metric: handover,
			watch: func(r *modeResult) { r.cmd.handover, r.cmd.lessExit = dist{0.2, 0.3}, dist{0.1, 0.15} },
			poll:  func(r *modeResult) { r.cmd.handover, r.cmd.lessExit = dist{2}, dist{2} },
			want:  "watch ≤ 150 ms + the command's own exit: watch ✓",
		},
		{
			name: "command handover: beyond", metric: handover,
			watch: func(r *modeResult) { r.cmd.handover, r.cmd.lessExit = dist{0.2, 0.3}, dist{0.1, 0.151} },
			want:  "watch ≤ 150 ms + the command's own exit: watch ✗",
		},
		{
			// with 1.0, 1.2 (mean 1.1) vs without 0.9, 1.0 (mean 0.95):
			// 0.15 beyond, and the spread is 0.2.
			name: "CPU with a command: within the spread", metric: cpu,
			watch: func(r *modeResult) {
				r.cmd.cpu = &cpuResult{window: time.Minute,
					with:    [2]procRates{{cpu: 1.0, resCPU: 0.1}, {cpu: 1.2}},
					without: [2]procRates{{cpu: 0.9}, {cpu: 1.0}}}
			},
			poll: func(r *modeResult) {
				// 1.5 beyond; no spread, and the rounding is 0.2.
				r.cmd.cpu = &cpuResult{window: time.Minute,
					with:    [2]procRates{{cpu: 2.5, resCPU: 0.2}, {cpu: 2.5}},
					without: [2]procRates{{cpu: 1.0}, {cpu: 1.0}}}
			},
			want: "no cost: with ≤ without + spread: watch ✓, poll ✗",
		},
		{
			// with 3, 3 vs without 1, 1: 2 beyond, no spread, but the
			// rounding of one switch over the window is 2.
			name: "context switches: within the rounding", metric: switches,
			watch: func(r *modeResult) {
				r.cmd.cpu = &cpuResult{window: time.Minute,
					with:    [2]procRates{{vol: 3, resCount: 2}, {vol: 3}},
					without: [2]procRates{{vol: 1}, {vol: 1}}}
			},
			poll: func(r *modeResult) {
				r.cmd.cpu = &cpuResult{window: time.Minute,
					with:    [2]procRates{{vol: 3, resCount: 1.9}, {vol: 3}},
					without: [2]procRates{{vol: 1}, {vol: 1}}}
			},
			want: "no cost: with ≤ without + spread: watch ✓, poll ✗",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBench()
			b.baseline = rates{verbs: map[string]float64{}}
			if tc.steadyTTL != 0 {
				b.steadyTTL = []time.Duration{tc.steadyTTL}
			}
			if tc.ref != nil {
				tc.ref(&b.ref)
			}
			for mode, set := range map[string]func(*modeResult){modeWatch: tc.watch, modePoll: tc.poll} {
				if set != nil {
					set(b.result(mode))
				}
			}
			if got := rowOf(t, b.rows(), tc.metric).target; got != tc.want {
				t.Errorf("target of %q: got %q, want %q", tc.metric, got, tc.want)
			}
		})
	}
}

func TestRowsCells(t *testing.T) {
	b := testBench()
	b.hasWatch = false
	b.ref.mem = fleet.ProcMemory{RSS: 9_000_000, Anon: 2_000_000, File: 7_000_000}
	b.ref.crash[defaultTTL] = dist{9.5, 9.7, 9.6}
	p := b.result(modePoll)
	p.crash[defaultTTL] = dist{10, 11}
	p.memLeader = fleet.ProcMemory{RSS: 15_000_000, Anon: 5_000_000, File: 10_000_000}
	p.memFollower = fleet.ProcMemory{RSS: 14_000_000, Anon: 4_000_000, File: 9_500_000}
	bigOf(p.big, 50).burst = []rates{
		{verbs: map[string]float64{"PUT": 3, "GET": 4}, conflicts: 1},
		{verbs: map[string]float64{"PUT": 5, "GET": 6}, conflicts: 3},
		{verbs: map[string]float64{"PUT": 1}, conflicts: 0},
	}
	bigOf(p.big, 50).fleet = rates{verbs: map[string]float64{"GET": 50, "PUT": 10}}
	bigOf(b.ref.big, 50).burst = []rates{{verbs: map[string]float64{"PUT": 47, "GET": 44}, conflicts: 44}}
	bigOf(b.ref.big, 50).failover = dist{0.9, 1.2, 1.5}
	bigOf(b.ref.big, 50).lockWrites = dist{46, 48, 45}
	bigOf(p.big, 50).lockWrites = dist{2, 3, 2}
	b.ref.graceful = dist{0.6, 0.9, 1.4}
	p.steady[defaultTTL] = steady{fleet: rates{verbs: map[string]float64{"GET": 30, "PUT": 6}, conflicts: 0.5}, watches: 0.333}
	p.load = loadResult{RPS: 4000, P50: 200 * time.Microsecond, P99: 900 * time.Microsecond}
	p.loadOne = loadResult{RPS: 2500.4, P99: 500 * time.Microsecond}
	tb := b.rows()
	for _, tc := range []struct {
		metric string
		want   tableRow
	}{
		{"crash failover (SIGKILL at a random instant between renewals → another holds the Lease), TTL 10s, median (max) of 7", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "10.50 s (max 11.00 s)"}, ref: "9.60 s (max 9.70 s)", ratio: "–",
			target: "watch: median ≤ TTL − renew interval/2 + 200 ms = 9.37 s, max ≤ TTL + 200 ms = 10.20 s"}},
		{"idle RSS, leader, after ≥ 1m0s idle, TTL 10s", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "15.0 MB"}, ref: "9.0 MB", ratio: "–", target: "≤ 20 MB: poll ✓"}},
		{"  of which RssFile (file-backed: shared, reclaimable), leader / follower", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "10.0 / 9.5 MB"}, ref: "7.0 MB", ratio: "–", target: "–"}},
		{"API req/min per elector, fleet of 3, TTL 10s", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "12.0"}, ratio: "–", target: "–"}},
		{"  409 conflicts/min, whole fleet of 3, TTL 10s", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "0.5"}, ratio: "–", target: "–"}},
		{"  open lease watches per elector, TTL 10s", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "0.33"}, ratio: "–", target: "–"}},
		{"API req/min per elector, fleet of 3, TTL 3s", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "–"}, ratio: "–", target: "–"}},
		// Totals 7, 11 and 1: median 7; conflicts 1, 3, 0: median 1.
		{"scale: 1 election, 50 candidates, TTL 10s, API requests per graceful failover (409s), median of 3", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "7 (1)"}, ref: "91 (44)", ratio: "–", target: "–"}},
		{"scale: 1 election, 50 candidates, TTL 10s, lock writes per graceful failover (409s included), median (max) of 3", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "2 (max 3)"}, ref: "46 (max 48)", ratio: "–", target: "≤ 3 (watch)"}},
		{"scale: 1 election, 50 candidates, TTL 10s, graceful failover, median (max) of 3", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "–"}, ref: "1.20 s (max 1.50 s)", ratio: "–", target: "median ≤ 10 ms (watch)"}},
		{"graceful failover (SIGTERM → new leader), TTL 10s, median (max) of 5", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "–"}, ref: "900 ms (max 1.40 s)", ratio: "–", target: "watch median ≤ 10 ms, max ≤ 100 ms; poll ≤ 2.2×RP = 3.67 s"}},
		{"scale: 1 election, 50 candidates, TTL 10s, API req/min, whole fleet (per candidate)", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "60.0 (1.20)"}, ratio: "–", target: "≤ fleet of 3 + 2 × 47 (watch)"}},
		{"GET / latency p50 (client side)", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "200 µs"}, ratio: "–", target: "–"}},
		{"GET / with 1 connection, 2s: throughput, p99", tableRow{
			cells: map[string]string{modeWatch: "n/a", modePoll: "2500 req/s, 500 µs"}, ratio: "–", target: "–"}},
	} {
		t.Run(tc.metric, func(t *testing.T) {
			tc.want.metric = tc.metric
			if diff := cmp.Diff(tc.want, rowOf(t, tb, tc.metric), cmp.AllowUnexported(tableRow{})); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModeWarnings(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		watchWatches, pollWs float64
		orphans              int
		want                 []string
	}{
		{name: "each mode as labelled", watchWatches: 1, pollWs: 0.49},
		{name: "the poll column watched", watchWatches: 0.5, pollWs: 0.5, want: []string{
			"the poll column is not plain polling: at TTL 10s the API server saw 0.50 open lease watches per elector (the binary watches without -watch=false, or ignores it)",
		}},
		{name: "the watch column did not", watchWatches: 0.49, pollWs: 0, want: []string{
			"the watch column did not watch: at TTL 10s the API server saw 0.49 open lease watches per elector",
		}},
		{name: "orphaned commands come first", watchWatches: 1, orphans: 2, want: []string{
			"watch: 2 commands still ran 2 s after their elector's SIGKILL (the bench killed them)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBench()
			b.steadyTTL = []time.Duration{3 * time.Second, defaultTTL}
			b.result(modeWatch).steady[defaultTTL] = steady{watches: tc.watchWatches}
			b.result(modeWatch).cmd.orphans = tc.orphans
			b.result(modePoll).steady[defaultTTL] = steady{watches: tc.pollWs}
			if diff := cmp.Diff(tc.want, b.modeWarnings()); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
