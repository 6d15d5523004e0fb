package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientretry "k8s.io/client-go/util/retry"

	"github.com/k8s-elector/elector/test/e2e/internal/faultproxy"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// Timing of the fault scenarios, all derived from the suite's TTL of 6s.
var (
	// renewDeadline is how long a leader keeps trying to renew.
	renewDeadline = timings.RenewDeadline
	// jitteredRetry is the longest wait between two attempts of a
	// candidate: client-go jitters the retry period by up to 1.2×.
	jitteredRetry = retry * 22 / 10
	// faultSlack absorbs a loaded 2-core machine running several scenarios
	// at once.
	faultSlack = 3 * time.Second
	// recoverWithin bounds the time from a healed fault to exactly one
	// leader: a lease that was not released runs out within a TTL, and a
	// candidate tries again within a jittered retry period.
	recoverWithin = ttl + jitteredRetry + faultSlack
)

// faultElection is the election every scenario runs, in its own namespace.
const faultElection = "fault"

// TestFault runs the fault-injection scenarios: three electors, each
// reaching the API server through a proxy of its own that can blackhole or
// delay its traffic, a recorder polling every elector's GET / every 15ms, and
// the invariants of package history checked over the whole recording:
// (a) never two leaders, (b) tokens grow with every new leader, (c) the
// fenced store accepts no stale write, (d) exactly one leader soon after a
// fault heals, (e) no stack trace in any log.
//
// Most of a scenario is waiting for leases to run out, so the scenarios run
// in parallel, as many at a time as go test's -parallel allows (GOMAXPROCS
// by default: two on a 2-core machine, about two minutes in all). Every
// bound is derived from the TTL with slack for a loaded machine; none
// asserts raw speed.
func TestFault(t *testing.T) {
	parallelParent(t)
	scenarios := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"leader SIGKILL", faultLeaderKilled},
		{"leader SIGSTOP past the TTL", faultLeaderPaused},
		{"leader SIGSTOP below the renew deadline", faultLeaderPausedBriefly},
		{"follower SIGSTOP", faultFollowerPaused},
		{"leader blackholed", faultLeaderBlackholed},
		{"follower blackholed", faultFollowerBlackholed},
		{"SIGTERM with a renewal held in flight", faultSIGTERMWithRenewalInFlight},
		{"API server unreachable below the renew deadline", faultAPIServerUnreachableBriefly},
		{"API server unreachable for 2x TTL", faultAPIServerUnreachable},
		{"leader answered 429 for 2x TTL", faultLeaderThrottled},
		{"follower answered 429", faultFollowerThrottled},
		{"leader delayed 0.2x renew deadline", func(t *testing.T) { faultLeaderDelayed(t, 2, 10) }},
		{"leader delayed 0.5x renew deadline", func(t *testing.T) { faultLeaderDelayed(t, 5, 10) }},
		{"leader delayed 1x renew deadline", func(t *testing.T) { faultLeaderDelayed(t, 10, 10) }},
		{"lease deleted while held", faultLockDeleted},
		{"lease holder rewritten", faultHolderRewritten},
		{"configmap annotation unparseable", faultAnnotationUnparseable},
		{"configmap annotation removed", faultAnnotationRemoved},
	}
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			parallel(t)
			sc.run(t)
		})
	}
}

// faultFleet is three electors of one election, each behind its own proxy,
// and a recorder of their answers.
type faultFleet struct {
	t        *testing.T
	ns       string
	lock     string
	electors []*fleet.Elector
	proxies  []*faultproxy.Proxy // nil entries behind throttlers
	// throttlers, for a fleet started with startFaultFleetVia(…, true).
	throttlers []*faultproxy.Throttler
	rec        *history.Recorder
	hist       *history.History // once checked
	marks      []string
}

func startFaultFleet(t *testing.T, lock string) *faultFleet {
	t.Helper()
	return startFaultFleetVia(t, lock, false)
}

