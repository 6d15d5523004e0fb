package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// Timing of TestCrashAfterLostRace.
const (
	lostRaceTTL  = 3 * time.Second
	lostRaceRuns = 20
	// lostRaceKillAfter is how long after the handover the new leader is
	// killed.
	lostRaceKillAfter = 500 * time.Millisecond
	// lostRaceBound bounds the last follower's takeover, from the SIGKILL:
	// the killed leader renewed at the latest at the kill, so the lease as
	// any follower saw it ends at most a TTL after it; a watching follower
	// takes over the drift margin (TTL/50) after that, and 50ms covers its
	// write and the watch that reports it.
	lostRaceBound = lostRaceTTL + lostRaceTTL/50 + 50*time.Millisecond
)

// lostRace is what one run of TestCrashAfterLostRace measured.
type lostRace struct {
	run                  int
	released, took, last string // the first leader, the one that won the race, the one that lost it
	// afterKill is from the SIGKILL of took to the lease naming last, as a
	// watch of the Lease saw both.
	afterKill time.Duration
	// afterLease is from the end of the lease took last renewed (the
	// renewal's arrival on the watch, plus the TTL) to the lease naming
	// last.
	afterLease time.Duration
}

// TestCrashAfterLostRace checks the crash failover of a follower that lost
// the race for a released lock. Each run starts 3 k8s-electors at
// -ttl=3s in watch mode, on a Lease of its own; SIGTERMs the leader, which
// releases; one follower takes the lock, and 0.5s after the handover (as a
// watch of the Lease saw it) gets SIGKILL. The last follower, which lost the
// race for the released lock, must take over by the end of the killed
// leader's lease plus the drift margin: from the SIGKILL, within TTL +
// TTL/50 + 50ms, since the killed leader renewed at the latest at the kill.
// It also checks the invariants of TestFault over each run's recording,
// and logs each takeover after the end of the lease as a watch of the Lease
// last saw it renewed: the bound's own terms, which the kill's phase in the
// renewal period does not blur (the bound from the SIGKILL leaves up to a
// renew interval more when the killed leader had not renewed since the
// handover).
//
// A follower that learns of the new holder late, or waits for client-go's
// jittered retry after the lease ran out, misses the bound by up to 2.2
// retry periods (1.1s). The test runs 20 times and logs every run's figure,
// then the median and the maximum, before it fails.
func TestCrashAfterLostRace(t *testing.T) {
	ns := newNamespace(t)
	var runs []lostRace
	for n := 1; n <= lostRaceRuns; n++ {
		t.Run(fmt.Sprintf("run-%02d", n), func(t *testing.T) {
			runs = append(runs, runLostRace(t, ns, n)) // not on t.Fatal
		})
	}

	var b strings.Builder
	var kills, leases []time.Duration
	broke, late := 0, 0
	for _, r := range runs {
		verdict := "ok"
		if r.afterKill > lostRaceBound {
			verdict = "over the bound"
			broke++
		}
		if r.afterLease > lostRaceTTL/50+50*time.Millisecond {
			late++
		}
		fmt.Fprintf(&b, "run %2d: %s released, %s took over, %s lost the race; SIGKILL %s: %s took over %s after it, %s after the lease ran out: %s\n",
			r.run, r.released, r.took, r.last, r.took, r.last, r.afterKill.Round(time.Millisecond), r.afterLease.Round(time.Millisecond), verdict)
		kills = append(kills, r.afterKill)
		leases = append(leases, r.afterLease)
	}
	if len(runs) > 0 {
		fmt.Fprintf(&b, "from the SIGKILL: median %s, max %s, %d of %d runs over the bound of %s; after the lease ran out: median %s, max %s, %d of %d over TTL/50 + 50ms",
			median(kills).Round(time.Millisecond), slices.Max(kills).Round(time.Millisecond), broke, len(runs), lostRaceBound,
			median(leases).Round(time.Millisecond), slices.Max(leases).Round(time.Millisecond), late, len(runs))
	}
	t.Logf("crash failover after a lost race, TTL %s:\n%s", lostRaceTTL, b.String())
	if len(runs) < lostRaceRuns {
		t.Errorf("%d of %d runs measured a takeover", len(runs), lostRaceRuns)
	}
	if broke > 0 {
		t.Errorf("%d of %d takeovers came later than TTL + TTL/50 + 50ms (%s) after the SIGKILL", broke, len(runs), lostRaceBound)
	}
}

