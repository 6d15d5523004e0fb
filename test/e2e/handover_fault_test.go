package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// successorWindow is how long our other candidates leave a released lock to
// the successor the release names.
var successorWindow = timings.SuccessorWindow

// TestHandoverFault runs faults at the moment of a handover to a named
// successor, on fleets of three electors behind proxies of their own, with
// TestFault's recorder and invariants: never two leaders, tokens that grow,
// no stale write accepted by the fenced store, and no stack trace. Each
// scenario bounds the takeover by the protocol: the successor window, a
// write, and slack for a loaded machine; or, where the release itself is
// lost, the lease's end.
func TestHandoverFault(t *testing.T) {
	parallelParent(t)
	scenarios := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"successor SIGSTOP at the handover", func(t *testing.T) { handoverSuccessorCut(t, false) }},
		{"successor blackholed at the handover", func(t *testing.T) { handoverSuccessorCut(t, true) }},
		{"leader blackholed while it hands over", handoverLeaderCut},
		{"two handover requests race", handoverRequestsRace},
		{"handover to itself and to an unknown ID", handoverBadSuccessors},
		{"preferred candidate flaps its readiness", handoverPreferredFlaps},
	}
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			parallel(t)
			sc.run(t)
		})
	}
}

// startHandoverFleet starts three electors that serve POST /resign, each
// behind its own proxy, and returns the fleet once one leads and all agree.
func startHandoverFleet(t *testing.T) (*faultFleet, *fleet.Elector) {
	t.Helper()
	f := newFaultFleet(t, "leases")
	for i := range 3 {
		f.add(handoverConfig(f), fmt.Sprintf("h-%d", i), false)
	}
	l := f.settle()
	// Every candidate registered as it started; give the leader's watch of
	// the registry a retry period to have them all.
	time.Sleep(retry)
	return f, l
}

func handoverConfig(f *faultFleet) fleet.Config {
	return fleet.Config{
		Binary: binary, Election: faultElection, Namespace: f.ns, LockType: f.lock, TTL: ttl,
		Extra: []string{"-allow-resign"},
	}
}

// others returns the two electors of f other than l.
func (f *faultFleet) others(l *fleet.Elector) (a, b *fleet.Elector) {
	var o []*fleet.Elector
	for _, e := range f.electors {
		if e != l {
			o = append(o, e)
		}
	}
	return o[0], o[1]
}

// resignTo asks e, on its loopback HTTP API, to hand over to the candidate
// to, and returns the answer's status code and body.
func resignTo(t *testing.T, e *fleet.Elector, to string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 2 * ttl}
	resp, err := c.Post("http://"+e.Addr+"/resign?to="+url.QueryEscape(to), "", nil)
	if err != nil {
		t.Errorf("POST /resign?to=%s on %s: %v", to, e.ID, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// passedOverWithin bounds the time from a release that names a successor
// that cannot take the lock to another candidate leading: the window, then
// one write, with slack for a loaded machine.
var passedOverWithin = successorWindow + faultSlack

// The successor the leader names is frozen (SIGSTOP), or cut off from the
// API server, when the leader hands over to it: the third candidate waits
// out the successor's window and takes the lock; the successor, once it
// runs or reaches the API server again, follows.
func handoverSuccessorCut(t *testing.T, blackholed bool) {
	f, l := startHandoverFleet(t)
	s, o := f.others(l)
	if blackholed {
		f.mark("blackhole %s", s.ID)
		f.proxy(s).Blackhole()
	} else {
		f.mark("SIGSTOP %s", s.ID)
		if err := s.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Signal(syscall.SIGCONT) })
	}
	at := f.mark("%s hands over to %s", l.ID, s.ID)
	if code, body := resignTo(t, l, s.ID); code != http.StatusOK {
		t.Fatalf("POST /resign?to=%s: %d %s, want 200", s.ID, code, body)
	}
	next, first := f.leader(passedOverWithin, at, nil)
	f.mark("%s leads, %s after the handover began", next.ID, first.Start.Sub(at).Round(time.Millisecond))
	if next != o {
		t.Errorf("%s leads after the handover to the unreachable %s, want %s", next.ID, s.ID, o.ID)
	}
	healed := f.mark("%s runs and reaches the API server again", s.ID)
	if blackholed {
		f.proxy(s).Pass()
	} else if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * retry)
	h := f.check(healed)
	onlyLeader(t, h, next, first.End)
	if got := holder(t, f.ns, f.lock, faultElection); got != next.ID {
		t.Errorf("the lease names %q, want %s", got, next.ID)
	}
}

