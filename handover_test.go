package elector

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// forEachWatchedLock runs f for every lock type with the watch (a successor
// takes over when its watch shows the release), each in a synctest bubble.
func forEachWatchedLock(t *testing.T, f func(t *testing.T, lock LockType)) {
	for _, lock := range lockTypes() {
		t.Run(string(lock), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { f(t, lock) })
		})
	}
}

// TestResignToHandsOverInOneWrite: a leader that resigns to a named
// candidate releases the lock naming it; the successor leads at once, with
// one acquisition, and none of the other candidates writes at all.
func TestResignToHandsOverInOneWrite(t *testing.T) {
	forEachWatchedLock(t, func(t *testing.T, lock LockType) {
		c := electortest.NewCluster()
		cands := []*candidate{start(t, c, "a", lock), start(t, c, "b", lock), start(t, c, "c", lock), start(t, c, "d", lock)}
		old, _ := waitLeader(t, testTTL, cands...)
		testkit.Settle(maxRetryWait)
		var succ *candidate
		var others []*candidate
		for _, cand := range cands {
			switch {
			case cand == old:
			case succ == nil:
				succ = cand
			default:
				others = append(others, cand)
			}
		}
		before := map[*candidate]int{}
		for _, cand := range cands {
			before[cand] = writes(cand)
		}
		transitions := lockHolder(t, c.Client(), lock).LeaderTransitions

		if err := old.e.ResignTo(context.Background(), succ.id); err != nil {
			t.Fatal(err)
		}
		next, took := waitLeader(t, testTTL, cands...)
		if next != succ {
			t.Fatalf("%s leads after the handover to %s", next.id, succ.id)
		}
		if took >= successorWindow {
			t.Errorf("the successor led %s after the release, want within its window (%s)", took, successorWindow)
		}
		// One acquisition: one write per lock object (two for a
		// migration lock), before any renewal.
		perWrite := 1
		if _, migrates := migrating(lock); migrates {
			perWrite = 2
		}
		if got := writes(succ) - before[succ]; got != perWrite {
			t.Errorf("the successor sent %d writes to take the lock, want %d", got, perWrite)
		}
		if got := lockHolder(t, c.Client(), lock); got.HolderIdentity != succ.id || got.LeaderTransitions != transitions+1 {
			t.Errorf("lock: holder %q, %d transitions; want %s, %d", got.HolderIdentity, got.LeaderTransitions, succ.id, transitions+1)
		}
		testkit.Settle(successorWindow + maxRetryWait)
		for _, o := range others {
			if got := writes(o) - before[o]; got != 0 {
				t.Errorf("%s sent %d writes during the handover to %s, want none", o.id, got, succ.id)
			}
		}
		if ids := leaders(cands...); len(ids) != 1 || ids[0] != succ.id {
			t.Errorf("leaders after the window: %v, want [%s]", ids, succ.id)
		}
	})
}

// TestDeadSuccessorIsPassedOverAfterTheWindow: a handover to a candidate
// that never takes the lock (here, one that does not exist) costs the
// others the window, not a lease: one of them leads right after it.
func TestDeadSuccessorIsPassedOverAfterTheWindow(t *testing.T) {
	forEachWatchedLock(t, func(t *testing.T, lock LockType) {
		c := electortest.NewCluster()
		cands := []*candidate{start(t, c, "a", lock), start(t, c, "b", lock), start(t, c, "c", lock)}
		old, _ := waitLeader(t, testTTL, cands...)
		testkit.Settle(maxRetryWait)
		if err := old.e.ResignTo(context.Background(), "gone"); err != nil {
			t.Fatal(err)
		}
		next, took := waitLeader(t, testTTL, cands...)
		if next == old {
			t.Fatalf("%s, which resigned, leads again", old.id)
		}
		// A follower counts the window from when it saw the release, and
		// then draws its spread, half of that after any release, so that
		// one leads within the window and 50ms. (waitLeader steps by 10ms.)
		if took < successorWindow || took > successorWindow+passOverSpread+10*time.Millisecond {
			t.Errorf("%s led %s after the release to a missing successor, want the window (%s) plus at most the spread (%s)",
				next.id, took, successorWindow, passOverSpread)
		}
	})
}

