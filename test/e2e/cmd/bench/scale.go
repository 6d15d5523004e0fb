package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// The campaigners of the scale experiment: the scale program's -impl.
const (
	implElector  = "elector"
	implGroup    = "group"
	implClientGo = "clientgo"
)

// groupMemoryLimitMiB is the Go runtime's soft memory limit of the second
// run of one Group (GOMEMLIMIT): the RSS a user gets by setting one.
const groupMemoryLimitMiB = 32

// scaleStopLimit is how long the scale program has to exit after SIGTERM
// before it is killed.
const scaleStopLimit = time.Minute

// The start-up of thousands of candidates at once is a herd: requests time
// out, and k8s-elector retries a failed write of a candidate Lease a minute
// later, all in the same second. The steady window starts once no candidate
// has logged a failure for scaleQuiet, longer than that minute, or after
// scaleQuietLimit in any case (the failures in the window are then shown).
const (
	scaleQuiet      = 65 * time.Second
	scaleQuietLimit = 5 * time.Minute
)

// scalePlan is the shape of the scale experiment: many elections of several
// candidates each, every candidate with a client of its own, all in one
// process.
type scalePlan struct {
	elections, candidates int
	ttl                   time.Duration
	window                time.Duration // the steady window once every election has a leader
}

// set applies the command line's -scale-* flags; 0 keeps the default.
func (p *scalePlan) set(elections, candidates int, ttl, window time.Duration) error {
	switch {
	case elections < 0:
		return fmt.Errorf("invalid -scale-elections=%d: want 1 or more", elections)
	case candidates < 0:
		return fmt.Errorf("invalid -scale-candidates=%d: want 1 or more", candidates)
	case ttl < 0 || ttl > 0 && (ttl < 2*time.Second || ttl%time.Second != 0):
		return fmt.Errorf("invalid -scale-ttl=%s: want whole seconds, 2s or more", ttl)
	case window < 0:
		return fmt.Errorf("invalid -scale-window=%s: want a positive duration", window)
	}
	p.elections = cmp.Or(elections, p.elections)
	p.candidates = cmp.Or(candidates, p.candidates)
	p.ttl = cmp.Or(ttl, p.ttl)
	p.window = cmp.Or(window, p.window)
	return nil
}

// String names the experiment as the table does: "1,000 elections × 3
// candidates, TTL 10s".
func (p scalePlan) String() string {
	return fmt.Sprintf("%s elections × %d candidates, TTL %s", thousands(p.elections), p.candidates, p.ttl)
}

