package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/appstub"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// Timing of the readiness scenarios (-ready-url).
const (
	// takeoverWithin is the bound on a takeover through the watch:
	// from a leader's step-down (it released the lock), or from the moment
	// the only ready replica's application became ready, to a new leader.
	takeoverWithin = time.Second
	// shortTTL gives a retry period, and so a probe period, of 500ms.
	shortTTL = 3 * time.Second
	// probeSlack is what a loaded 2-core machine may add to a probe period
	// (the timer, the probe's own round trip) and to a step-down.
	probeSlack = 500 * time.Millisecond
	// readyElection is the election of every readiness scenario, each in a
	// namespace of its own.
	readyElection = "ready"
)

// The candidacy gate's log messages.
const (
	msgNotCampaigning = "the application is not ready: not campaigning"
	msgLeaderNotReady = "the application is not ready"
	msgSteppingDown   = "the application failed its checks: stepping down"
	msgCampaigning    = "the application is ready: campaigning"
)

// TestReadiness runs fleets of three electors with -ready-url, each with an
// application of its own (an HTTP server in the test) whose readiness the
// test flips and whose probes it records, and checks the invariants of
// TestFault over every elector's answers beside what each scenario is
// about: a leader whose application fails steps down at the N-th failed
// probe and a ready replica takes over within a second; a replica whose
// application is not ready never leads, never writes the lock, and says
// candidate false; with no application ready nobody leads, and each
// elector says why once.
//
// The scenarios run in parallel as TestFault's do.
func TestReadiness(t *testing.T) {
	parallelParent(t)
	scenarios := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"leader's application fails, default failures", func(t *testing.T) { readinessLeaderFails(t, ttl, 0) }},
		{"leader's application fails, one failure, TTL 3s", func(t *testing.T) { readinessLeaderFails(t, shortTTL, 1) }},
		{"unready replica is the only candidate left", readinessUnreadyNeverLeads},
		{"no application ready", readinessNoneReady},
	}
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			parallel(t)
			sc.run(t)
		})
	}
}

// readyFleet is a fault fleet whose electors campaign only while their
// applications are ready.
type readyFleet struct {
	*faultFleet
	ttl    time.Duration
	apps   map[string]*appstub.ReadyApp
	leases *leaseWatch
}

// newReadyFleet returns a fleet of no electors with TTL ttl in a new
// namespace, and watches its Lease from before any elector starts.
func newReadyFleet(t *testing.T, ttl time.Duration) *readyFleet {
	t.Helper()
	f := &readyFleet{faultFleet: newFaultFleet(t, "leases"), ttl: ttl, apps: map[string]*appstub.ReadyApp{}}
	f.leases = watchLease(t, f.ns, readyElection)
	return f
}

// period is the retry period, and the probe period: TTL/6.
func (f *readyFleet) period() time.Duration { return elector.DefaultTimings(f.ttl).RetryPeriod }

// start starts one elector per entry of ready, ready-0, ready-1, ...,
// each with flags extra and an application of its own, ready or not.
func (f *readyFleet) start(extra []string, ready ...bool) {
	t := f.t
	t.Helper()
	for i, r := range ready {
		id := fmt.Sprintf("ready-%d", i)
		app := appstub.NewReadyApp(r)
		t.Cleanup(app.Close) // after the elector is killed
		f.apps[id] = app
		f.add(fleet.Config{
			Binary: binary, Election: readyElection, Namespace: f.ns, LockType: "leases", TTL: f.ttl,
			Extra: append([]string{"-ready-url=" + app.URL()}, extra...),
		}, id, false)
	}
}

