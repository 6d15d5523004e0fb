package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// visibilityAttempts is how many times each TTL × mode combination freezes
// its leader: 5 × (2 TTLs × 2 modes) = 20 attempts per scenario.
const visibilityAttempts = 5

// visibilityCase is one scenario at one TTL, with the k8s-electors in watch
// or polling mode.
type visibilityCase struct {
	scenario string
	plain    bool // the followers are plain client-go (cmd/plainfollower)
	// sameSecond freezes the leader after a renewal in the same second as
	// the one before, with the k8s-electors renewing every retry period
	// (-renew-interval, client-go's cadence) so that such renewals come;
	// otherwise after any renewal, at the default renew interval.
	sameSecond bool
	ttl        time.Duration
	watch      bool
}

func (c visibilityCase) name() string {
	mode := "watch"
	if !c.watch {
		mode = "poll"
	}
	return fmt.Sprintf("%s,ttl=%s,%s", strings.ReplaceAll(c.scenario, " ", "_"), c.ttl, mode)
}

// visibilityResult is what one combination saw over its whole recording.
type visibilityResult struct {
	c        visibilityCase
	attempts int
	overlaps int
	stale    int
	// margins are, per attempt, the new leader's acquisition (its
	// acquireTime in the Lease) less the old leader's last valid_until.
	margins []time.Duration
}

// visibilityScenarios are TestVisibility's scenarios, each run at TTL 2s and
// 3s in the modes it lists.
var visibilityScenarios = []struct {
	name       string
	plain      bool
	sameSecond bool
	modes      []bool // watch
}{
	{"freeze after a same-second renewal", false, true, []bool{true, false}},
	{"freeze after a same-second renewal with client-go followers", true, true, []bool{true, false}},
	{"freeze after a renewal at the default interval with client-go followers", true, false, []bool{true}},
}

// TestVisibility freezes a k8s-elector leader right after a renewal that a
// plain follower cannot see: client-go's LeaderElector (and so every
// follower) restarts its expiry clock only when the raw record it reads
// changes, and that record has whole-second times, so a renewal sent in the
// same wall-clock second as the previous one changes nothing it compares.
// The leader must count its lease from the first write of that second.
//
// Each attempt watches the Lease until the leader renews in the same UTC
// second as its previous renewal (the k8s-electors renew every retry
// period then, as client-go does; at the default renew interval, twice
// that and at least 1s, renewals never share a second, and a third
// scenario freezes the leader right after any renewal), then at once
// blackholes the leader's proxy
// and SIGSTOPs it; once another candidate answers is_leader, it SIGCONTs the
// old leader, still partitioned, whose answers from then on must be
// is_leader:false; then it heals the partition. The followers are
// k8s-electors in one scenario and plain client-go LeaderElectors in the
// other. Over the whole recording: never two leaders, no stale write
// accepted by the fenced store, and the invariants of TestFault.
//
// Each attempt also checks and logs its margin: the new leader's acquisition
// time (its acquireTime in the Lease) less the old leader's last reported
// valid_until, which must be positive even when the old leader was resumed
// too late to show two leaders; the test ends with the minimum and median
// per scenario.
//
// The same-second scenarios run at TTL 2s and 3s, with the k8s-electors
// watching the lock and polling it (-watch=false), the third at both TTLs
// with the watch: 10 combinations, in parallel as TestFault's scenarios.
func TestVisibility(t *testing.T) {
	parallelParent(t)
	plain := buildPlainFollower(t)
	var (
		mu      sync.Mutex
		results []visibilityResult
	)
	t.Cleanup(func() { logVisibility(t, results) })
	for _, sc := range visibilityScenarios {
		for _, ttl := range []time.Duration{2 * time.Second, 3 * time.Second} {
			for _, watch := range sc.modes {
				c := visibilityCase{scenario: sc.name, plain: sc.plain, sameSecond: sc.sameSecond, ttl: ttl, watch: watch}
				t.Run(c.name(), func(t *testing.T) {
					parallel(t)
					r := runVisibility(t, c, plain)
					mu.Lock()
					defer mu.Unlock()
					results = append(results, r)
				})
			}
		}
	}
}