// startFaultFleetVia starts the fleet behind TCP proxies or, with
// throttled, behind HTTPS proxies that can answer 429 (f.throttlers).
func startFaultFleetVia(t *testing.T, lock string, throttled bool) *faultFleet {
	t.Helper()
	f := newFaultFleet(t, lock)
	for i := range 3 {
		f.add(fleet.Config{
			Binary: binary, Election: faultElection,
			Namespace: f.ns, LockType: lock, TTL: ttl,
		}, fmt.Sprintf("%s-%d", lock, i), throttled)
	}
	return f
}

// newFaultFleet returns a fleet of no electors in a new namespace, with its
// recorder running; on failure, its cleanup logs the faults and the
// timeline.
func newFaultFleet(t *testing.T, lock string) *faultFleet {
	t.Helper()
	f := &faultFleet{t: t, ns: newNamespace(t), lock: lock, rec: history.NewRecorder()}
	t.Cleanup(func() {
		h := f.rec.Stop()
		if t.Failed() {
			if f.hist != nil {
				h = *f.hist
			}
			t.Logf("faults injected:\n%s\nwhat each elector answered:\n%s",
				strings.Join(f.marks, "\n"), h.Timeline(h.Begin, h.End))
		}
	})
	return f
}

// add starts the elector id with cfg behind a TCP proxy of its own or, with
// throttled, an HTTPS proxy that can answer 429, and records its answers.
// It fills in cfg.Kubeconfig.
func (f *faultFleet) add(cfg fleet.Config, id string, throttled bool) *fleet.Elector {
	t := f.t
	t.Helper()
	var rc *rest.Config
	var p *faultproxy.Proxy
	var th *faultproxy.Throttler
	if throttled {
		var err error
		if th, err = faultproxy.NewThrottler(cp.Admin); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(th.Close)
		rc = th.Config()
	} else {
		u, err := url.Parse(cp.Admin.Host)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = faultproxy.New(u.Host); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		// The admin credentials, with the proxy as the server: TLS
		// passes through the proxy, and the serving certificate is
		// valid for 127.0.0.1.
		rc = rest.CopyConfig(cp.Admin)
		rc.Host = "https://" + p.Addr()
	}
	kubeconfig, err := cp.WriteKubeconfig(f.ns+"-"+id, rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kubeconfig = kubeconfig
	e := startElector(t, cfg, id)
	f.electors = append(f.electors, e)
	f.proxies = append(f.proxies, p)
	if throttled {
		f.throttlers = append(f.throttlers, th)
	}
	f.rec.Add(id, e.Status)
	return e
}

// mark notes a fault in the test log and returns when it was injected.
func (f *faultFleet) mark(format string, args ...any) time.Time {
	now := time.Now()
	line := now.Format("15:04:05.000") + " " + fmt.Sprintf(format, args...)
	f.marks = append(f.marks, line)
	f.t.Log(line)
	return now
}

func (f *faultFleet) proxy(e *fleet.Elector) *faultproxy.Proxy {
	for i, x := range f.electors {
		if x == e {
			return f.proxies[i]
		}
	}
	panic("unknown elector " + e.ID)
}

func (f *faultFleet) follower(leader *fleet.Elector) *fleet.Elector {
	for _, e := range f.electors {
		if e != leader {
			return e
		}
	}
	panic("no follower")
}

// leader waits until exactly one elector answers is_leader to a request
// sent after since, and ok accepts its answer (nil accepts any), and returns
// it with that answer.
func (f *faultFleet) leader(limit time.Duration, since time.Time, ok func(history.Sample) bool) (*fleet.Elector, history.Sample) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var leaders []*fleet.Elector
		var answer history.Sample
		for _, e := range f.electors {
			if s, _ := f.rec.Latest(e.ID); s.Leading() && s.Start.After(since) {
				leaders = append(leaders, e)
				answer = s
			}
		}
		if len(leaders) == 1 && (ok == nil || ok(answer)) {
			return leaders[0], answer
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no single leader within %s (%d answer is_leader)", limit, len(leaders))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits for a leader that every elector names, so that a fault
// starts from a quiet election, and returns it.
func (f *faultFleet) settle() *fleet.Elector {
	f.t.Helper()
	l, _ := f.leader(recoverWithin, time.Time{}, nil)
	deadline := time.Now().Add(jitteredRetry + faultSlack)
	for {
		agree := true
		for _, e := range f.electors {
			if s, _ := f.rec.Latest(e.ID); !s.OK() || s.Status.Leader != l.ID {
				agree = false
			}
		}
		if agree {
			f.mark("%s leads, the others follow", l.ID)
			return l
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the electors do not all name %s as leader within %s", l.ID, jitteredRetry+faultSlack)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check stops the recording and checks the invariants over it: (a), (b) and
// (c) and the status contract, (e), and (d) from every time in healed.
func (f *faultFleet) check(healed ...time.Time) history.History {
	t := f.t
	t.Helper()
	h := f.rec.Stop()
	f.hist = &h
	for _, v := range h.Violations() {
		t.Error(v)
	}
	stale, rejected := h.StaleWrites()
	accepted := 0
	for _, w := range h.Writes {
		if w.Accepted {
			accepted++
		}
	}
	t.Logf("%d answers recorded; the fenced store accepted %d writes (%d of them stale) and rejected %d",
		len(h.Samples), accepted, len(stale), len(rejected))
	if accepted == 0 {
		t.Error("the fenced store got no write: no elector was seen leading")
	}
	for _, e := range f.electors {
		if lines := history.StackTraces(e.Logs()); len(lines) > 0 {
			t.Errorf("invariant (e): %s logged a stack trace: %q", e.ID, lines)
		}
	}
	for _, at := range healed {
		d, ok := h.TimeToOneLeader(at)
		switch {
		case !ok:
			t.Errorf("invariant (d): no single leader after the fault healed at %s", at.Format("15:04:05.000"))
		case d > recoverWithin:
			t.Errorf("invariant (d): a single leader only %s after the fault healed, want within TTL + 2.2 × retry period (%s with slack)", d, recoverWithin)
		default:
			t.Logf("a single leader %s after the fault healed at %s", d.Round(time.Millisecond), at.Format("15:04:05.000"))
		}
	}
	return h
}

// runsOf returns the runs of leadership that intersect [from, to], by
// elector ID.
func runsOf(h history.History, from, to time.Time) map[string][]history.Run {
	out := map[string][]history.Run{}
	for _, r := range h.Runs() {
		if r.From.Before(to) && r.To.After(from) {
			out[r.Elector] = append(out[r.Elector], r)
		}
	}
	return out
}

// firstAnswer returns the first answer of id to a request sent after from.
func firstAnswer(h history.History, id string, from time.Time) (history.Sample, bool) {
	for _, s := range h.Of(id) {
		if s.OK() && s.Start.After(from) {
			return s, true
		}
	}
	return history.Sample{}, false
}

// onlyLeader checks that l alone led from from to the end, with one token,
// and leads at the end.
func onlyLeader(t *testing.T, h history.History, l *fleet.Elector, from time.Time) {
	t.Helper()
	for id, runs := range runsOf(h, from, h.End) {
		if id != l.ID {
			t.Errorf("%s led during the fault: %s; want no handover", id, runs[0])
		}
	}
	tokens := map[history.Token]bool{}
	for _, r := range runsOf(h, from, h.End)[l.ID] {
		tokens[r.Token] = true
	}
	if len(tokens) > 1 {
		t.Errorf("%s led with %d tokens during the fault, want one: it lost the lock and took it again", l.ID, len(tokens))
	}
	if s := h.Of(l.ID); len(s) == 0 || !s[len(s)-1].Leading() {
		t.Errorf("%s does not lead at the end", l.ID)
	}
}

// handedOver checks that an elector other than l led between from and to.
func handedOver(t *testing.T, h history.History, l *fleet.Elector, from, to time.Time, why string) {
	t.Helper()
	for id := range runsOf(h, from, to) {
		if id != l.ID {
			return
		}
	}
	t.Errorf("nobody took over from %s between %s and %s: %s", l.ID, from.Format("15:04:05.000"), to.Format("15:04:05.000"), why)
}

// A leader whose renewals are held in flight by its proxy is replaced; then
// it gets SIGTERM and its held requests, and its release, reach the API
// server after the new leader has taken the lock. None of them may clear or
// overwrite the new leader's lease.
func faultSIGTERMWithRenewalInFlight(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	cut := f.mark("hold %s's requests in flight", l.ID)
	f.proxy(l).Blackhole()
	next, _ := f.leader(ttl+jitteredRetry+faultSlack, cut, func(s history.Sample) bool { return s.Elector != l.ID })
	f.mark("%s leads", next.ID)
	term := f.mark("SIGTERM %s, then deliver its held requests", l.ID)
	if err := l.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the release is attempted behind the blackhole
	f.proxy(l).Pass()
	code, err := l.Wait(2 * ttl)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", l.ID, code)
	}
	time.Sleep(jitteredRetry)
	h := f.check(term)
	if got := holder(t, f.ns, "leases", faultElection); got != next.ID {
		t.Errorf("after %s's held requests and release arrived, the lease names %q, want %q", l.ID, got, next.ID)
	}
	onlyLeader(t, h, next, term)
}

// unreachable refuses every elector's connections (existing ones are reset,
// new ones closed at once), as a stopped API server would, for d.
func (f *faultFleet) unreachable(d time.Duration) (cut, healed time.Time) {
	cut = f.mark("API server unreachable for %s", d)
	for _, p := range f.proxies {
		p.Reset()
	}
	time.Sleep(d)
	healed = f.mark("API server reachable again")
	for _, p := range f.proxies {
		p.Pass()
	}
	return cut, healed
}

// An outage shorter than the renew deadline leaves the leader in place.
func faultAPIServerUnreachableBriefly(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	cut, healed := f.unreachable(renewDeadline / 2)
	time.Sleep(ttl)
	h := f.check(healed)
	onlyLeader(t, h, l, cut)
}

// A long outage: the leader stops claiming leadership by its valid-until,
// nobody leads while nobody can renew, and one leader follows the heal.
func faultAPIServerUnreachable(t *testing.T) {
	f := startFaultFleet(t, "leases")
	f.settle()
	cut, healed := f.unreachable(2 * ttl)
	next, _ := f.leader(recoverWithin, healed, nil)
	f.mark("%s leads", next.ID)
	time.Sleep(retry)
	h := f.check(healed)
	for id, runs := range runsOf(h, cut, healed) {
		for _, r := range runs {
			if r.To.After(cut.Add(ttl)) {
				t.Errorf("%s claimed leadership until %s, more than a TTL into the outage that began at %s", id, r.To.Format("15:04:05.000"), cut.Format("15:04:05.000"))
			}
		}
	}
}

func (f *faultFleet) throttler(e *fleet.Elector) *faultproxy.Throttler {
	for i, x := range f.electors {
		if x == e {
			return f.throttlers[i]
		}
	}
	panic("unknown elector " + e.ID)
}

// A leader whose every request is answered 429 (API Priority and Fairness
// shedding load) cannot renew: it stops claiming leadership by its
// valid-until, another takes over, and one leader remains after the heal.
func faultLeaderThrottled(t *testing.T) {
	f := startFaultFleetVia(t, "leases", true)
	l := f.settle()
	cut := f.mark("answer %s's requests with 429 for 2 × TTL", l.ID)
	f.throttler(l).Throttle(true)
	time.Sleep(2 * ttl)
	healed := f.mark("stop answering 429 (%d answered)", f.throttler(l).Answered429())
	f.throttler(l).Throttle(false)
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)
	for _, r := range runsOf(h, cut, h.End)[l.ID] {
		if r.To.After(cut.Add(ttl)) && r.From.Before(healed) {
			t.Errorf("%s claimed leadership until %s, more than a TTL after its requests were refused at %s", l.ID, r.To.Format("15:04:05.000"), cut.Format("15:04:05.000"))
		}
	}
	handedOver(t, h, l, cut, healed, "a follower takes over a TTL after the last renewal")
	// The 429s must not make it hammer the API server: client-go honours
	// Retry-After (1s), and the elector retries once per retry period.
	if n := f.throttler(l).Answered429(); n == 0 || n > int64(4*2*ttl/retry) {
		t.Errorf("%d requests answered 429 in 2 × TTL; want some, and no more than a few per retry period", n)
	}
}

// A follower answered 429 changes nothing.
func faultFollowerThrottled(t *testing.T) {
	f := startFaultFleetVia(t, "leases", true)
	l := f.settle()
	fo := f.follower(l)
	cut := f.mark("answer %s's requests with 429 for a TTL", fo.ID)
	f.throttler(fo).Throttle(true)
	time.Sleep(ttl)
	healed := f.mark("stop answering 429")
	f.throttler(fo).Throttle(false)
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)
	onlyLeader(t, h, l, cut)
}

// A killed leader's lock is taken over once its lease has run out, not
// before.
func faultLeaderKilled(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	killed := f.mark("SIGKILL %s", l.ID)
	l.Kill()
	next, _ := f.leader(2*ttl+faultSlack, killed, nil)
	f.mark("%s leads", next.ID)
	time.Sleep(retry)
	h := f.check(killed)

	// The killed leader renewed at most a renew interval (and a request)
	// before it died; the lease runs a TTL from then.
	s, _ := firstLeadingAfter(h, next.ID, killed)
	if floor := ttl - timings.RenewInterval - 500*time.Millisecond; s.End.Sub(killed) < floor {
		t.Errorf("%s led %s after the kill, before the killed leader's lease could have run out (%s)", next.ID, s.End.Sub(killed), floor)
	}
}

func firstLeadingAfter(h history.History, id string, from time.Time) (history.Sample, bool) {
	for _, s := range h.Of(id) {
		if s.Leading() && s.Start.After(from) {
			return s, true
		}
	}
	return history.Sample{}, false
}

// A leader stopped for longer than its lease is replaced, and when it
// resumes its first answer is not-leader: its leadership expired on the
// monotonic clock while it was stopped.
func faultLeaderPaused(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	stopped := f.mark("SIGSTOP %s for TTL + 2s", l.ID)
	if err := l.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 2*time.Second)
	resumed := f.mark("SIGCONT %s", l.ID)
	if err := l.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(resumed)

	// Requests sent while it was stopped are answered when it resumes; the
	// first answer must already say not-leader. (A request sent just before
	// the SIGSTOP may have been answered before it, and delivered after.)
	s, ok := firstAnswer(h, l.ID, stopped.Add(10*time.Millisecond))
	switch {
	case !ok:
		t.Errorf("%s did not answer after SIGCONT", l.ID)
	case s.Leading():
		t.Errorf("%s answered is_leader (valid_until %s) at %s, right after SIGCONT; its lease had run out while it was stopped",
			l.ID, s.Status.ValidUntil.Format("15:04:05.000"), s.End.Format("15:04:05.000"))
	}
	handedOver(t, h, l, stopped, resumed.Add(jitteredRetry+faultSlack), "the lease of a stopped leader runs out after a TTL")
}

// A leader stopped for less than the renew deadline keeps its lease: no
// handover, and it still leads, with the same token, when it resumes.
func faultLeaderPausedBriefly(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	stopped := f.mark("SIGSTOP %s for 1s", l.ID)
	if err := l.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	resumed := f.mark("SIGCONT %s", l.ID)
	if err := l.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Long enough for the lease to have run out, had the renewals stopped.
	time.Sleep(ttl + retry)
	h := f.check(resumed)
	onlyLeader(t, h, l, stopped.Add(-time.Second))
	if s, ok := firstAnswer(h, l.ID, resumed); !ok || !s.Leading() {
		t.Errorf("%s's first answer after SIGCONT is %+v, want is_leader: its lease had not run out", l.ID, s.Status)
	}
}

// A stopped follower changes nothing, and follows again when it resumes.
func faultFollowerPaused(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	fo := f.follower(l)
	stopped := f.mark("SIGSTOP follower %s for TTL + 2s", fo.ID)
	if err := fo.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 2*time.Second)
	resumed := f.mark("SIGCONT %s", fo.ID)
	if err := fo.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(resumed)
	onlyLeader(t, h, l, stopped)
	if s := h.Of(fo.ID); len(s) == 0 || !s[len(s)-1].OK() || s[len(s)-1].Status.Leader != l.ID {
		t.Errorf("after SIGCONT, %s does not name %s as leader", fo.ID, l.ID)
	}
}

