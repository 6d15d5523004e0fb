package elector

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/electortest"
)

// renewalWindow is how long the renewal tests count a lone leader's writes.
const renewalWindow = 3 * time.Minute

// TestLeaderWritesHalfOfClientGosRenewals: over three minutes, a lone leader
// writes the lock at most half as often as a plain client-go leader with
// the same TTL and retry period, in watch mode and polling, for every lock
// type. Polling, it reads the lock between its renewals instead, so that it
// sees another's write as soon as before.
func TestLeaderWritesHalfOfClientGosRenewals(t *testing.T) {
	var theirs int
	synctest.Test(t, func(t *testing.T) {
		theirs = clientGoRenewals(t)
	})
	t.Logf("plain client-go, TTL %s, retry period %s: %d writes in %s", testTTL, testRetry, theirs, renewalWindow)
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		waitLeader(t, testTTL, a)
		begin := len(a.client.Actions())
		time.Sleep(renewalWindow)
		// A migration lock writes both objects at each renewal, as
		// client-go's MultiLock does: count the Lease's.
		_, migration := migrating(k.lock)
		counts := map[string]int{}
		for _, act := range a.client.Actions()[begin:] {
			if !candidateWrite(act) && (!migration || act.GetResource().Resource == "leases") {
				counts[act.GetVerb()]++
			}
		}
		writes := counts["update"] + counts["create"]
		// Half, give or take the one renewal where the window cuts.
		if 2*writes > theirs+1 {
			t.Errorf("%d lock writes in %s, want at most half of plain client-go's %d", writes, renewalWindow, theirs)
		}
		// A write every renew interval: not fewer either, or the lease
		// would not hold.
		if want := int(renewalWindow / DefaultTimings(testTTL).RenewInterval); writes < want-1 {
			t.Errorf("%d lock writes in %s, want about %d, one every renew interval", writes, renewalWindow, want)
		}
		if k.poll && counts["get"] < writes {
			t.Errorf("polling, the leader read the lock %d times besides its %d writes, want a read every retry period between renewals", counts["get"], writes)
		}
		if !k.poll && counts["get"] > 1 {
			t.Errorf("with the watch, the leader read the lock %d times in %s, want the watch to serve it", counts["get"], renewalWindow)
		}
		t.Logf("%s: %v", k.lock, counts)
	})
}

// clientGoRenewals runs a plain client-go LeaderElector alone on a Lease,
// with the Elector's default timings for testTTL, and returns the writes it
// sends in renewalWindow once it leads.
func clientGoRenewals(t *testing.T) int {
	client := electortest.NewCluster().Client()
	var (
		mu      sync.Mutex
		writes  int
		counted bool
	)
	client.PrependReactor("*", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if v := a.GetVerb(); counted && (v == "update" || v == "create") {
			writes++
		}
		return false, nil, nil
	})
	led := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "default", Name: testElection},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: "plain"},
		},
		LeaseDuration: testTTL,
		RenewDeadline: DefaultTimings(testTTL).RenewDeadline,
		RetryPeriod:   testRetry,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(led) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runClientGo(le)
	<-led
	mu.Lock()
	counted = true
	mu.Unlock()
	time.Sleep(renewalWindow)
	mu.Lock()
	n := writes
	mu.Unlock()
	stop()
	return n
}

// TestFailedRenewalIsRetriedAtTheRetryPeriod: a renewal that fails is
// retried a retry period later, not a renew interval, and the renew
// deadline still leaves at least two attempts before the term ends.
func TestFailedRenewalIsRetriedAtTheRetryPeriod(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		waitLeader(t, testTTL, a)
		timings := a.e.Timings()
		// Right after a renewal: the next one is a renew interval away.
		updates := func() int {
			n := 0
			for _, act := range a.client.Actions() {
				if act.GetVerb() == "update" && !candidateWrite(act) {
					n++
				}
			}
			return n
		}
		for n := updates(); updates() == n; {
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		failing := errors.New("injected: the API server is unavailable")
		a.fault.Store(&failing)
		// Every request fails from now on; the fake records each attempt.
		var attempts []time.Time
		begin, n := time.Now(), updates()
		for a.e.Status().IsLeader || time.Since(begin) < timings.RenewInterval {
			if time.Since(begin) > timings.TTL {
				t.Fatalf("still leading a TTL after every request began to fail")
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if m := updates(); m != n {
				attempts, n = append(attempts, time.Now()), m
			}
		}
		a.fault.Store(nil)
		if len(attempts) < 2 {
			t.Fatalf("%d renewal attempts before the term ended, want at least 2 within the renew deadline %s", len(attempts), timings.RenewDeadline)
		}
		if first := attempts[0].Sub(begin); first < timings.RenewInterval-time.Millisecond || first > timings.RenewInterval+time.Millisecond {
			t.Errorf("the first renewal came %s after the last success, want the renew interval %s", first, timings.RenewInterval)
		}
		if gap := attempts[1].Sub(attempts[0]); gap < timings.RetryPeriod-time.Millisecond || gap > timings.RetryPeriod+time.Millisecond {
			t.Errorf("a failed renewal was retried %s later, want the retry period %s", gap, timings.RetryPeriod)
		}
		// With the fault gone, the holder renews and leads again.
		waitLeader(t, testTTL, a)
	})
}