// buildPlainFollower builds cmd/plainfollower into a temporary directory.
func buildPlainFollower(t *testing.T) string {
	t.Helper()
	return buildProgram(t, "", "./cmd/plainfollower", "plainfollower")
}

// visibilityFleet is a fault fleet whose leader, at every attempt, is a
// k8s-elector.
type visibilityFleet struct {
	*faultFleet
	c        visibilityCase
	plainCfg fleet.Config
	plains   int                     // plain followers started so far, for their IDs
	elector  map[*fleet.Elector]bool // the k8s-electors
	retired  []*fleet.Elector        // plain followers stopped to hand leadership back
}

func runVisibility(t *testing.T, c visibilityCase, plainBinary string) visibilityResult {
	v := &visibilityFleet{faultFleet: newFaultFleet(t, "leases"), c: c, elector: map[*fleet.Elector]bool{}}
	cfg := fleet.Config{Binary: binary, Election: faultElection, Namespace: v.ns, LockType: "leases", TTL: c.ttl}
	if !c.watch {
		cfg.Extra = []string{"-watch=false"}
	}
	if c.sameSecond {
		cfg.Extra = append(cfg.Extra, "-renew-interval="+elector.DefaultTimings(c.ttl).RetryPeriod.String())
	}
	v.plainCfg = fleet.Config{Binary: plainBinary, Election: faultElection, Namespace: v.ns, LockType: "leases", TTL: c.ttl}
	if c.plain {
		// The k8s-elector leads first; the plain followers join it.
		v.elector[v.add(cfg, "elector-0", false)] = true
		v.leader(recoverWithin, time.Time{}, nil)
		v.addPlain()
		v.addPlain()
	} else {
		for i := range 3 {
			v.elector[v.add(cfg, fmt.Sprintf("elector-%d", i), false)] = true
		}
	}

	res := visibilityResult{c: c}
	type heal struct {
		at       time.Time
		electors []string // the fleet then: plain followers come and go
	}
	var healed []heal
	for n := 1; n <= visibilityAttempts; n++ {
		l := v.settle()
		if !v.elector[l] {
			l = v.handBack(l)
		}
		margin, at := v.attempt(n, l)
		res.attempts++
		res.margins = append(res.margins, margin)
		var ids []string
		for _, e := range v.electors {
			ids = append(ids, e.ID)
		}
		healed = append(healed, heal{at, ids})
	}
	v.settle()
	h := v.check()
	// Invariant (d), as check has it, over the candidates that ran when the
	// partition healed.
	for _, hl := range healed {
		of := h
		of.Electors = hl.electors
		of.Samples = slices.DeleteFunc(slices.Clone(h.Samples), func(s history.Sample) bool { return !slices.Contains(hl.electors, s.Elector) })
		d, ok := of.TimeToOneLeader(hl.at)
		switch {
		case !ok:
			t.Errorf("invariant (d): no single leader after the partition healed at %s", stamp(hl.at))
		case d > recoverWithin:
			t.Errorf("invariant (d): a single leader only %s after the partition healed, want within TTL + 2.2 × retry period (%s with slack)", d, recoverWithin)
		}
	}
	for _, e := range v.retired {
		if lines := history.StackTraces(e.Logs()); len(lines) > 0 {
			t.Errorf("invariant (e): %s logged a stack trace: %q", e.ID, lines)
		}
	}
	stale, _ := h.StaleWrites()
	res.overlaps, res.stale = len(h.Overlaps()), len(stale)
	t.Logf("%s: %d attempts, %d overlaps, %d stale writes accepted; margin %s",
		c.name(), res.attempts, res.overlaps, res.stale, marginStats(res.margins))
	return res
}