// TestResignToRefusesBadSuccessors: an invalid ID or the leader's own is
// refused before anything is written, and the leader keeps leading.
func TestResignToRefusesBadSuccessors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		n := writes(a)
		for _, to := range []string{"", "  ", "a\nb", "a"} {
			if err := a.e.ResignTo(context.Background(), to); err == nil {
				t.Errorf("ResignTo(%q) = nil, want an error", to)
			}
		}
		if err := a.e.ResignTo(context.Background(), "a"); !errors.Is(err, errSelfSuccessor) {
			t.Errorf("ResignTo(itself) = %v, want %v", err, errSelfSuccessor)
		}
		if writes(a) != n || !a.e.Status().IsLeader {
			t.Errorf("a refused handover wrote the lock or ended the term")
		}
	})
}

// TestSuccessorHintBelongsToItsRelease: the hint names a successor only on
// the release it was written with. A record written over it by an elector
// that keeps other annotations (client-go does), or a later release, does
// not inherit it.
func TestSuccessorHintBelongsToItsRelease(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	release := resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, AcquireTime: at, RenewTime: at, LeaderTransitions: 4}
	obj := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"keep": "me"}}}
	setSuccessor(obj, release, "b")
	if got := successorOf(obj, release); got != "b" {
		t.Fatalf("successorOf(the release) = %q, want b", got)
	}
	if obj.Annotations["keep"] != "me" {
		t.Errorf("setSuccessor dropped another annotation: %v", obj.Annotations)
	}
	taken := release
	taken.HolderIdentity, taken.LeaderTransitions = "x", 5
	later := release
	later.RenewTime = metav1.NewTime(at.Add(time.Minute))
	for name, rec := range map[string]resourcelock.LeaderElectionRecord{"a record with a holder": taken, "a later release": later} {
		if got := successorOf(obj, rec); got != "" {
			t.Errorf("successorOf(%s) = %q, want none", name, got)
		}
	}
	setSuccessor(obj, taken, "")
	if _, ok := obj.Annotations[successorAnnotation]; ok || obj.Annotations["keep"] != "me" {
		t.Errorf("a write without a successor left %v, want only the other annotation", obj.Annotations)
	}
	obj.Annotations[successorAnnotation] = `{"to":"a\nb","leaderTransitions":4,"renewTime":` + "1796385600}"
	if got := successorOf(obj, release); got != "" {
		t.Errorf("successorOf(a hint with an invalid ID) = %q, want none", got)
	}
}

// TestReleaseNamesTheBestCandidate: a leader that stops names, in its
// release, the ready candidate with the highest priority from the
// candidate Leases it watched during its term; that one leads in one write
// and nobody else writes the lock.
func TestReleaseNamesTheBestCandidate(t *testing.T) {
	forEachWatchedLock(t, func(t *testing.T, lock LockType) {
		c := electortest.NewCluster()
		a := start(t, c, "a", lock, WithPriority(9))
		waitLeader(t, testTTL, a)
		closed := errors.New("not ready")
		cands := []*candidate{
			start(t, c, "b", lock, WithPriority(1)),
			start(t, c, "c", lock, WithPriority(5)),
			// Ready or not, the highest priority of the followers.
			start(t, c, "d", lock, WithPriority(7), WithCandidacyGate(func(context.Context) error { return closed }, 1)),
			start(t, c, "e", lock),
		}
		testkit.Settle(2 * maxRetryWait)
		before := map[*candidate]int{}
		for _, cand := range cands {
			before[cand] = writes(cand)
		}
		a.stop(t)
		next, took := waitLeader(t, testTTL, cands...)
		if next.id != "c" {
			t.Fatalf("%s leads after the leader stopped, want c: the ready candidate with the highest priority", next.id)
		}
		if took >= successorWindow {
			t.Errorf("c led %s after the release, want within its window", took)
		}
		testkit.Settle(successorWindow + maxRetryWait)
		for _, cand := range cands {
			if cand != next && writes(cand) != before[cand] {
				t.Errorf("%s wrote the lock during the handover to c", cand.id)
			}
		}
	})
}

