package elector

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// appCheck is an application's readiness as a candidacy gate sees it, with
// the times it was checked.
type appCheck struct {
	ready atomic.Bool
	mu    sync.Mutex
	at    []time.Time
}

func newAppCheck(ready bool) *appCheck {
	a := &appCheck{}
	a.ready.Store(ready)
	return a
}

func (a *appCheck) check(context.Context) error {
	a.mu.Lock()
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
	if !a.ready.Load() {
		return errors.New("503 Service Unavailable")
	}
	return nil
}

func (a *appCheck) checks() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.at...)
}

// TestGateKeepsAnUnreadyCandidateOut: a candidate whose application is not
// ready never tries to acquire, even alone; it says so in Status and the
// metrics; it leads within a retry period of becoming ready, and its checks
// come every retry period.
func TestGateKeepsAnUnreadyCandidateOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		app := newAppCheck(false)
		a := start(t, c, "a", LockLeases, WithCandidacyGate(app.check, 0))
		testkit.Settle(3 * testTTL)
		s := a.e.Status()
		if s.IsLeader || s.Candidate == nil || *s.Candidate {
			t.Fatalf("status %+v, want a follower that is no candidate", s)
		}
		for _, act := range a.client.Actions() {
			if v := act.GetVerb(); (v == "create" || v == "update") && !candidateWrite(act) {
				t.Errorf("an unready candidate sent a %s of %s, want no write to the lock", v, act.GetResource().Resource)
			}
		}
		if body := serveGET(a.e, "/metrics").Body.String(); !strings.Contains(body, `k8s_elector_candidate{election="default/example",identity="a"} 0`) {
			t.Errorf("metrics lack k8s_elector_candidate 0:\n%s", body)
		}
		checks := app.checks()
		if len(checks) < 3 {
			t.Fatalf("%d checks in %s, want one every retry period", len(checks), 3*testTTL)
		}
		for i := 1; i < len(checks); i++ {
			if d := checks[i].Sub(checks[i-1]); d != testRetry {
				t.Fatalf("checks %d and %d came %s apart, want the retry period %s", i-1, i, d, testRetry)
			}
		}
		app.ready.Store(true)
		ready := time.Now()
		testkit.WaitFor(t, 2*testRetry, "a leads once ready", func() bool { return a.e.Status().IsLeader })
		if took := time.Since(ready); took > testRetry+maxRetryWait {
			t.Errorf("a led %s after its application became ready, want within a check and an attempt", took)
		}
		if s := a.e.Status(); s.Candidate == nil || !*s.Candidate {
			t.Errorf("candidate %v while leading, want true", s.Candidate)
		}
	})
}

// TestGateLeaderStepsDownAfterItsFailures: a leader steps down at the
// failures-th (WithCandidacyGate) consecutive failed check, not before, and a
// ready follower takes over at once; fewer failures in a row change nothing.
func TestGateLeaderStepsDownAfterItsFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		appA, appB := newAppCheck(true), newAppCheck(true)
		a := start(t, c, "a", LockLeases, WithCandidacyGate(appA.check, 0))
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases, WithCandidacyGate(appB.check, 0))
		testkit.Settle(2 * testRetry)

		// Two failures in a row, then a pass: a leads on.
		appA.ready.Store(false)
		testkit.Settle(2*testRetry + testRetry/2)
		appA.ready.Store(true)
		testkit.Settle(2 * testRetry)
		if !a.e.Status().IsLeader {
			t.Fatalf("a stopped leading after 2 failed checks, want it to step down only at %d", defaultGateFailures)
		}

		n := len(appA.checks())
		appA.ready.Store(false)
		var aStopped, bStarted time.Time
		for begin := time.Now(); time.Since(begin) < 2*testTTL && bStarted.IsZero(); {
			time.Sleep(time.Millisecond)
			synctest.Wait()
			sa, sb := a.e.Status(), b.e.Status()
			if sa.IsLeader && sb.IsLeader {
				t.Fatal("two leaders")
			}
			if !sa.IsLeader && aStopped.IsZero() {
				aStopped = time.Now()
				if failed := len(appA.checks()) - n; failed != defaultGateFailures {
					t.Errorf("a stepped down after %d failed checks, want %d", failed, defaultGateFailures)
				}
			}
			if sb.IsLeader {
				bStarted = time.Now()
			}
		}
		if aStopped.IsZero() || bStarted.IsZero() {
			t.Fatalf("a stopped at %v, b started at %v: want both", aStopped, bStarted)
		}
		if d := bStarted.Sub(aStopped); d > time.Second {
			t.Errorf("b led %s after a stepped down, want at once (a released the lock)", d)
		}
		if s := a.e.Status(); s.Candidate == nil || *s.Candidate {
			t.Errorf("a's candidate %v after stepping down, want false", s.Candidate)
		}
		if got := metricValue(t, a.e, "k8s_elector_candidacy_checks_total", "result", "not_ready"); got < defaultGateFailures+2 {
			t.Errorf("not_ready checks %v, want at least %d", got, defaultGateFailures+2)
		}
		// b's application fails too: b steps down, and nobody leads.
		appB.ready.Store(false)
		testkit.Settle(time.Duration(defaultGateFailures+1) * testRetry)
		if ids := leaders(a, b); len(ids) != 0 {
			t.Errorf("%v lead with every application unready, want nobody", ids)
		}
		// a's application is ready again: a rejoins and leads.
		appA.ready.Store(true)
		testkit.WaitFor(t, 2*testRetry+maxRetryWait, "a leads again", func() bool { return a.e.Status().IsLeader })
	})
}

// TestGateOptionsAreValidated covers every bad gate option.
func TestGateOptionsAreValidated(t *testing.T) {
	client := electortest.NewCluster().Client()
	ok := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"no failures", []Option{WithCandidacyGate(ok, -1)}, "candidacy gate failures -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(testElection, append([]Option{WithClient(client)}, tc.opts...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