// attempt freezes the leader l right after a same-second renewal, as
// TestVisibility's doc says, and checks what it answers when it resumes. It returns the margin (the new leader's acquisition less l's last
// valid_until) and when the partition healed.
func (v *visibilityFleet) attempt(n int, l *fleet.Elector) (margin time.Duration, healed time.Time) {
	t := v.t
	t.Helper()
	retry := elector.DefaultTimings(v.c.ttl).RetryPeriod
	jittered := retry * 22 / 10
	begin := time.Now()
	held, _ := v.rec.Latest(l.ID)
	if !held.Leading() {
		t.Fatalf("attempt %d: %s answers %+v, want is_leader=true: the fleet had settled on it", n, l.ID, held.Status)
	}

	prev, cur := v.nextRenewal(l, 4*v.c.ttl+faultSlack)
	v.proxy(l).Blackhole()
	kill := time.Now()
	if err := l.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// On a loaded machine the process can run on for tens of milliseconds
	// after kill returns: a SIGSTOP takes effect when one of its threads
	// gets a CPU to act on it. Only a request sent after every thread has
	// stopped is surely answered after the SIGCONT.
	stopped, err := waitStopped(l.PID(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v.mark("attempt %d: %s renewed at %s and at %s: blackhole and SIGSTOP it (stopped %s after the kill)",
		n, l.ID, micros(prev), micros(cur), stopped.Sub(kill).Round(100*time.Microsecond))

	limit := v.c.ttl + jittered + faultSlack
	next, first := v.takeover(l, stopped, limit)
	if err := l.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := v.mark("%s answers is_leader with token %s: SIGCONT %s, still partitioned", next.ID, first.Token(), l.ID)
	time.Sleep(time.Second + retry)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease, err := admin.CoordinationV1().Leases(v.ns).Get(ctx, faultElection, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := v.rec.Snapshot()
	healed = v.mark("heal %s", l.ID)
	v.proxy(l).Pass()

	// Requests sent while it was stopped are answered when it resumes, and
	// every answer from then on must say not-leader: its lease ran out
	// before anyone else could take the lock.
	answered := false
	for _, s := range h.Of(l.ID) {
		if !s.OK() || !s.Start.After(stopped) {
			continue
		}
		answered = true
		if s.Leading() {
			t.Errorf("attempt %d: %s answered is_leader=true with token %s (valid_until %s) at %s, after SIGCONT at %s; want is_leader=false: %s had answered is_leader with token %s at %s",
				n, l.ID, s.Token(), stamp(s.Status.ValidUntil), stamp(s.End), stamp(resumed), next.ID, first.Token(), stamp(first.End))
			break
		}
	}
	if !answered {
		t.Errorf("attempt %d: %s did not answer within %s of SIGCONT, want is_leader=false", n, l.ID, time.Second+retry)
	}

	// Its term's last valid_until: the latest it reported with the token
	// it held when the attempt began, before the freeze or after it.
	var lastValid time.Time
	for _, s := range h.Of(l.ID) {
		if s.Leading() && s.Token() == held.Token() && s.Status.ValidUntil.After(lastValid) {
			lastValid = s.Status.ValidUntil
		}
	}
	acquired, how := first.Start, "first is_leader request"
	if holder := ptrString(lease.Spec.HolderIdentity); holder == next.ID && lease.Spec.AcquireTime != nil {
		acquired, how = lease.Spec.AcquireTime.Time, "acquireTime"
	} else {
		t.Logf("attempt %d: the lease names %q, not %s: margin from its first is_leader request instead", n, holder, next.ID)
	}
	margin = acquired.Sub(lastValid)
	overlaps := 0
	for _, o := range h.Overlaps() {
		if o.To.After(begin) {
			overlaps++
		}
	}
	t.Logf("attempt %d: %s (token %s) last reported valid_until %s; %s (token %s) acquired at %s (%s): margin %s; %d overlaps",
		n, l.ID, held.Token(), stamp(lastValid), next.ID, first.Token(), stamp(acquired), how, margin.Round(time.Millisecond), overlaps)
	// Whether or not the old leader was resumed in time to say so, its
	// claim must end before anyone else can acquire: a follower's clock
	// starts no earlier than the first write of the second it last saw.
	if margin <= 0 {
		t.Errorf("attempt %d: %s acquired at %s, %s before %s's last valid_until %s; want after it",
			n, next.ID, micros(acquired), -margin, l.ID, micros(lastValid))
	}
	if lastValid.IsZero() {
		t.Errorf("attempt %d: no answer of %s with is_leader=true and token %s, want its valid_until before the freeze", n, l.ID, held.Token())
	}
	return margin, healed
}

// nextRenewal watches the election's Lease until l renews (in the same UTC
// wall-clock second as its previous renewal, in the same-second
// scenarios), and returns both renew times (on l's clock, which is the
// test's).
func (v *visibilityFleet) nextRenewal(l *fleet.Elector, limit time.Duration) (prev, cur time.Time) {
	t := v.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	leases := admin.CoordinationV1().Leases(v.ns)
	lease, err := leases.Get(ctx, faultElection, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := leases.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", faultElection).String(),
		ResourceVersion: lease.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	prev = renewedBy(lease, l.ID)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch of lease %s/%s ended before %s renewed twice in one second", v.ns, faultElection, l.ID)
			}
			lease, isLease := ev.Object.(*coordinationv1.Lease)
			if !isLease {
				t.Fatalf("watching lease %s/%s: got a %s event of %T, want a Lease", v.ns, faultElection, ev.Type, ev.Object)
			}
			if ev.Type != watch.Modified {
				continue
			}
			cur = renewedBy(lease, l.ID)
			if cur.IsZero() {
				t.Fatalf("lease %s/%s names %q while waiting for renewals by %s, want %s", v.ns, faultElection, ptrString(lease.Spec.HolderIdentity), l.ID, l.ID)
			}
			if !prev.IsZero() && cur.After(prev) && (cur.Unix() == prev.Unix() || !v.c.sameSecond) {
				return prev, cur
			}
			prev = cur
		case <-ctx.Done():
			t.Fatalf("%s did not renew twice in one wall-clock second within %s", l.ID, limit)
		}
	}
}

// waitStopped waits up to limit until every thread of process pid is
// stopped, and returns when it saw them so.
func waitStopped(pid int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	var states []string
	for {
		states = states[:0]
		stopped := true
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil {
			return time.Time{}, err
		}
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue // the thread exited
			}
			// The state follows the command name in parentheses, which can
			// hold anything, so it is read after the last ')'.
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			if len(f) == 0 {
				return time.Time{}, fmt.Errorf("%s: no state in %q", task, b)
			}
			states = append(states, f[0])
			if f[0] != "T" && f[0] != "t" {
				stopped = false
			}
		}
		now := time.Now()
		if stopped && len(states) > 0 {
			return now, nil
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("process %d: threads in states %v %s after SIGSTOP, want all T", pid, states, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// renewedBy returns the lease's renew time if id holds it, else zero.
func renewedBy(l *coordinationv1.Lease, id string) time.Time {
	if ptrString(l.Spec.HolderIdentity) != id || l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}

// takeover waits until a candidate other than old answers is_leader to a
// request sent after since, and returns it with that answer. It checks more
// often than the recorder polls, so that the old leader is resumed as soon
// as possible after somebody else leads.
func (v *visibilityFleet) takeover(old *fleet.Elector, since time.Time, limit time.Duration) (*fleet.Elector, history.Sample) {
	t := v.t
	t.Helper()
	deadline := since.Add(limit)
	for {
		for _, e := range v.electors {
			if s, _ := v.rec.Latest(e.ID); e != old && s.Leading() && s.Start.After(since) {
				return e, s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no candidate but %s answered is_leader within %s of the freeze", old.ID, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// addPlain starts one more plain client-go follower.
func (v *visibilityFleet) addPlain() *fleet.Elector {
	v.plains++
	return v.add(v.plainCfg, fmt.Sprintf("plain-%d", v.plains), false)
}

// handBack makes a k8s-elector lead again after the plain follower p took
// over: the other plain followers are cut off, p gets SIGTERM and releases,
// and the k8s-elector, the only candidate that can reach the API server,
// takes the lease. Then the others are healed, a fresh plain follower
// replaces p, and the fleet settles.
func (v *visibilityFleet) handBack(p *fleet.Elector) *fleet.Elector {
	t := v.t
	t.Helper()
	var held []string
	for _, e := range v.electors {
		if e != p && !v.elector[e] {
			v.proxy(e).Blackhole()
			held = append(held, e.ID)
		}
	}
	released := v.mark("blackhole %s; SIGTERM %s, which releases", strings.Join(held, ", "), p.ID)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(2 * v.c.ttl)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", p.ID, code)
	}
	v.retire(p)
	l, _ := v.leader(v.c.ttl+faultSlack, released, nil)
	if !v.elector[l] {
		t.Fatalf("%s leads after %s released, want a k8s-elector: the other plain followers were cut off", l.ID, p.ID)
	}
	for _, e := range v.electors {
		if !v.elector[e] {
			v.proxy(e).Pass()
		}
	}
	v.mark("%s leads; heal %s and start a fresh plain follower", l.ID, strings.Join(held, ", "))
	v.addPlain()
	if s := v.settle(); s != l {
		t.Fatalf("%s leads after the handover, want %s", s.ID, l.ID)
	}
	return l
}

// retire drops a stopped candidate from the fleet; the recorder keeps
// polling it (its answers are errors).
func (v *visibilityFleet) retire(e *fleet.Elector) {
	i := slices.Index(v.electors, e)
	v.electors = slices.Delete(v.electors, i, i+1)
	v.proxies = slices.Delete(v.proxies, i, i+1)
	v.retired = append(v.retired, e)
}

// logVisibility logs, per scenario, the attempts, overlaps, stale writes and
// margins of every combination and of all of them.
func logVisibility(t *testing.T, results []visibilityResult) {
	slices.SortFunc(results, func(a, b visibilityResult) int { return strings.Compare(a.c.name(), b.c.name()) })
	var b strings.Builder
	for _, sc := range visibilityScenarios {
		scenario := sc.name
		var all visibilityResult
		for _, r := range results {
			if r.c.scenario != scenario {
				continue
			}
			fmt.Fprintf(&b, "%-74s %2d attempts, %d overlaps, %d stale writes accepted; margin %s\n",
				r.c.name(), r.attempts, r.overlaps, r.stale, marginStats(r.margins))
			all.attempts += r.attempts
			all.overlaps += r.overlaps
			all.stale += r.stale
			all.margins = append(all.margins, r.margins...)
		}
		fmt.Fprintf(&b, "%-74s %2d attempts, %d overlaps, %d stale writes accepted; margin %s\n",
			scenario+", in all:", all.attempts, all.overlaps, all.stale, marginStats(all.margins))
	}
	t.Logf("acquisition by the new leader less the old leader's last valid_until:\n%s", b.String())
}

// marginStats renders the minimum and median of margins.
func marginStats(margins []time.Duration) string {
	if len(margins) == 0 {
		return "none"
	}
	m := slices.Sorted(slices.Values(margins))
	median := m[len(m)/2]
	if len(m)%2 == 0 {
		median = (m[len(m)/2-1] + m[len(m)/2]) / 2
	}
	return fmt.Sprintf("min %s, median %s", m[0].Round(time.Millisecond), median.Round(time.Millisecond))
}

func micros(t time.Time) string { return t.UTC().Format("15:04:05.000000") }

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