// A leader cut off from the API server stops answering is_leader within its
// lease, a follower takes over, and when the network heals the old leader
// follows the new one.
func faultLeaderBlackholed(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	cut := f.mark("blackhole %s for 2 × TTL", l.ID)
	f.proxy(l).Blackhole()
	time.Sleep(2 * ttl)
	healed := f.mark("heal %s", l.ID)
	f.proxy(l).Pass()
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)

	// Its last successful renewal was sent before the cut.
	for _, r := range runsOf(h, cut, h.End)[l.ID] {
		if r.To.After(cut.Add(ttl)) && r.From.Before(healed) {
			t.Errorf("%s claimed leadership until %s, more than a TTL after it was cut off at %s", l.ID, r.To.Format("15:04:05.000"), cut.Format("15:04:05.000"))
		}
	}
	handedOver(t, h, l, cut, healed, "a follower takes over a TTL after the last renewal")
	if s := h.Of(l.ID); len(s) == 0 || !s[len(s)-1].OK() || s[len(s)-1].Status.Leader == l.ID {
		t.Errorf("%s does not follow the new leader within %s after the network healed", l.ID, jitteredRetry+faultSlack)
	}
}

// A follower cut off from the API server changes nothing.
func faultFollowerBlackholed(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	fo := f.follower(l)
	cut := f.mark("blackhole follower %s for 2 × TTL", fo.ID)
	f.proxy(fo).Blackhole()
	time.Sleep(2 * ttl)
	healed := f.mark("heal %s", fo.ID)
	f.proxy(fo).Pass()
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)
	onlyLeader(t, h, l, cut)
	if s := h.Of(fo.ID); len(s) == 0 || !s[len(s)-1].OK() || s[len(s)-1].Status.Leader != l.ID {
		t.Errorf("after the network healed, %s does not name %s as leader", fo.ID, l.ID)
	}
}

