package elector

import (
	"context"
	"errors"
	"fmt"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// TestResignedCandidateKeepsFollowing: a candidate that resigned for an hour
// stays out of the election, but follows it: its Status, Observe and
// LeaderOnly name the new leader.
func TestResignedCandidateKeepsFollowing(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b", WithReleaseOnCancel(false))
		testkit.Settle(maxRetryWait)
		changes := a.e.Observe(t.Context())
		if err := a.e.ResignFor(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		waitLeader(t, testTTL, a, b)
		b.stop(t) // a crash: c takes over at the lease's end
		cc := k.start(t, c, "c")
		waitLeader(t, 3*testTTL, a, cc)
		testkit.WaitFor(t, maxRetryWait+testRetry, "a sees c lead", func() bool { return a.e.Status().Leader == "c" })
		if a.e.Status().IsLeader {
			t.Fatal("a leads during its cooldown")
		}
		var seen []string
		for len(changes) > 0 {
			seen = append(seen, (<-changes).Leader)
		}
		if len(seen) == 0 || seen[len(seen)-1] != "c" {
			t.Errorf("Observe's last status names %v, want c", seen)
		}
		rec := httptest.NewRecorder()
		a.e.LeaderOnly(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got := rec.Header().Get("X-Leader"); got != "c" {
			t.Errorf("LeaderOnly's X-Leader %q during the cooldown, want c", got)
		}
	})
}

// TestGateIgnoringItsContextHoldsNothingUp: a candidacy check that hangs
// and ignores its context keeps the candidate out, but it follows the
// election (ready), reports that it does not campaign, and Run returns
// within the shutdown budget.
func TestGateIgnoringItsContextHoldsNothingUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		leader := start(t, c, "leader", LockLeases)
		waitLeader(t, testTTL, leader)
		release := make(chan struct{})
		defer close(release)
		hang := func(context.Context) error { <-release; return nil }
		a := start(t, c, "a", LockLeases, WithCandidacyGate(hang, 0))
		testkit.Settle(testRetry)
		if code := serveGET(a.e, "/readyz").Code; code != http.StatusOK {
			t.Errorf("/readyz %d while the first check hangs, want 200: the candidate follows the election", code)
		}
		s := a.e.Status()
		if s.Leader != "leader" || s.Candidate == nil || *s.Candidate {
			t.Errorf("status %+v while the first check hangs, want following leader and no candidate", s)
		}
		a.cancel()
		a.cancel = nil
		stopped := time.Now()
		if err := <-a.done; err != nil {
			t.Fatal(err)
		}
		if took, budget := time.Since(stopped), a.e.o.shutdownBudget(); took > budget {
			t.Errorf("Run returned %s after cancel, want within the shutdown budget %s", took, budget)
		}
	})
}

// TestRestartedCandidateGetsANewToken: a candidate that crashed and comes
// back with the same ID does not reuse its lease: it waits for it to run
// out, as for any other holder, and leads with a higher token.
func TestRestartedCandidateGetsANewToken(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "x", WithReleaseOnCancel(false))
		waitLeader(t, testTTL, a)
		testkit.Settle(maxRetryWait)
		before := a.e.Status()
		a.stop(t) // a crash
		again := k.start(t, c, "x")
		_, took := waitLeader(t, 3*testTTL, again)
		after := again.e.Status()
		if took < testTTL-maxRetryWait {
			t.Errorf("the restarted candidate led %s after the crash, want after its old lease ran out", took)
		}
		if after.LockUID == before.LockUID && after.LeaderTransitions <= before.LeaderTransitions {
			t.Errorf("token %s/%d after the restart, want above %s/%d", after.LockUID, after.LeaderTransitions, before.LockUID, before.LeaderTransitions)
		}
	})
}

// TestTwoProcessesWithOneIDNeverBothLead: a second process with the leader's
// ID never takes its lease while it renews, and takes over, with a new
// token, only after the first is gone.
func TestTwoProcessesWithOneIDNeverBothLead(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "x", WithReleaseOnCancel(false))
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "x")
		for end := time.Now().Add(3 * testTTL); time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			if a.e.Status().IsLeader && b.e.Status().IsLeader {
				t.Fatal("two processes with one ID both lead")
			}
			if !a.e.Status().IsLeader {
				t.Fatal("the first process lost its lease to the second")
			}
		}
		token := a.e.Status().LeaderTransitions
		a.stop(t)
		waitLeader(t, 3*testTTL, b)
		if got := b.e.Status().LeaderTransitions; got <= token {
			t.Errorf("the second process leads with token %d, want above the first's %d", got, token)
		}
	})
}

// TestZeroElectorDoesNotPanic: an Elector not built with New says so.
func TestZeroElectorDoesNotPanic(t *testing.T) {
	var e Elector
	if err := e.Run(context.Background()); err == nil {
		t.Error("Run on a zero Elector returned nil, want an error")
	}
	if s := e.Status(); s.IsLeader {
		t.Errorf("zero Elector's status %+v leads", s)
	}
	if _, ok := <-e.Observe(context.Background()); ok {
		t.Error("zero Elector's Observe sent a status, want a closed channel")
	}
	if err := e.ResignFor(context.Background(), 0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("ResignFor on a zero Elector: %v, want ErrNotLeader", err)
	}
	if code := serveGET(&e, "/").Code; code != http.StatusInternalServerError {
		t.Errorf("GET / on a zero Elector: %d, want 500", code)
	}
}

