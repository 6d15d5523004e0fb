package elector

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-elector/elector/electortest"
)

// leaderAndFollower starts a, waits until it leads, then starts b and waits
// until b has read the lock and follows.
func leaderAndFollower(t *testing.T, c *electortest.Cluster, lock LockType) (a, b *candidate) {
	t.Helper()
	return kit{lock: lock}.leaderAndFollower(t, c)
}

// leaderAndFollower is the package function in k's mode.
func (k kit) leaderAndFollower(t *testing.T, c *electortest.Cluster) (a, b *candidate) {
	t.Helper()
	a = k.start(t, c, "a")
	waitLeader(t, testTTL, a)
	b = k.start(t, c, "b")
	time.Sleep(2 * maxRetryWait)
	synctest.Wait()
	return a, b
}

// deleteLock deletes the lock object(s) of lock.
func deleteLock(t *testing.T, c *electortest.Cluster, lock LockType) {
	t.Helper()
	client, ctx := c.Client(), context.Background()
	if old, ok := migrating(lock); ok {
		deleteLock(t, c, old)
		lock = LockLeases
	}
	var err error
	switch lock {
	case LockLeases:
		err = client.CoordinationV1().Leases("default").Delete(ctx, testElection, metav1.DeleteOptions{})
	case LockConfigMaps:
		err = client.CoreV1().ConfigMaps("default").Delete(ctx, testElection, metav1.DeleteOptions{})
	case LockEndpoints:
		err = client.CoreV1().Endpoints("default").Delete(ctx, testElection, metav1.DeleteOptions{})
	}
	if err != nil {
		t.Fatalf("deleting the lock: %v", err)
	}
}

// reads counts the get and list requests a candidate's client has sent.
func reads(c *candidate) int {
	n := 0
	for _, a := range c.client.Actions() {
		if v := a.GetVerb(); v == "get" || v == "list" {
			n++
		}
	}
	return n
}

func TestIdleFollowerSendsNoRequestsWithWatch(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		poll := k.poll
		c := electortest.NewCluster()
		_, b := k.leaderAndFollower(t, c)
		before := reads(b)
		time.Sleep(3 * testTTL)
		synctest.Wait()
		got := reads(b) - before
		if s := b.e.Status(); s.Leader != "a" || s.IsLeader {
			t.Fatalf("follower status %+v, want following a", s)
		}
		minPolls := int(3 * testTTL / maxRetryWait)
		if poll {
			if got < minPolls {
				t.Errorf("polling follower read the lock %d times in 3 TTLs, want at least %d", got, minPolls)
			}
			return
		}
		if got != 0 {
			t.Errorf("watching follower sent %d reads in 3 TTLs, want none", got)
		}
	})
}

func TestReleasedLockIsTakenAtOnceWithWatch(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		poll := k.poll
		c := electortest.NewCluster()
		a, b := k.leaderAndFollower(t, c)

		a.stop(t) // releases
		_, took := waitLeader(t, testTTL, b)
		// Virtual time: the fake API server answers at once, so with the
		// watch the only delay is the follower's random wait (under
		// kickSpread), seen at waitLeader's next 10ms step.
		if !poll && took > kickSpread {
			t.Errorf("with the watch, the follower took %s to take a released lock, want no wait for a retry", took)
		}
		if poll && took > maxRetryWait+50*time.Millisecond {
			t.Errorf("polling follower took %s to take a released lock, want within a retry period", took)
		}
	})
}

// writes counts the update and create requests on the lock that a
// candidate's client has sent (not those on its candidate Lease).
func writes(c *candidate) int {
	n := 0
	for _, a := range c.client.Actions() {
		if v := a.GetVerb(); v != "update" && v != "create" {
			continue
		}
		if !candidateWrite(a) {
			n++
		}
	}
	return n
}

// TestReleaseDoesNotStampedeFollowers releases a lock that ten followers
// watch. They all see the release at the same moment; their random waits let
// the first one's acquisition reach the others' watches before they send a
// write that could only conflict.
func TestReleaseDoesNotStampedeFollowers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		leader := start(t, c, "leader", LockLeases)
		waitLeader(t, testTTL, leader)
		var followers []*candidate
		for i := range 10 {
			followers = append(followers, start(t, c, fmt.Sprintf("f%d", i), LockLeases))
		}
		time.Sleep(maxRetryWait)
		synctest.Wait()
		before := map[*candidate]int{}
		for _, f := range followers {
			before[f] = writes(f)
		}
		leader.stop(t) // releases
		winner, took := waitLeader(t, testTTL, followers...)
		if took > kickSpread {
			t.Fatalf("a follower took %s to take the released lock, want under %s", took, kickSpread)
		}
		time.Sleep(kickSpread) // every wait has run out; no renewal is due yet
		synctest.Wait()
		// The fake API server answers at once, so the winner's acquisition
		// reaches the others' watches before their waits run out. Followers
		// that wrote at once would send nine writes, all conflicts.
		for _, f := range followers {
			if n := writes(f) - before[f]; f != winner && n != 0 {
				t.Errorf("%s sent %d writes after %s took the released lock, want none", f.id, n, winner.id)
			}
		}
	})
}