// waitCandidate waits up to limit for e to answer candidate want to a
// request sent after since, and returns that answer.
func (f *readyFleet) waitCandidate(e *fleet.Elector, want bool, since time.Time, limit time.Duration) history.Sample {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s, _ := f.rec.Latest(e.ID)
		if s.OK() && s.Start.After(since) && s.Status.Candidate != nil && *s.Status.Candidate == want {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s does not answer candidate %v within %s (latest answer: %+v, %v)", e.ID, want, limit, s.Status, s.Err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM to e and waits for it to exit 0.
func (f *readyFleet) stop(e *fleet.Elector) {
	f.t.Helper()
	if err := e.Signal(syscall.SIGTERM); err != nil {
		f.t.Fatal(err)
	}
	code, err := e.Wait(elector.DefaultTimings(f.ttl).ShutdownBudget + deathSlack)
	if err != nil {
		f.t.Fatal(err)
	}
	if code != 0 {
		f.t.Errorf("%s exited %d after SIGTERM, want 0", e.ID, code)
	}
}

// A leader whose application stops answering ready steps down at its
// failures-th failed probe in a row (0: the default), and another replica
// leads within a second: of the step-down by default, of the flip with
// -ready-failures=1 (a probe comes every 500ms at TTL 3s). The old leader
// says candidate false and does not lead while its application is not
// ready, and campaigns again once it is.
func readinessLeaderFails(t *testing.T, ttl time.Duration, failures int) {
	n := 3 // the -ready-failures default
	var extra []string
	if failures > 0 {
		n = failures
		extra = []string{"-ready-failures=" + strconv.Itoa(failures)}
	}
	f := newReadyFleet(t, ttl)
	f.start(extra, true, true, true)
	period := f.period()
	l := f.settle()
	app := f.apps[l.ID]
	sleepPhase(period)
	flipped := app.Set(false)
	f.mark("%s's application answers 503 from now on: it must step down at the failed probe number %d", l.ID, n)
	// The n-th failed probe comes within n periods, each of them lengthened
	// by a probe's own round trip.
	next, _ := f.leader(time.Duration(n)*(period+probeSlack)+takeoverWithin+faultSlack, flipped,
		func(s history.Sample) bool { return s.Elector != l.ID })
	f.mark("%s leads", next.ID)
	// The old leader stays out while its application is not ready.
	time.Sleep(3 * period)
	candidate, _ := metric(t, l, "k8s_elector_candidate")
	notReady, _ := metric(t, l, "k8s_elector_candidacy_checks_total", `result="not_ready"`)
	ready := app.Set(true)
	f.mark("%s's application answers 200 again", l.ID)
	f.waitCandidate(l, true, ready, period+probeSlack)
	f.mark("%s campaigns again", l.ID)
	time.Sleep(period)
	h := f.check(flipped)

	// The step-down: the last is_leader answer of the old leader, and its
	// first answer that was not, after the flip.
	var lastLead, down history.Sample
	for _, s := range h.Of(l.ID) {
		if s.Leading() {
			lastLead = s
		} else if s.OK() && s.Start.After(flipped) {
			down = s
			break
		}
	}
	if down.End.IsZero() || lastLead.End.IsZero() {
		t.Fatalf("%s never answered is_leader and then not after its application failed", l.ID)
	}
	first, ok := firstLeadingAfter(h, next.ID, flipped)
	if !ok {
		t.Fatalf("%s never answered is_leader after the flip", next.ID)
	}

	// It stepped down after the n-th failed probe, and before the next one.
	var failed []appstub.Probe
	for _, p := range app.Probes() {
		if p.At.After(flipped) && p.At.Before(down.End) && !p.Ready {
			failed = append(failed, p)
		}
	}
	if len(failed) != n {
		t.Errorf("%s's application had answered %d probes 503 when it answered not-leader at %s, want it to step down at probe number %d",
			l.ID, len(failed), down.End.Format("15:04:05.000"), n)
	} else {
		t.Logf("%s stepped down at failed probe number %d, %s after the flip: its last is_leader answer was asked %s that probe arrived, and its first not-leader answer came %s",
			l.ID, n, failed[n-1].At.Sub(flipped).Round(time.Millisecond),
			relative(lastLead.Start.Sub(failed[n-1].At)), relative(down.End.Sub(failed[n-1].At)))
	}

	// The new leader: from the step-down by default, from the flip with
	// -ready-failures=1. The bounds of the measure are the answers either
	// side of each change.
	fromDown := first.End.Sub(lastLead.Start)
	fromFlip := first.End.Sub(flipped)
	t.Logf("%s answered is_leader %s after %s's step-down (at least %s), %s after the flip",
		next.ID, fromDown.Round(time.Millisecond), l.ID, first.Start.Sub(down.End).Round(time.Millisecond), fromFlip.Round(time.Millisecond))
	if failures == 0 && fromDown > takeoverWithin {
		t.Errorf("%s led %s after %s stepped down, want within %s", next.ID, fromDown.Round(time.Millisecond), l.ID, takeoverWithin)
	}
	if failures == 1 && fromFlip > takeoverWithin {
		t.Errorf("%s led %s after %s's application failed, want within %s with -ready-failures=1", next.ID, fromFlip.Round(time.Millisecond), l.ID, takeoverWithin)
	}

	// The old leader's is_leader went false before the new one's went true.
	var oldRun, newRun *history.Run
	runs := h.Runs()
	for i, r := range runs {
		if r.Elector == l.ID && r.Last.Start.Equal(lastLead.Start) {
			oldRun = &runs[i]
		}
		if r.Elector == next.ID && r.First.Start.Equal(first.Start) {
			newRun = &runs[i]
		}
	}
	switch {
	case oldRun == nil || newRun == nil:
		t.Errorf("no runs of leadership for %s's last term or %s's first", l.ID, next.ID)
	case !oldRun.To.Before(newRun.From):
		t.Errorf("%s's term and %s's overlap: %s; %s", l.ID, next.ID, oldRun, newRun)
	default:
		t.Logf("%s's last claim of leadership ended %s before %s's first began", l.ID, newRun.From.Sub(oldRun.To).Round(time.Millisecond), next.ID)
	}

	// While its application was not ready: candidate false, not leading.
	for _, s := range h.Of(l.ID) {
		if !s.OK() || !s.Start.After(down.End) || !s.End.Before(ready) {
			continue
		}
		if s.Leading() || s.Status.Candidate == nil || *s.Status.Candidate {
			t.Errorf("%s answered is_leader=%v candidate=%s at %s, while its application was not ready", l.ID, s.Status.IsLeader,
				candidacy(s.Status), s.End.Format("15:04:05.000"))
			break
		}
	}
	if candidate != 0 || notReady < float64(n) {
		t.Errorf("%s's metrics while not ready: k8s_elector_candidate %v, checks not_ready %v; want 0 and at least %d", l.ID, candidate, notReady, n)
	}
	wantMetric(t, l, 1, "k8s_elector_candidate")

	// The log says it once each.
	for msg, want := range map[string]int{msgLeaderNotReady: 1, msgSteppingDown: 1, msgCampaigning: 1} {
		if got := logCount(l, msg); got != want {
			t.Errorf("%s logged %q %d times, want %d", l.ID, msg, got, want)
		}
	}
	for _, e := range f.electors {
		if e != l {
			if got := logCount(e, msgSteppingDown) + logCount(e, msgLeaderNotReady) + logCount(e, msgNotCampaigning); got != 0 {
				t.Errorf("%s, whose application stayed ready, logged %d lines saying it is not", e.ID, got)
			}
		}
	}
}

// A replica whose application is not ready never leads and never writes
// the lock, even when it is the only candidate left, and says candidate
// false; it leads within a second once its application is ready (a probe
// every 500ms at TTL 3s). A follower whose application stops being ready
// stops writing the lock too.
func readinessUnreadyNeverLeads(t *testing.T) {
	f := newReadyFleet(t, shortTTL)
	f.start(nil, true, true, false)
	period := f.period()
	u := f.electors[2]
	l := f.settle()
	b := f.electors[0]
	if b == l {
		b = f.electors[1]
	}
	unreadyB := f.apps[b.ID].Set(false)
	f.mark("%s's application (a follower's) answers 503 from now on", b.ID)
	f.waitCandidate(b, false, unreadyB, period+probeSlack)
	bWrites := lockWrites(t, b)
	term := f.mark("SIGTERM %s, the leader: %s and %s are not ready", l.ID, b.ID, u.ID)
	f.stop(l)
	time.Sleep(f.ttl) // six probes: nobody may take the released lock
	if got := lockWrites(t, b); got != bWrites {
		t.Errorf("%s wrote the lock %v times while its application was not ready", b.ID, got-bWrites)
	}
	f.mark("SIGTERM %s: %s is the only candidate left", b.ID, u.ID)
	f.stop(b)
	time.Sleep(2*period + probeSlack)
	uWrites := lockWrites(t, u)
	uCandidate, _ := metric(t, u, "k8s_elector_candidate")
	sleepPhase(period)
	ready := f.apps[u.ID].Set(true)
	f.mark("%s's application answers 200", u.ID)
	next, _ := f.leader(takeoverWithin+faultSlack, ready, nil)
	f.mark("%s leads", next.ID)
	time.Sleep(period)
	h := f.check(ready)

	if next != u {
		t.Errorf("%s leads after %s's application became ready, want %s", next.ID, u.ID, u.ID)
	}
	if s, ok := firstLeadingAfter(h, u.ID, ready); ok {
		took := s.End.Sub(ready)
		if took > takeoverWithin {
			t.Errorf("%s led %s after its application became ready, want within %s", u.ID, took.Round(time.Millisecond), takeoverWithin)
		}
		t.Logf("%s led %s after its application became ready", u.ID, took.Round(time.Millisecond))
	}
	// Nobody led from the leader's SIGTERM to the flip but the leader, until
	// it stepped down.
	for _, r := range h.Runs() {
		if r.To.After(term) && r.From.Before(ready) && r.Elector != l.ID {
			t.Errorf("%s led while no candidate left was ready: %s", r.Elector, r)
		}
	}
	// The unready replica said so, and did not claim leadership, until
	// its application was ready.
	firstProbe := f.apps[u.ID].Probes()[0].At
	for _, s := range h.Of(u.ID) {
		if !s.OK() || !s.End.Before(ready) {
			continue
		}
		unsure := s.Status.Candidate == nil && s.Start.Before(firstProbe.Add(period))
		if s.Leading() || !unsure && (s.Status.Candidate == nil || *s.Status.Candidate) {
			t.Errorf("%s answered is_leader=%v candidate=%s at %s, while its application was not ready", u.ID, s.Status.IsLeader,
				candidacy(s.Status), s.End.Format("15:04:05.000"))
			break
		}
	}
	if uWrites != 0 || uCandidate != 0 {
		t.Errorf("%s, not ready, wrote the lock %v times; k8s_elector_candidate %v: want 0 and 0", u.ID, uWrites, uCandidate)
	}
	if got := lockWrites(t, u); got == 0 {
		t.Errorf("%s's metrics count no write of the lock after it led", u.ID)
	}
	// The API server's account: nobody but the leader held the Lease before
	// the flip, and the unready follower never.
	for _, v := range f.leases.versions() {
		if v.Holder == b.ID && v.At.After(unreadyB) || v.Holder == u.ID && v.At.Before(ready) {
			t.Errorf("the Lease named %s as its holder at %s (resourceVersion %s), while its application was not ready",
				v.Holder, v.At.Format("15:04:05.000"), v.RV)
		}
	}
	if got := holder(t, f.ns, "leases", readyElection); got != u.ID {
		t.Errorf("the Lease names %q at the end, want %s", got, u.ID)
	}
	for _, e := range []*fleet.Elector{u, b} {
		if got := logCount(e, msgNotCampaigning); got != 1 {
			t.Errorf("%s logged %q %d times, want once", e.ID, msgNotCampaigning, got)
		}
	}
	t.Logf("the Lease went through %d versions; %s's application was probed %d times", len(f.leases.versions()), u.ID, len(f.apps[u.ID].Probes()))
}

// With no application ready, nobody leads and nobody creates the lock;
// each elector logs why once, not at every probe, and its own /healthz and
// /readyz do not depend on the application. The first application that
// becomes ready gets its elector the lock within a second.
func readinessNoneReady(t *testing.T) {
	f := newReadyFleet(t, shortTTL)
	f.start(nil, false, false, false)
	period := f.period()
	begin := time.Now()
	// Several probe periods after every elector has started.
	const minProbes = 5
	time.Sleep(f.ttl + 2*period)
	h := f.rec.Snapshot()
	for _, r := range h.Runs() {
		t.Errorf("%s led while no application was ready: %s", r.Elector, r)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, e := range f.electors {
		if got := logCount(e, msgNotCampaigning); got != 1 {
			t.Errorf("%s logged %q %d times over %s, want once", e.ID, msgNotCampaigning, got, time.Since(begin).Round(time.Millisecond))
		}
		if got := logCount(e, msgCampaigning) + logCount(e, msgSteppingDown); got != 0 {
			t.Errorf("%s logged that it campaigns or steps down, with its application never ready", e.ID)
		}
		probes := f.apps[e.ID].Probes()
		checks, _ := metric(t, e, "k8s_elector_candidacy_checks_total", `result="not_ready"`)
		if len(probes) < minProbes || checks < float64(minProbes) {
			t.Errorf("%s probed its application %d times (%v checks not_ready) in %s, want at least %d", e.ID, len(probes), checks,
				time.Since(begin).Round(time.Millisecond), minProbes)
		}
		t.Logf("%s probed its application %d times in %s", e.ID, len(probes), time.Since(begin).Round(time.Millisecond))
		wantMetric(t, e, 0, "k8s_elector_candidate")
		if got := lockWrites(t, e); got != 0 {
			t.Errorf("%s wrote the lock %v times with its application not ready", e.ID, got)
		}
		if s, err := e.Status(context.Background()); err != nil || s.IsLeader || s.Candidate == nil || *s.Candidate {
			t.Errorf("%s's GET /: is_leader=%v candidate=%s (%v), want false and false", e.ID, s.IsLeader, candidacy(s), err)
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := client.Get("http://" + e.Addr + path)
			if err != nil {
				t.Errorf("GET %s on %s: %v", path, e.ID, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s on %s: %s, want 200 whatever its application says", path, e.ID, resp.Status)
			}
		}
	}
	_, err := admin.CoordinationV1().Leases(f.ns).Get(context.Background(), readyElection, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("get lease %s/%s: %v, want not found: an elector created it", f.ns, readyElection, err)
	}
	if v := f.leases.versions(); len(v) > 0 {
		t.Errorf("the Lease was written %d times with no application ready; the first holder %q", len(v), v[0].Holder)
	}

	e := f.electors[1]
	sleepPhase(period)
	ready := f.apps[e.ID].Set(true)
	f.mark("%s's application answers 200", e.ID)
	next, _ := f.leader(takeoverWithin+faultSlack, ready, nil)
	f.mark("%s leads", next.ID)
	if next != e {
		t.Errorf("%s leads, want %s, the only one ready", next.ID, e.ID)
	}
	time.Sleep(period)
	h = f.check(ready)
	if s, ok := firstLeadingAfter(h, e.ID, ready); ok {
		t.Logf("%s led %s after its application became ready", e.ID, s.End.Sub(ready).Round(time.Millisecond))
		if took := s.End.Sub(ready); took > takeoverWithin {
			t.Errorf("%s led %s after its application became ready, want within %s", e.ID, took.Round(time.Millisecond), takeoverWithin)
		}
	}
}

// sleepPhase sleeps a random part of period, so that a flip of an
// application's readiness falls anywhere between two probes: the flip
// happens at about the same time after an elector's start otherwise, and
// the takeovers measured from it would always see one phase.
func sleepPhase(period time.Duration) { time.Sleep(rand.N(period)) }

// relative renders d as before or after an instant.
func relative(d time.Duration) string {
	if d < 0 {
		return (-d).Round(time.Millisecond).String() + " before"
	}
	return d.Round(time.Millisecond).String() + " after"
}

// candidacy renders a status's candidate field.
func candidacy(s fleet.Status) string {
	if s.Candidate == nil {
		return "absent"
	}
	return strconv.FormatBool(*s.Candidate)
}

// logCount returns how many lines of e's JSON log have the message msg.
func logCount(e *fleet.Elector, msg string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(e.Logs()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg {
			n++
		}
	}
	return n
}

// lockWrites returns how many writes of the lock e's metrics count:
// acquisitions, renewals and releases, whatever their result.
func lockWrites(t *testing.T, e *fleet.Elector) float64 {
	t.Helper()
	var sum float64
	for _, op := range []string{"acquire", "renew", "release"} {
		for _, v := range metricSeries(t, e, "k8s_elector_lock_requests_total", `operation="`+op+`"`) {
			sum += v
		}
	}
	return sum
}

// metricSeries returns the value of every series name of e's GET /metrics
// whose labels include labels.
func metricSeries(t *testing.T, e *fleet.Elector, name string, labels ...string) []float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + e.Addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", e.ID, err)
	}
	defer resp.Body.Close()
	var out []float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if n, ls, _ := strings.Cut(series, "{"); n != name || !allIn(ls, labels) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("GET /metrics on %s: %q: %v", e.ID, line, err)
		}
		out = append(out, v)
	}
	return out
}