// TestIdleCandidatesCostOneRequestPerRenewal: over an hour, a candidate
// that does not lead sends one request per candidateRenewal for its
// candidate Lease, and one to delete it when it stops. (The registry alone:
// a whole Elector's watch, stopped an hour of virtual time in, would leave
// client-go's global error backoff an hour ahead for the next tests.)
func TestIdleCandidatesCostOneRequestPerRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := electortest.NewCluster().Client()
		r := newRegistry(client.CoordinationV1().Leases("default"), client, testElection, "b", 0,
			func() bool { return true }, time.Second, logr.Discard())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.run(ctx) }()
		time.Sleep(time.Hour)
		r.finish()
		<-done
		cancel()
		counts := map[string]int{}
		for _, act := range client.Actions() {
			counts[act.GetVerb()]++
		}
		// A get and a create at the start, an update per renewal (a
		// tenth of jitter: 5 or 6 in the hour), a delete at the end.
		renewals := counts["update"]
		if counts["get"] != 1 || counts["create"] != 1 || counts["delete"] != 1 || renewals > int(time.Hour/candidateRenewal) || len(counts) != 4 {
			t.Errorf("a candidate's registry sent %v in an hour, want a get, a create, at most %d updates and a delete",
				counts, int(time.Hour/candidateRenewal))
		}
		t.Logf("an idle candidate's registry, in an hour: %v", counts)
		if _, err := client.CoordinationV1().Leases("default").Get(context.Background(), r.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the candidate Lease is still there after the registry finished: %v", err)
		}
	})
}

// requestHandover runs RequestHandover on its own client in the bubble and
// returns its answer once it returns.
func requestHandover(t *testing.T, c *electortest.Cluster, lock LockType, to string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTTL)
	defer cancel()
	return RequestHandover(ctx, c.Client(), lock, "default", testElection, to)
}

// TestRequestHandoverThroughTheLock: an operator's request on the lock
// object moves leadership to the candidate it names, or to the best one,
// and returns the new leader; a request the leader cannot honour is
// refused with one line saying why, and leadership stays.
func TestRequestHandoverThroughTheLock(t *testing.T) {
	forEachWatchedLock(t, func(t *testing.T, lock LockType) {
		c := electortest.NewCluster()
		a := start(t, c, "a", lock, WithPriority(1))
		waitLeader(t, testTTL, a)
		closed := errors.New("not ready")
		b := start(t, c, "b", lock)
		cc := start(t, c, "c", lock, WithPriority(2))
		d := start(t, c, "d", lock, WithCandidacyGate(func(context.Context) error { return closed }, 1))
		cands := []*candidate{a, b, cc, d}
		testkit.Settle(2 * maxRetryWait)

		for _, tc := range []struct{ to, want string }{
			{"zz", "no candidate zz in this election"},
			{"d", "candidate d is not ready"},
			{"a", "a leads election default/example already"},
		} {
			if got, err := requestHandover(t, c, lock, tc.to); !errors.Is(err, ErrHandover) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("handover to %s: %q, %v; want an ErrHandover saying %q", tc.to, got, err, tc.want)
			}
			if ids := leaders(cands...); len(ids) != 1 || ids[0] != "a" {
				t.Fatalf("after a refused handover to %s, leaders %v, want [a]", tc.to, ids)
			}
		}
		got, err := requestHandover(t, c, lock, "b")
		if err != nil || got != "b" {
			t.Fatalf("handover to b: %q, %v; want b", got, err)
		}
		if next, _ := waitLeader(t, testTTL, cands...); next != b {
			t.Fatalf("%s leads after the handover to b", next.id)
		}
		// To the best other ready candidate: c has the highest priority.
		got, err = requestHandover(t, c, lock, "")
		if err != nil || got != "c" {
			t.Fatalf("handover to the best: %q, %v; want c", got, err)
		}
		waitLeader(t, testTTL, cands...)
	})
}

// TestRacingHandoverRequests: two requests at once end with one leader;
// each caller learns who leads, and the one not honoured gets an error.
func TestRacingHandoverRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		b, cc := start(t, c, "b", LockLeases), start(t, c, "c", LockLeases)
		testkit.Settle(2 * maxRetryWait)
		type answer struct {
			got string
			err error
		}
		answers := make(chan answer, 2)
		for _, to := range []string{"b", "c"} {
			go func() {
				got, err := requestHandover(t, c, LockLeases, to)
				answers <- answer{got, err}
			}()
		}
		first, second := <-answers, <-answers
		next, _ := waitLeader(t, testTTL, a, b, cc)
		t.Logf("racing requests: (%q, %v) and (%q, %v); %s leads", first.got, first.err, second.got, second.err, next.id)
		ok := 0
		for _, ans := range []answer{first, second} {
			switch {
			case ans.err == nil && ans.got == next.id:
				ok++
			case ans.err != nil && errors.Is(ans.err, ErrHandover):
			default:
				t.Errorf("a racing request answered %q, %v; want the leader %s or an ErrHandover", ans.got, ans.err, next.id)
			}
		}
		if ok != 1 {
			t.Errorf("%d requests were honoured, want 1", ok)
		}
	})
}