// leadLimit is how long every election may take to get a leader.
func (p scalePlan) leadLimit() time.Duration {
	return 2*time.Minute + time.Duration(p.elections*p.candidates)*30*time.Millisecond
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// scaleResult is what one run of the scale experiment measured.
type scaleResult struct {
	failed    string        // why the run has no steady window: not every election got a leader
	allLead   time.Duration // from the start of the process until every election has a leader
	startup   time.Duration // from the start of the process until the window
	quiet     bool          // no failure was logged for scaleQuiet before the window
	failures  int           // failures logged during the window
	rates     rates         // API requests on leases per minute over the window, less the baseline
	watches   float64       // open lease watches at the window's end, less the baseline's
	apiserver cpuFigure     // kube-apiserver's CPU over the window
	etcd      cpuFigure     // etcd's
	worker    cpuFigure     // the process's own
	rss       int64         // VmRSS of the process at the window's end
	terms     int           // terms started during the window: leadership lost and regained
	exit      workerExit    // SIGTERM → exit of the process
}

// scaleFleet runs the scale experiment: in watch mode (k8s-elector's
// default) with the elector library, and after the last mode with plain
// client-go, one run after the other in the same shape.
func (b *bench) scaleFleet(ctx context.Context, mode string) error {
	if mode == modeWatch {
		r := b.result(mode)
		var err error
		if r.scale, err = b.scaleRun(ctx, implElector, b.scale.candidates); err != nil {
			return fmt.Errorf("k8s-elector: %w", err)
		}
		// The same shape as Groups, one per candidate, as replicas that
		// shard their work run it; then one Group alone.
		if r.scaleGroups, err = b.scaleRun(ctx, implGroup, b.scale.candidates); err != nil {
			return fmt.Errorf("k8s-elector Groups: %w", err)
		}
		if r.groupOne, err = b.scaleRun(ctx, implGroup, 1); err != nil {
			return fmt.Errorf("k8s-elector, one Group: %w", err)
		}
		if r.groupOneLimited, err = b.scaleRun(ctx, implGroup, 1, fmt.Sprintf("-memory-limit-mib=%d", groupMemoryLimitMiB)); err != nil {
			return fmt.Errorf("k8s-elector, one Group with a memory limit: %w", err)
		}
	} else {
		b.logf("k8s-elector's elections run in watch mode, the default, only")
	}
	if a := b.active(); mode != a[len(a)-1] {
		return nil
	}
	res, err := b.scaleRun(ctx, implClientGo, b.scale.candidates)
	if err != nil {
		return fmt.Errorf("client-go: %w", err)
	}
	b.ref.scale = res
	return nil
}

// scaleRun runs the scale program with impl and candidates candidates per
// election, waits until every election has a leader, measures one window,
// stops the program and deletes its Leases.
func (b *bench) scaleRun(ctx context.Context, impl string, candidates int, extra ...string) (*scaleResult, error) {
	p := b.scale
	p.candidates = candidates
	prefix := fmt.Sprintf("scale-%s%d%s", impl, candidates, strings.Repeat("x", len(extra)))
	impl = strings.Join(append([]string{fmt.Sprintf("%s ×%d", impl, candidates)}, extra...), " ")
	b.logf("%s: %s, starting %s candidates in one process", impl, p, thousands(p.elections*p.candidates))
	args := []string{"-kubeconfig=" + b.kubecfg, "-namespace=" + b.namespace, "-prefix=" + prefix,
		"-n=" + strconv.Itoa(p.elections), "-candidates=" + strconv.Itoa(p.candidates),
		"-impl=" + strings.Fields(impl)[0], "-own-clients", "-ttl=" + p.ttl.String()}
	w, err := b.startWorker(ctx, append(args, extra...)...)
	if err != nil {
		return nil, err
	}
	r := &scaleResult{}
	// Also when the run fails: its log tells why.
	defer func() {
		r.exit = w.stop(scaleStopLimit)
		if r.exit.err != nil {
			b.logf("%s: %v\n%s", impl, r.exit.err, w.tail())
		} else {
			b.logf("%s: the process exited %s after SIGTERM", impl, fmtSeconds(r.exit.took.Seconds()))
		}
		for _, line := range w.summary() {
			b.logf("%s: %s", impl, line)
		}
		if err := b.deleteLeases(context.WithoutCancel(ctx), prefix+"-"); err != nil {
			b.logf("%s: deleting the Leases: %v", impl, err)
		}
	}()
	if r.allLead, err = w.waitLeading(ctx, p.elections, p.leadLimit(), b.logf); err != nil {
		// A result of its own: the table says so, and the bench goes on.
		var nl *notLeadingError
		if !errors.As(err, &nl) {
			return nil, err
		}
		r.failed = nl.summary()
		b.logf("%s: %s: no steady state to measure", impl, r.failed)
		return r, nil
	}
	b.logf("%s: all %d elections have a leader after %s", impl, p.elections, r.allLead.Round(time.Millisecond))
	if err := sleep(ctx, settle(p.ttl)+2*time.Second); err != nil {
		return nil, err
	}
	if r.quiet, err = w.waitQuiet(ctx, scaleQuiet, scaleQuietLimit); err != nil {
		return nil, err
	}
	r.startup = time.Since(w.started)
	if !r.quiet {
		b.logf("%s: the candidates still log failures %s after the start: measuring all the same", impl, r.startup.Round(time.Second))
	} else {
		b.logf("%s: no failure logged for %s, %s after the start", impl, scaleQuiet, r.startup.Round(time.Second))
	}
	pid := w.cmd.Process.Pid
	before, _ := w.next()
	cpu := startCPU(append(b.serverProbes(), cpuProbe{name: "the process", pid: func() (int, error) { return pid, nil }})...)
	win, err := b.measureWindow(ctx, p.window)
	if err != nil {
		return nil, err
	}
	figs := cpu.end(b.tick())
	r.apiserver, r.etcd, r.worker = figs[0], figs[1], figs[2]
	after, _ := w.next()
	r.terms = after.terms - before.terms
	r.failures = after.failures - before.failures
	r.rates = win.rates.plus(-1, b.baseline)
	r.watches = win.watches - b.baseWatches
	if r.rss, err = fleet.ProcRSS(pid); err != nil {
		return nil, err
	}
	b.logf("%s: %.1f API requests/s (%s), %.0f open lease watches; CPU kube-apiserver %s, etcd %s, the process %s; RSS %s; %d terms started and %d failures logged in the window, %d of %d elections lead at its end",
		impl, r.rates.total()/60, r.rates, r.watches, r.apiserver, r.etcd, r.worker, fmtMB(r.rss), r.terms, r.failures, after.leading, p.elections)
	return r, nil
}

// serverProbes are kube-apiserver and etcd, local processes only with the
// local control plane.
func (b *bench) serverProbes() []cpuProbe {
	if b.cp == nil {
		na := "-kubeconfig: the API server is not a process of this bench"
		return []cpuProbe{{name: "kube-apiserver", na: na}, {name: "etcd", na: na}}
	}
	return []cpuProbe{{name: "kube-apiserver", pid: b.cp.APIServerPID}, {name: "etcd", pid: b.cp.EtcdPID}}
}

// tick returns CLK_TCK, the unit of /proc's CPU times, once per run.
func (b *bench) tick() int64 {
	b.tickOnce.Do(func() {
		var err error
		if b.clockTick, err = clockTick(); err != nil {
			b.logf("%v", err)
		}
	})
	return b.clockTick
}

// deleteLeases deletes the Leases of the benchmark namespace whose names
// start with prefix: what a run of the scale experiment leaves behind, so
// that the next one starts on the same store.
func (b *bench) deleteLeases(ctx context.Context, prefix string) error {
	cfg := rest.CopyConfig(b.admin)
	cfg.QPS, cfg.Burst = 500, 500
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	leases := client.CoordinationV1().Leases(b.namespace)
	list, err := leases.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	names := make(chan string)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 8 {
		wg.Go(func() {
			for name := range names {
				if err := leases.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	n := 0
	for _, l := range list.Items {
		if strings.HasPrefix(l.Name, prefix) {
			names <- l.Name
			n++
		}
	}
	close(names)
	wg.Wait()
	b.logf("deleted %d Leases named %s*", n-len(errs), prefix)
	return errors.Join(errs...)
}

// scaleWarnings name the runs of the scale experiment that measured no
// steady state.
func (b *bench) scaleWarnings() []string {
	var w []string
	for _, run := range []struct {
		name string
		r    *scaleResult
	}{{"k8s-elector", b.ourScale()}, {"k8s-elector Groups", b.ourRun(func(r *modeResult) *scaleResult { return r.scaleGroups })},
		{"one k8s-elector Group", b.ourRun(func(r *modeResult) *scaleResult { return r.groupOne })}, {refColumn, b.ref.scale}} {
		switch {
		case run.r == nil:
		case run.r.failed != "":
			w = append(w, fmt.Sprintf("scale, %s: %s, so the run has no steady window", run.name, run.r.failed))
		case !run.r.quiet:
			w = append(w, fmt.Sprintf("scale, %s: the candidates still logged failures %s after the start, so its window is not a steady state",
				run.name, run.r.startup.Round(time.Second)))
		}
	}
	return w
}

// scaleRows adds the rows of the scale experiment: k8s-elector's figures
// in the watch column, client-go's beside them.
func (b *bench) scaleRows(t *table) {
	label := b.scale.String() + ": "
	row := func(metric string, get func(*scaleResult) (cell, bool)) {
		t.add(label+metric, func(r *modeResult) (cell, bool) {
			if r.scale == nil {
				return cell{}, false
			}
			return get(r.scale)
		}, target{})
		t.withRef(func(r *refResult) (cell, bool) {
			if r.scale == nil {
				return cell{}, false
			}
			return get(r.scale)
		})
	}
	for _, r := range scaleRowsOf(b.scaleVerbs()) {
		row(r.metric, r.get)
	}
	groups := fmt.Sprintf("%s as %d elector.Groups, one per candidate: ", b.scale, b.scale.candidates)
	for _, r := range scaleRowsOf(b.scaleVerbs()) {
		t.add(groups+r.metric, func(m *modeResult) (cell, bool) {
			if m.scaleGroups == nil {
				return cell{}, false
			}
			return r.get(m.scaleGroups)
		}, target{})
	}
	b.groupOneRows(t)
}

// groupOneRows adds the rows of the elections in one Group, one candidate
// each, with the targets: the RSS, one watch for the namespace's
// Leases, and no request but the leaders' renewals.
func (b *bench) groupOneRows(t *table) {
	label := fmt.Sprintf("%s elections in 1 process (one elector.Group), TTL %s: ", thousands(b.scale.elections), b.scale.ttl)
	of := func(get func(*scaleResult) (cell, bool)) func(*modeResult) (cell, bool) {
		return func(m *modeResult) (cell, bool) {
			if m.groupOne == nil || m.groupOne.failed != "" {
				return cell{}, false
			}
			return get(m.groupOne)
		}
	}
	check := func(ok func(*scaleResult) bool) func(string, *modeResult) (bool, bool) {
		return only(watchOnly, func(m *modeResult) bool { return m.groupOne != nil && m.groupOne.failed == "" && ok(m.groupOne) })
	}
	t.add(label+"RSS", of(func(s *scaleResult) (cell, bool) { return cell{float64(s.rss), fmtMB(s.rss)}, true }),
		target{text: "≤ 60 MB", check: check(func(s *scaleResult) bool { return s.rss <= 60e6 })})
	t.add(label+fmt.Sprintf("RSS with GOMEMLIMIT=%dMiB", groupMemoryLimitMiB), func(m *modeResult) (cell, bool) {
		if s := m.groupOneLimited; s != nil && s.failed == "" {
			return cell{float64(s.rss), fmtMB(s.rss)}, true
		}
		return cell{}, false
	}, target{})
	// A limit below what the program needs makes the collector run all the
	// time: its CPU, beside the run without a limit, says what the RSS cost.
	t.add(label+fmt.Sprintf("CPU s/min of the process, without a limit / with GOMEMLIMIT=%dMiB", groupMemoryLimitMiB), func(m *modeResult) (cell, bool) {
		s, l := m.groupOne, m.groupOneLimited
		if s == nil || l == nil || s.failed != "" || l.failed != "" {
			return cell{}, false
		}
		return cell{l.worker.perMin, fmt.Sprintf("%s / %s", cpuCell(s.worker).text, cpuCell(l.worker).text)}, true
	}, target{})
	t.add(label+"open watches on the API server (apiserver_longrunning_requests, less the baseline)",
		of(func(s *scaleResult) (cell, bool) { return cell{s.watches, fmt.Sprintf("%.0f", s.watches)}, true }),
		target{text: "1 (Leases, one namespace)", check: check(func(s *scaleResult) bool { return s.watches <= 1 })})
	renewals := 60 / elector.DefaultTimings(b.scale.ttl).RenewInterval.Seconds() * float64(b.scale.elections)
	t.add(label+"API requests/min", of(func(s *scaleResult) (cell, bool) {
		return cell{s.rates.total(), s.rates.String()}, true
	}), target{
		text: fmt.Sprintf("the leaders' renewals only: PUT ≈ %.0f", renewals),
		check: check(func(s *scaleResult) bool {
			return s.rates.total()-s.rates.verbs["PUT"] < 1 && s.rates.verbs["PUT"] <= renewals*1.02
		}),
	})
	t.add(label+"time until every election has a leader",
		of(func(s *scaleResult) (cell, bool) {
			return cell{s.allLead.Seconds(), fmtSeconds(s.allLead.Seconds())}, true
		}), target{})
}

// ourRun returns a run of the scale experiment in watch mode, nil if none.
func (b *bench) ourRun(get func(*modeResult) *scaleResult) *scaleResult {
	if r := b.res[modeWatch]; r != nil {
		return get(r)
	}
	return nil
}

// ourScale returns k8s-elector's run of the scale experiment, nil if none.
func (b *bench) ourScale() *scaleResult {
	if r := b.res[modeWatch]; r != nil {
		return r.scale
	}
	return nil
}

// scaleVerbs are the verbs of the requests either run saw.
func (b *bench) scaleVerbs() []string {
	verbs := map[string]bool{}
	for _, s := range []*scaleResult{b.ourScale(), b.ref.scale} {
		if s == nil {
			continue
		}
		for v, n := range s.rates.verbs {
			if n >= 0.05 || n <= -0.05 {
				verbs[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(verbs))
}

// scaleMetric is one row of the scale experiment.
type scaleMetric struct {
	metric string
	get    func(*scaleResult) (cell, bool)
}

// scaleRowsOf returns the rows of the scale experiment, with one for each
// of verbs. A run that failed shows why in the first and has no other
// figure.
func scaleRowsOf(verbs []string) []scaleMetric {
	var rows []scaleMetric
	for i, f := range scaleFigures(verbs) {
		rows = append(rows, scaleMetric{f.metric, func(s *scaleResult) (cell, bool) {
			switch {
			case s.failed == "":
				return f.get(s), true
			case i == 0:
				return cell{-1, s.failed}, true
			}
			return cell{}, false
		}})
	}
	return rows
}

// scaleFigure is one figure of a run of the scale experiment that did not
// fail.
type scaleFigure struct {
	metric string
	get    func(*scaleResult) cell
}

// scaleFigures returns the figures of the scale experiment, with one for
// each of verbs.
func scaleFigures(verbs []string) []scaleFigure {
	perSecond := func(v float64) cell { return rateCell(v / 60) }
	rows := []scaleFigure{
		{"time until every election has a leader", func(s *scaleResult) cell {
			return cell{s.allLead.Seconds(), fmtSeconds(s.allLead.Seconds())}
		}},
		{fmt.Sprintf("start → window (every election led, then no failure logged for %s)", scaleQuiet), func(s *scaleResult) cell {
			if !s.quiet {
				return cell{s.startup.Seconds(), fmt.Sprintf("%s, still failing", fmtSeconds(s.startup.Seconds()))}
			}
			return cell{s.startup.Seconds(), fmtSeconds(s.startup.Seconds())}
		}},
		{"API requests/s", func(s *scaleResult) cell { return perSecond(s.rates.total()) }},
	}
	for _, v := range verbs {
		rows = append(rows, scaleFigure{"  · " + verbName(v), func(s *scaleResult) cell { return perSecond(s.rates.verbs[v]) }})
	}
	rows = append(rows,
		scaleFigure{"  409 conflicts/s", func(s *scaleResult) cell { return perSecond(s.rates.conflicts) }},
		scaleFigure{"open lease watches", func(s *scaleResult) cell { return cell{s.watches, fmt.Sprintf("%.0f", s.watches)} }},
		scaleFigure{"kube-apiserver CPU s/min", func(s *scaleResult) cell { return cpuCell(s.apiserver) }},
		scaleFigure{"etcd CPU s/min", func(s *scaleResult) cell { return cpuCell(s.etcd) }},
		scaleFigure{"RSS of the process", func(s *scaleResult) cell { return cell{float64(s.rss), fmtMB(s.rss)} }},
		scaleFigure{"CPU s/min of the process", func(s *scaleResult) cell { return cpuCell(s.worker) }},
		scaleFigure{"terms started in the window (leadership lost and regained)", func(s *scaleResult) cell {
			return cell{float64(s.terms), strconv.Itoa(s.terms)}
		}},
		scaleFigure{"failures logged in the window (failed requests, mostly)", func(s *scaleResult) cell {
			return cell{float64(s.failures), strconv.Itoa(s.failures)}
		}},
		scaleFigure{"SIGTERM → exit of the process", func(s *scaleResult) cell {
			if s.exit.killed {
				return cell{-1, "killed after " + s.exit.took.Round(time.Second).String()}
			}
			return cell{s.exit.took.Seconds(), fmtSeconds(s.exit.took.Seconds())}
		}},
	)
	return rows
}

// cpuCell shows a CPU figure in seconds per minute, or n/a and why.
func cpuCell(f cpuFigure) cell {
	if f.na != "" {
		return cell{-1, "n/a: " + f.na}
	}
	return cell{f.perMin, fmt.Sprintf("%.2f", f.perMin)}
}

// scaleNotes say how the scale experiment is measured, if it ran.
func (b *bench) scaleNotes() []string {
	if b.ourScale() == nil && b.ref.scale == nil {
		return nil
	}
	p := b.scale
	t := fmt.Sprintf("RenewDeadline %s, RetryPeriod %s", fmtSeconds(p.ttl.Seconds()/3), fmtSeconds(p.ttl.Seconds()/6))
	notes := []string{
		fmt.Sprintf("Scale, %s: one process (cmd/bench/internal/scaleworker, stripped) runs %s candidates, %d in each of %s elections on Leases of one namespace, every candidate with a clientset of its own built from the kubeconfig, on an HTTP transport and so a connection of its own, as separate Pods have (client-go would otherwise share one transport in a process). Two runs, one after the other: k8s-elector (elector.New with WithClient, WithNamespace, WithID, WithTTL, WithLogger: watch mode, its default; candidate Leases included) in the watch column, and in the %s column client-go's leaderelection.LeaderElector with a resourcelock.LeaseLock, LeaseDuration %s, %s (k8s-elector's defaults), ReleaseOnCancel; a client-go candidate whose term ends starts a fresh LeaderElector, as a restarted Pod would. Each run has Leases of its own name prefix, deleted after it. The candidates authenticate as the bench's admin (system:masters), which API Priority and Fairness exempts from its queues.",
			p, thousands(p.elections*p.candidates), p.candidates, thousands(p.elections), refColumn, p.ttl, t),
		fmt.Sprintf("Scale, how: once every election has a leader (the program reports each election led by one of its candidates every 250 ms; limit %s), a retry period and 2 s after, and once its candidates have logged no failure (an error, or a line with an err value) for %s (k8s-elector retries a candidate Lease write that failed in the start-up herd a minute later; limit %s, after which it measures all the same and says so), one %s window: API requests per second on leases from apiserver_request_total as above, less the baseline, by verb, with the 409 answers among them; open lease watches (apiserver_longrunning_requests{verb=\"WATCH\"}) at its end less the baseline's; CPU seconds per minute of kube-apiserver, etcd and the program from utime+stime in /proc/<pid>/stat sampled at its start and end (CLK_TCK %d ticks a second, from getconf), n/a against a cluster of -kubeconfig; the program's VmRSS at its end; the terms its candidates started and the failures they logged during it. Then SIGTERM, and its exit is timed (limit %s, then SIGKILL).",
			p.leadLimit().Round(time.Second), scaleQuiet, scaleQuietLimit, p.window, b.tick(), scaleStopLimit),
	}
	return notes
}