// The leader's responses arrive num/den of the renew deadline late (requests
// still reach the server at once). Below the request timeout (renew
// deadline / 2) renewals succeed and nothing changes; at or above it every
// request of the leader times out, although its writes are applied.
func faultLeaderDelayed(t *testing.T, num, den int) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	delay := renewDeadline * time.Duration(num) / time.Duration(den)
	window := ttl + 2*retry // a lease would have run out, had renewals failed
	if num*2 >= den {
		// The last write may land up to a request timeout after the delay
		// begins; then a TTL and two jittered retries.
		window = 2*ttl + 4*time.Second
	}
	begin := f.mark("delay %s's responses by %s for %s", l.ID, delay, window)
	f.proxy(l).Delay(delay)
	time.Sleep(window)
	// What the API server holds, for the log: renewals that land although
	// their responses come too late show as a fresh renew time.
	if lease, err := admin.CoordinationV1().Leases(f.ns).Get(context.Background(), faultElection, metav1.GetOptions{}); err == nil &&
		lease.Spec.HolderIdentity != nil && lease.Spec.RenewTime != nil {
		latest, _ := f.rec.Latest(l.ID)
		t.Logf("at the end of the delay the lease names %s, renewed %s ago; %s answers is_leader=%v",
			*lease.Spec.HolderIdentity, time.Since(lease.Spec.RenewTime.Time).Round(time.Millisecond), l.ID, latest.Leading())
	}
	healed := f.mark("heal %s", l.ID)
	f.proxy(l).Pass()
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)
	switch {
	case num*2 < den:
		onlyLeader(t, h, l, begin)
	case num == den:
		handedOver(t, h, l, begin, healed, "every request of the leader times out")
	default:
		// At the request timeout itself either outcome is right; the
		// invariants are what matters.
		for id := range runsOf(h, begin, healed) {
			if id != l.ID {
				t.Logf("%s took over during the delay", id)
			}
		}
	}
}