// TestHigherPriorityTakesOverGracefully: a ready candidate with a higher
// priority than the leader's takes over by a graceful handover, once it
// has been ready for a TTL: the old leader's work ends before the new
// one's term starts, never two leaders. An equal priority never preempts.
func TestHigherPriorityTakesOverGracefully(t *testing.T) {
	forEachWatchedLock(t, func(t *testing.T, lock LockType) {
		c := electortest.NewCluster()
		a := start(t, c, "a", lock, WithPriority(1))
		waitLeader(t, testTTL, a)
		same := start(t, c, "same", lock, WithPriority(1))
		testkit.Settle(2 * testTTL)
		if ids := leaders(a, same); len(ids) != 1 || ids[0] != "a" {
			t.Fatalf("with an equal priority beside it: leaders %v, want [a]", ids)
		}
		b := start(t, c, "b", lock, WithPriority(5))
		begin := time.Now()
		next, took := waitLeader(t, 3*testTTL, a, same, b)
		for next != b && time.Since(begin) < 3*testTTL {
			next, _ = waitLeader(t, 3*testTTL, a, same, b)
			time.Sleep(10 * time.Millisecond)
		}
		took = time.Since(begin)
		if next != b {
			t.Fatalf("%s leads %s after b (priority 5) joined, want b", next.id, took)
		}
		if took < testTTL {
			t.Errorf("b took over %s after it joined, before it had been ready for a TTL (%s)", took, testTTL)
		}
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Errorf("a's callbacks %v, want [started stopped]", got)
		}
		testkit.Settle(2 * testTTL)
		if ids := leaders(a, same, b); len(ids) != 1 || ids[0] != "b" {
			t.Errorf("after the preemption, leaders %v, want [b] to stay", ids)
		}
	})
}

// TestFlappingPreemptorMovesNothing: a candidate with a higher priority
// whose readiness flaps faster than a TTL never takes over: leadership
// stays where it is.
func TestFlappingPreemptorMovesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		var mu sync.Mutex
		up := true
		flap := func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if up {
				return nil
			}
			return errors.New("down")
		}
		b := start(t, c, "b", LockLeases, WithPriority(9), WithCandidacyGate(flap, 1))
		for range 20 { // 20 × testTTL/2: ready half of each TTL
			testkit.Settle(testTTL / 2)
			mu.Lock()
			up = !up
			mu.Unlock()
			if ids := leaders(a, b); len(ids) != 1 || ids[0] != "a" {
				t.Fatalf("leaders %v while b's readiness flaps, want [a]", ids)
			}
		}
	})
}

// TestPreferredHolderGetsTheLock: on a cluster that keeps the Lease's
// strategy and preferred holder (Coordinated Leader Election), a preferred
// holder that names another ready candidate makes the leader hand over to
// it; one that names no candidate of the election changes nothing.
func TestPreferredHolderGetsTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases)
		testkit.Settle(2 * maxRetryWait)
		prefer := func(who string) {
			t.Helper()
			leases := c.Client().CoordinationV1().Leases("default")
			l, err := leases.Get(context.Background(), testElection, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			strategy := coordinationv1.CoordinatedLeaseStrategy("OldestEmulationVersion")
			l.Spec.Strategy, l.Spec.PreferredHolder = &strategy, &who
			if _, err := leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		prefer("nobody")
		testkit.Settle(3 * maxRetryWait)
		if ids := leaders(a, b); len(ids) != 1 || ids[0] != "a" {
			t.Fatalf("with a preferred holder that is no candidate: leaders %v, want [a]", ids)
		}
		prefer("b")
		begin := time.Now()
		testkit.WaitFor(t, 2*maxRetryWait, "b leads", func() bool { return b.e.Status().IsLeader })
		t.Logf("b leads %s after it was made the preferred holder", time.Since(begin))
		testkit.Settle(2 * maxRetryWait)
		if ids := leaders(a, b); len(ids) != 1 || ids[0] != "b" {
			t.Errorf("leaders %v, want [b] to stay", ids)
		}
	})
}