// The leader is cut off from the API server as it hands over: its release,
// held in flight, never names the successor in time. Nobody leads until
// the lease it last renewed runs out, then one candidate does; the held
// release, delivered late, does not clear the new holder's lease.
func handoverLeaderCut(t *testing.T) {
	f, l := startHandoverFleet(t)
	s, _ := f.others(l)
	cut := f.mark("blackhole %s, then ask it to hand over to %s", l.ID, s.ID)
	f.proxy(l).Blackhole()
	var wg sync.WaitGroup
	wg.Go(func() {
		code, body := resignTo(t, l, s.ID)
		t.Logf("POST /resign?to=%s on the cut-off leader: %d %s", s.ID, code, body)
	})
	next, first := f.leader(ttl+jitteredRetry+faultSlack, cut, func(x history.Sample) bool { return x.Elector != l.ID })
	f.mark("%s leads, %s after the cut", next.ID, first.Start.Sub(cut).Round(time.Millisecond))
	healed := f.mark("deliver %s's held requests", l.ID)
	f.proxy(l).Pass()
	wg.Wait()
	time.Sleep(2 * retry)
	h := f.check(healed)
	onlyLeader(t, h, next, first.End)
	if got := holder(t, f.ns, f.lock, faultElection); got != next.ID {
		t.Errorf("after %s's held release arrived, the lease names %q, want %s", l.ID, got, next.ID)
	}
}

// Two handovers, to each of the other candidates, are asked of the leader
// at once: one of them is done, the other answered that this elector no
// longer leads, and one successor leads.
func handoverRequestsRace(t *testing.T) {
	f, l := startHandoverFleet(t)
	a, b := f.others(l)
	at := f.mark("ask %s to hand over to %s and to %s at once", l.ID, a.ID, b.ID)
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, to := range []*fleet.Elector{a, b} {
		wg.Go(func() { codes[i], _ = resignTo(t, l, to.ID) })
	}
	wg.Wait()
	f.mark("answers: %v", codes)
	if ok := strings.Count(fmt.Sprint(codes), "200"); ok < 1 {
		t.Errorf("racing handovers answered %v, want at least one 200", codes)
	}
	next, first := f.leader(passedOverWithin, at, func(x history.Sample) bool { return x.Elector != l.ID })
	f.mark("%s leads", next.ID)
	time.Sleep(2 * retry)
	h := f.check()
	onlyLeader(t, h, next, first.End)
}

// A handover to the leader itself is refused, and leadership stays; one to
// an ID that no candidate has is done, and passed over after the window.
func handoverBadSuccessors(t *testing.T) {
	f, l := startHandoverFleet(t)
	from := f.mark("ask %s to hand over to itself", l.ID)
	if code, body := resignTo(t, l, l.ID); code != http.StatusBadRequest {
		t.Errorf("POST /resign?to=%s on itself: %d %s, want 400", l.ID, code, body)
	}
	time.Sleep(2 * retry)
	at := f.mark("ask %s to hand over to nobody's ID", l.ID)
	if code, body := resignTo(t, l, "nobody"); code != http.StatusOK {
		t.Fatalf("POST /resign?to=nobody: %d %s, want 200", code, body)
	}
	next, first := f.leader(passedOverWithin, at, func(x history.Sample) bool { return x.Elector != l.ID })
	f.mark("%s leads, %s after the handover to nobody began", next.ID, first.Start.Sub(at).Round(time.Millisecond))
	time.Sleep(2 * retry)
	h := f.check()
	for id, runs := range runsOf(h, from, at) {
		if id != l.ID {
			t.Errorf("%s led after the refused handover to %s itself: %s", id, l.ID, runs[0])
		}
	}
	onlyLeader(t, h, next, first.End)
}

// A candidate with a higher priority whose readiness flaps (ready for
// 2 retry periods, then not for 2) never takes over, and leadership does not
// move; once it stays ready, it takes over by one graceful handover.
func handoverPreferredFlaps(t *testing.T) {
	f := newFaultFleet(t, "leases")
	for i := range 2 {
		f.add(handoverConfig(f), fmt.Sprintf("h-%d", i), false)
	}
	l := f.settle()
	var ready atomic.Bool
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(probe.Close)
	cfg := handoverConfig(f)
	cfg.Extra = append(cfg.Extra, "-priority=10", "-ready-url="+probe.URL+"/ready")
	p := f.add(cfg, "preferred", false)
	from := f.mark("%s (priority 10) flaps its readiness every %s for %s", p.ID, 2*retry, 3*ttl)
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); {
		ready.Store(!ready.Load())
		time.Sleep(2 * retry)
	}
	steady := f.mark("%s stays ready", p.ID)
	ready.Store(true)
	next, first := f.leader(ttl+2*retry+passedOverWithin, steady, func(x history.Sample) bool { return x.Elector == p.ID })
	f.mark("%s leads, %s after it stayed ready", next.ID, first.Start.Sub(steady).Round(time.Millisecond))
	time.Sleep(2 * retry)
	h := f.check()
	for id, runs := range runsOf(h, from, steady) {
		if id != l.ID {
			t.Errorf("%s led while the preferred candidate flapped: %s; want %s throughout", id, runs[0], l.ID)
		}
	}
	onlyLeader(t, h, p, first.End)
}