// TestCrashAfterALostRace: after a graceful handover that two followers
// race for, the winner crashes; the loser takes over at the lease's end as
// it saw the winner renew, plus the drift margin, whatever the crash's
// offset from the handover, and however long the losing write was in
// flight (it learns of the winner late).
func TestCrashAfterALostRace(t *testing.T) {
	schedules := 0
	var worst time.Duration
	for _, stall := range []time.Duration{0, 300 * time.Millisecond, 650 * time.Millisecond} {
		for _, delay := range []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, 700 * time.Millisecond, 1100 * time.Millisecond, 1900 * time.Millisecond} {
			t.Run(fmt.Sprintf("stall=%s/crash=%s", stall, delay), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c := electortest.NewCluster()
					a := start(t, c, "a", LockLeases)
					waitLeader(t, testTTL, a)
					b := start(t, c, "b", LockLeases, WithReleaseOnCancel(false))
					cc := start(t, c, "c", LockLeases, WithReleaseOnCancel(false))
					testkit.Settle(maxRetryWait)
					b.stall.Store(int64(stall))
					cc.stall.Store(int64(stall))
					forgetCandidates(t, c)
					a.stop(t) // releases, naming no successor: b and c race
					winner, _ := waitLeader(t, testTTL+stall, b, cc)
					loser := b
					if winner == b {
						loser = cc
					}
					testkit.Settle(delay)
					winner.stop(t) // a crash
					_, took := waitLeader(t, 3*testTTL, loser)
					bound := testTTL + driftMargin(testTTL) + 20*time.Millisecond
					if took > bound {
						t.Errorf("the loser took over %s after the winner crashed, want within the lease plus the drift margin (%s)", took, bound)
					}
					worst = max(worst, took-testTTL)
					schedules++
				})
			})
		}
	}
	t.Logf("%d schedules; latest takeover: the lease + %s", schedules, worst)
}

// TestCurrentTermFencesWorkOutsideTheCallback: the Elector hands out the
// current term's context, with its token, while it leads, and nothing
// otherwise; the context ends with the term.
func TestCurrentTermFencesWorkOutsideTheCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		if _, ok := a.e.CurrentTerm(); ok {
			t.Fatal("a term before a leads")
		}
		waitLeader(t, testTTL, a)
		ctx, ok := a.e.CurrentTerm()
		if !ok {
			t.Fatal("no term while a leads")
		}
		term, _ := TermFromContext(ctx)
		if s := a.e.Status(); term.LockUID != s.LockUID || term.LeaderTransitions != s.LeaderTransitions {
			t.Errorf("term token %s/%d, want the status's %s/%d", term.LockUID, term.LeaderTransitions, s.LockUID, s.LeaderTransitions)
		}
		if err := a.e.ResignFor(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() == nil {
			t.Error("the term's context lives on after the term")
		}
		if _, ok := a.e.CurrentTerm(); ok {
			t.Error("a term after a resigned")
		}
	})
}

// TestUnreadyHolderWithoutATermLetsGo: a leader whose renewals failed past
// the renew deadline still holds the lock; if its application is not ready
// by the time it reaches the API server again, it releases the lock instead
// of starting a new term.
func TestUnreadyHolderWithoutATermLetsGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		appA, appB := newAppCheck(true), newAppCheck(true)
		a := start(t, c, "a", LockLeases, WithCandidacyGate(appA.check, 0))
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases, WithCandidacyGate(appB.check, 0))
		testkit.Settle(maxRetryWait)
		refused := errors.New("connection refused")
		a.fault.Store(&refused)
		testkit.WaitFor(t, testTTL, "a's term ends", func() bool { return !a.e.Status().IsLeader })
		appA.ready.Store(false)
		testkit.Settle(2 * testRetry) // a's gate closes
		a.fault.Store(nil)
		for end := time.Now().Add(testTTL); time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			if a.e.Status().IsLeader {
				t.Fatal("a started a new term with its application not ready")
			}
			if b.e.Status().IsLeader {
				return
			}
		}
		t.Fatal("b never took over from a holder that is not ready")
	})
}

// TestCoordinatedLeaseFieldsAreKept: a Lease's strategy and preferred
// holder, which a coordinator of Coordinated Leader Election sets, survive
// our acquisition, renewals and release; plain client-go's renewals erase
// them.
func TestCoordinatedLeaseFieldsAreKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		strategy, preferred := coordinationv1.CoordinatedLeaseStrategy("OldestEmulationVersion"), "b"
		_, err := c.Client().CoordinationV1().Leases("default").Create(context.Background(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: testElection},
			Spec:       coordinationv1.LeaseSpec{Strategy: &strategy, PreferredHolder: &preferred},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			l, err := c.Client().CoordinationV1().Leases("default").Get(context.Background(), testElection, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if l.Spec.Strategy == nil || *l.Spec.Strategy != strategy || l.Spec.PreferredHolder == nil || *l.Spec.PreferredHolder != preferred {
				t.Errorf("%s: the Lease's strategy %v and preferred holder %v, want %s and %s kept",
					when, ptrString((*string)(l.Spec.Strategy)), ptrString(l.Spec.PreferredHolder), strategy, preferred)
			}
		}
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		check("after the acquisition")
		testkit.Settle(3 * testRetry)
		check("after renewals")
		a.stop(t)
		check("after the release")
	})
}

// forgetCandidates deletes every candidate Lease, so that the leader knows
// of no successor and its release lets the followers race, as without the
// registry (they write theirs again only at their next renewal).
func forgetCandidates(t *testing.T, c *electortest.Cluster) {
	t.Helper()
	leases := c.Client().CoordinationV1().Leases("default")
	list, err := leases.List(context.Background(), metav1.ListOptions{LabelSelector: candidateLabel})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list.Items {
		if err := leases.Delete(context.Background(), l.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	synctest.Wait()
}

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