func allIn(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// leaseWatch records every version of a Lease that a watch of the API
// server delivers: every write, in order.
type leaseWatch struct {
	mu   sync.Mutex
	seen []leaseVersion
}

// leaseVersion is one version of the Lease.
type leaseVersion struct {
	At     time.Time // the watch delivered it
	Type   watch.EventType
	Holder string
	RV     string
}

// watchLease watches the Lease ns/name until the end of the test.
func watchLease(t *testing.T, ns, name string) *leaseWatch {
	t.Helper()
	lw := &leaseWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	opts := metav1.ListOptions{FieldSelector: "metadata.name=" + name}
	w, err := admin.CoordinationV1().Leases(ns).Watch(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("watch lease %s/%s: %v", ns, name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for ev := range w.ResultChan() {
				l, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					continue
				}
				v := leaseVersion{At: time.Now(), Type: ev.Type, RV: l.ResourceVersion}
				if l.Spec.HolderIdentity != nil {
					v.Holder = *l.Spec.HolderIdentity
				}
				lw.mu.Lock()
				lw.seen = append(lw.seen, v)
				lw.mu.Unlock()
				opts.ResourceVersion = l.ResourceVersion
			}
			if ctx.Err() != nil {
				return
			}
			// The watch ended (a server timeout): go on from the last
			// version seen.
			for {
				if w, err = admin.CoordinationV1().Leases(ns).Watch(ctx, opts); err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return lw
}

// versions returns every version seen so far.
func (lw *leaseWatch) versions() []leaseVersion {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return slices.Clone(lw.seen)
}

// TestReadinessNotifyStatusFileBadInput runs the real binary with a ready
// URL or a notify URL off this host, or a status file in a directory that
// does not exist: exit 2 with one line of error, without a request to the
// API server.
func TestReadinessNotifyStatusFileBadInput(t *testing.T) {
	parallel(t)
	b := newBadInput(t, "push-bad-input")
	base := []string{"-election=bad-input", "-namespace=default", "-kubeconfig=" + b.kubeconfig, "-ttl=" + ttl.String(), "-http=127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ready URL off this host", []string{"-ready-url=http://10.1.2.3:8080/ready"}, "ready URL"},
		{"ready URL on a name", []string{"-ready-url=http://example.com/ready"}, "ready URL"},
		{"notify URL off this host", []string{"-notify-url=http://192.0.2.1/hook"}, "notify URL"},
		{"status file in a missing directory", []string{"-status-file=" + t.TempDir() + "/missing/status.json"}, "status file"},
		{"status file is a directory", []string{"-status-file=" + t.TempDir()}, "status file"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			b.refused(t, with(base, tc.args...), tc.want)
		})
	}
	b.untouched(t)
}