// TestDeletedLockIsNotTakenWhileItsLeaseRuns deletes a held lock: unlike a
// released one, its holder may still be acting, so nobody else may create
// it before the lease they last saw renewed runs out.
func TestDeletedLockIsNotTakenWhileItsLeaseRuns(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a, b := k.leaderAndFollower(t, c)
		timeout := errors.New("connection timed out")
		a.fault.Store(&timeout) // a cannot recreate it
		claim := a.e.Status().ValidUntil
		deleteLock(t, c, k.lock)
		begin := time.Now()
		for !b.e.Status().IsLeader {
			if ids := leaders(a, b); len(ids) > 1 {
				t.Fatalf("two leaders: %v", ids)
			}
			if time.Since(begin) > 2*testTTL {
				t.Fatal("b never took over the deleted lock")
			}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		took := time.Since(begin)
		if a.e.Status().IsLeader {
			t.Fatal("a and b both lead")
		}
		if created := begin.Add(took); created.Before(claim.Add(driftMargin(testTTL))) {
			t.Errorf("b created the deleted lock at %s, before a's valid_until %s plus the drift margin", created, claim)
		}
		// b saw a's last renewal at most one retry period before the
		// deletion.
		if floor := testTTL - maxRetryWait; took < floor {
			t.Errorf("b created the deleted lock after %s, before a's lease could have run out (%s)", took, floor)
		}
	})
}

// TestCrashFailoverAtTheLeaseWithWatch: a follower on the watch knows when
// the lease it saw renewed runs out, and tries at that instant (plus the
// drift margin) rather than at its next jittered retry.
func TestCrashFailoverAtTheLeaseWithWatch(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		if k.poll {
			t.Skip("polling keeps client-go's retry cadence: TestCrashedLeaderIsReplacedAfterTTL")
		}
		c := electortest.NewCluster()
		a := k.start(t, c, "a", WithReleaseOnCancel(false))
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b")
		time.Sleep(2*maxRetryWait + 370*time.Millisecond)
		synctest.Wait()
		since := a.e.views.load().renewed // what followers count from, at the latest
		a.stop(t)                         // like a crash: no release
		stopped := time.Now()
		_, took := waitLeader(t, 3*testTTL, b) // in steps of 10ms
		takeover := stopped.Add(took)
		// No earlier than a's valid_until plus the drift margin, the bound
		// every follower keeps (client-go's own count, from when b read
		// the renewal, may come before b's kick).
		if floor := since.Add(testTTL); takeover.Before(floor) {
			t.Fatalf("b took over %s before a's valid_until plus the drift margin", floor.Sub(takeover))
		}
		lease := testTTL + driftMargin(testTTL)
		if ceiling := stopped.Add(lease + 20*time.Millisecond); takeover.After(ceiling) {
			t.Fatalf("b took over %s after the stop, want at most the lease plus the drift margin (%s) after a's last renewal",
				takeover.Sub(stopped), lease)
		}
	})
}

// TestDeletedLockWaitIsAtMostOneTTL deletes a lock that a third party held
// with a lease of an hour: the candidates that saw it wait for that lease
// from when they found the lock missing, but no longer than their own TTL,
// as a candidate that starts after the deletion (and saw nothing) does not
// wait at all.
func TestDeletedLockWaitIsAtMostOneTTL(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a, b := k.leaderAndFollower(t, c)
		admin := c.Client()
		rec := lockHolder(t, admin, k.lock)
		rec.HolderIdentity, rec.LeaseDurationSeconds = "intruder", 3600
		rec.LeaderTransitions++
		writeRecord(t, admin, k.lock, rec)
		time.Sleep(2 * maxRetryWait) // both read the intruder's record
		synctest.Wait()
		deleteLock(t, c, k.lock)
		deleted := time.Now()
		leader, _ := waitLeader(t, 3*testTTL, a, b)
		// A candidate finds the lock missing at once with the watch, else
		// at its next read; it then creates it at its next attempt after
		// one TTL.
		took := time.Since(deleted)
		if ceiling := testTTL + 2*maxRetryWait + 100*time.Millisecond; took < testTTL || took > ceiling {
			t.Errorf("%s created the deleted lock %s after the deletion, want one TTL (%s) after it found it missing, within %s",
				leader.id, took, testTTL, ceiling)
		}
	})
}

// TestLockCacheKeepsALaterDelivery: the answer to a request of ours that
// comes after the watch delivered a later version of the object (another
// candidate's write that followed ours, as the successor's acquisition
// follows a release) does not take the cache back, and the loop is woken
// to read the later version. Taken back, the cache held the release until
// the next read from the API server, a retry period later, and the lease
// of the successor counted from then.
func TestLockCacheKeepsALaterDelivery(t *testing.T) {
	woken := 0
	c := &lockCache[coordinationv1.Lease, *coordinationv1.Lease]{name: "l", changed: func() { woken++ }, refresh: true}
	c.synced = func() bool { return true }
	lease := func(rv, holder string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", UID: "u", ResourceVersion: rv},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
	}
	release, acquisition := lease("10", ""), lease("11", "b")
	c.delivered(release, false)
	c.delivered(acquisition, false)
	woken = 0
	c.wrote(release, nil) // the answer to our release, late
	if got, _, ok := c.get(); !ok || got != acquisition {
		t.Errorf("cache holds %v (ok %v) after a late answer, want the later acquisition", got, ok)
	}
	if woken != 1 {
		t.Errorf("loop woken %d times by the late answer, want 1", woken)
	}
	// An answer that is the latest version replaces what the cache holds.
	renewal := lease("12", "b")
	c.wrote(renewal, nil)
	if got, _, _ := c.get(); got != renewal {
		t.Errorf("cache holds %v after the latest answer, want it", got)
	}
}