// An administrator deletes the Lease while it is held. Electors create a
// new one (a new UID: a new epoch of tokens); never two leaders.
func faultLockDeleted(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	old, _ := f.rec.Latest(l.ID)
	deleted := f.mark("delete lease %s/%s held by %s", f.ns, faultElection, l.ID)
	if err := admin.CoordinationV1().Leases(f.ns).Delete(context.Background(), faultElection, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next, s := f.leader(recoverWithin, deleted, func(s history.Sample) bool { return s.Status.LockUID != old.Status.LockUID })
	f.mark("%s leads on a new lease, token %s", next.ID, s.Token())
	time.Sleep(retry)
	f.check(deleted)
}

// A third party writes another holder into the Lease: the leader steps down
// at its next renewal, long before its lease would have run out, and nobody
// takes the lock before the third party's lease has run out.
func faultHolderRewritten(t *testing.T) {
	f := startFaultFleet(t, "leases")
	l := f.settle()
	ctx := context.Background()
	leases := admin.CoordinationV1().Leases(f.ns)
	var rewritten time.Time
	var intruderTransitions int32
	err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
		lease, err := leases.Get(ctx, faultElection, metav1.GetOptions{})
		if err != nil {
			return err
		}
		intruder, seconds := "intruder", int32(ttl.Seconds())
		now := metav1.NewMicroTime(time.Now())
		transitions := int32(0)
		if lease.Spec.LeaseTransitions != nil {
			transitions = *lease.Spec.LeaseTransitions
		}
		transitions++
		lease.Spec.HolderIdentity = &intruder
		lease.Spec.LeaseDurationSeconds = &seconds
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		lease.Spec.LeaseTransitions = &transitions
		rewritten, intruderTransitions = time.Now(), transitions
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mark("rewrote the holder of lease %s/%s from %s to intruder (transitions %d)", f.ns, faultElection, l.ID, intruderTransitions)
	next, s := f.leader(recoverWithin, rewritten, func(s history.Sample) bool { return s.Status.LeaderTransitions > int(intruderTransitions) })
	f.mark("%s leads, token %s", next.ID, s.Token())
	time.Sleep(retry)
	h := f.check(rewritten)

	var lastClaim history.Sample
	for _, s := range h.Of(l.ID) {
		if s.Start.After(rewritten) && s.OK() && !s.Leading() {
			if took := s.End.Sub(rewritten); took > retry+slack {
				t.Errorf("%s stepped down %s after the rewrite, want at its next renewal (within %s with slack)", l.ID, took, retry+slack)
			}
			if !s.End.Before(lastClaim.Status.ValidUntil) {
				t.Errorf("%s stepped down at %s, only when its lease ran out (%s): it must step down as soon as it reads another holder",
					l.ID, s.End.Format("15:04:05.000"), lastClaim.Status.ValidUntil.Format("15:04:05.000"))
			}
			break
		}
		if s.Leading() {
			lastClaim = s
		}
	}
	for _, r := range h.Runs() {
		if r.First.Start.After(rewritten) && r.First.End.Before(rewritten.Add(ttl)) {
			t.Errorf("%s led %s after the rewrite, before the third party's lease of %s could have run out",
				r.Elector, r.First.End.Sub(rewritten), ttl)
		}
	}
}

// faultAnnotation corrupts the leader annotation of a ConfigMap lock with
// change, checks that nobody leads, overwrites or stays quiet while it is
// corrupt, then repairs it with fix and checks the recovery.
func faultAnnotation(t *testing.T, what string, change func(map[string]string), logSays []string,
	fix func(t *testing.T, f *faultFleet, good string) time.Time) {
	f := startFaultFleet(t, "configmaps")
	l := f.settle()
	ctx := context.Background()
	cms := admin.CoreV1().ConfigMaps(f.ns)
	var good, rv string
	var corrupted time.Time
	err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, faultElection, metav1.GetOptions{})
		if err != nil {
			return err
		}
		good = cm.Annotations[leaderAnnotation]
		change(cm.Annotations)
		corrupted = time.Now()
		cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if err == nil {
			rv = cm.ResourceVersion
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mark("%s of configmap %s/%s, held by %s", what, f.ns, faultElection, l.ID)
	time.Sleep(ttl + 2*time.Second)

	cm, err := cms.Get(ctx, faultElection, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.ResourceVersion != rv {
		t.Errorf("the configmap was written while its annotation was broken (resourceVersion %s, then %s): %q", rv, cm.ResourceVersion, cm.Annotations[leaderAnnotation])
	}
	h := f.rec.Snapshot()
	for _, r := range h.Runs() {
		if r.To.After(corrupted.Add(ttl)) {
			t.Errorf("%s led while the lock record was unreadable: %s", r.Elector, r)
		}
	}
	object := f.ns + "/" + faultElection
	for _, e := range f.electors {
		logs := e.Logs()
		for _, want := range append(logSays, object) {
			if !strings.Contains(logs, want) {
				t.Errorf("%s did not log an error saying %q", e.ID, want)
			}
		}
		// Repeats of the same error are logged at debug level only.
		if n := strings.Count(logs, logSays[0]); n > 2 {
			t.Errorf("%s logged %q %d times at the default level, want it once until it changes", e.ID, logSays[0], n)
		}
	}

	fixed := fix(t, f, good)
	next, _ := f.leader(recoverWithin, fixed, nil)
	f.mark("%s leads", next.ID)
	time.Sleep(retry)
	f.check(fixed)
}

// An unparseable record is reported, never overwritten, and the election
// recovers once an administrator restores it.
func faultAnnotationUnparseable(t *testing.T) {
	faultAnnotation(t, "write an unparseable leader annotation",
		func(ann map[string]string) { ann[leaderAnnotation] = `{"holderIdentity": "half a rec` },
		[]string{"cannot be parsed", "is not overwritten"},
		func(t *testing.T, f *faultFleet, good string) time.Time {
			err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
				cm, err := admin.CoreV1().ConfigMaps(f.ns).Get(context.Background(), faultElection, metav1.GetOptions{})
				if err != nil {
					return err
				}
				cm.Annotations[leaderAnnotation] = good
				_, err = admin.CoreV1().ConfigMaps(f.ns).Update(context.Background(), cm, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return f.mark("restore the leader annotation as it was")
		})
}

// A ConfigMap without the annotation is somebody else's object: it is
// reported and left alone, until an administrator deletes it, as the error
// says, and the electors create their lock again.
func faultAnnotationRemoved(t *testing.T) {
	faultAnnotation(t, "remove the leader annotation",
		func(ann map[string]string) { delete(ann, leaderAnnotation) },
		[]string{"is not a leader-election lock", "left alone"},
		func(t *testing.T, f *faultFleet, _ string) time.Time {
			if err := admin.CoreV1().ConfigMaps(f.ns).Delete(context.Background(), faultElection, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			return f.mark("delete the configmap")
		})
}