// runLostRace runs one handover and crash on the Lease lostrace-<n> in ns.
func runLostRace(t *testing.T, ns string, n int) lostRace {
	election := fmt.Sprintf("lostrace-%02d", n)
	lw := watchLease(t, ns, election)

	cfg := fleet.Config{
		Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: election,
		Namespace: ns, LockType: "leases", TTL: lostRaceTTL,
	}
	rec := history.NewRecorder()
	defer rec.Stop()
	byID := map[string]*fleet.Elector{}
	var electors []*fleet.Elector
	for i := range 3 {
		e := startElector(t, cfg, fmt.Sprintf("race%02d-%d", n, i))
		byID[e.ID] = e
		electors = append(electors, e)
		rec.Add(e.ID, e.Status)
	}
	defer func() {
		for _, e := range electors {
			e.Kill()
		}
	}()

	limit := 2*lostRaceTTL + slack
	first, i := awaitVersion(t, lw, 0, limit, func(v leaseVersion) bool { return v.Holder != "" })
	l := byID[first.Holder]
	if l == nil {
		t.Fatalf("the lease names %q, not one of the electors", first.Holder)
	}
	// Every follower knows the leader before it releases.
	waitAgree(t, lostRaceTTL+slack, l, electors...)
	released := time.Now()
	if err := l.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	handed, i := awaitVersion(t, lw, i+1, limit, func(v leaseVersion) bool { return v.Holder != "" && v.Holder != l.ID })
	next := byID[handed.Holder]
	if next == nil {
		t.Fatalf("the lease names %q, not one of the electors", handed.Holder)
	}
	var last *fleet.Elector
	for _, e := range electors {
		if e != l && e != next {
			last = e
		}
	}
	time.Sleep(time.Until(handed.At.Add(lostRaceKillAfter)))
	killed := time.Now()
	next.Kill()
	took, _ := awaitVersion(t, lw, i+1, 3*lostRaceTTL, func(v leaseVersion) bool { return v.Holder != "" && v.Holder != next.ID })
	if took.Holder != last.ID {
		t.Fatalf("the lease names %q after %s was killed, want %s", took.Holder, next.ID, last.ID)
	}
	renewed := lastOf(t, lw, next.ID)
	r := lostRace{
		run: n, released: l.ID, took: next.ID, last: last.ID,
		afterKill:  took.At.Sub(killed),
		afterLease: took.At.Sub(renewed.At.Add(lostRaceTTL)),
	}
	t.Logf("SIGTERM %s at %s; %s took over at %s; SIGKILL %s at %s (its last renewal arrived %s before); %s took over at %s: %s after the kill, %s after the lease ran out (bound %s)",
		l.ID, stamp(released), next.ID, stamp(handed.At), next.ID, stamp(killed), killed.Sub(renewed.At).Round(time.Millisecond),
		last.ID, stamp(took.At), r.afterKill.Round(time.Millisecond), r.afterLease.Round(time.Millisecond), lostRaceBound)
	if r.afterKill > lostRaceBound {
		t.Errorf("%s, which lost the race for the released lock, took over %s after %s was killed, want within TTL + TTL/50 + 50ms (%s)",
			last.ID, r.afterKill.Round(time.Millisecond), next.ID, lostRaceBound)
	}

	// Let the last follower answer as leader, then check the recording.
	time.Sleep(200 * time.Millisecond)
	h := rec.Stop()
	for _, v := range h.Violations() {
		t.Error(v)
	}
	if code, err := l.Wait(lostRaceTTL); err != nil || code != 0 {
		t.Errorf("%s after SIGTERM: exit code %d, %v; want 0", l.ID, code, err)
	}
	if t.Failed() {
		t.Logf("what each elector answered:\n%s", h.Timeline(h.Begin, h.End))
	}
	return r
}

// awaitVersion waits up to limit for a version of the Lease that lw saw,
// after the first skip, to satisfy ok, and returns it with its index.
func awaitVersion(t *testing.T, lw *leaseWatch, skip int, limit time.Duration, ok func(leaseVersion) bool) (leaseVersion, int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		seen := lw.versions()
		for i := skip; i < len(seen); i++ {
			if v := seen[i]; v.Type != watch.Deleted && ok(v) {
				return v, i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no version of the lease as wanted within %s", limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// lastOf returns the last version of the Lease that lw saw naming holder.
func lastOf(t *testing.T, lw *leaseWatch, holder string) leaseVersion {
	t.Helper()
	for _, v := range slices.Backward(lw.versions()) {
		if v.Holder == holder && v.Type != watch.Deleted {
			return v
		}
	}
	t.Fatalf("no version of the lease named %s", holder)
	return leaseVersion{}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
