package elector

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-elector/elector/electortest"
)

// TestSpreadEvensOutJoinsAndLeaves: 30 elections spread over members that
// come and go. One member leads all 30; two more join and take their
// shares, 10 each, by graceful handovers, long before any lease could run
// out; one stops, and its elections lead elsewhere at once, 15 each; one is
// cut off, as a crash, and the last leads all 30 once their leases have
// run out. No election ever has two leaders.
func TestSpreadEvensOutJoinsAndLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 30
		c := electortest.NewCluster()
		a := startMember(t, c, "a", n, WithSpread(true))
		waitShares(t, 2*testTTL, n, []*groupMember{a}, []int{n})

		b := startMember(t, c, "b", n, WithSpread(true))
		cc := startMember(t, c, "c", n, WithSpread(true))
		all := []*groupMember{a, b, cc}
		took := waitShares(t, 2*testTTL, n, all, []int{10, 10, 10})
		t.Logf("two members joined: 10/10/10 after %s", took)
		if took >= testTTL {
			t.Errorf("the shares took %s, want them handed over, not waited out (TTL %s)", took, testTTL)
		}

		// A member that stops hands its elections over.
		stopped := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); cc.stop(t) }()
		took = waitShares(t, 2*testTTL, n, []*groupMember{a, b}, []int{15, 15})
		<-done
		t.Logf("a member stopped: 15/15 after %s", time.Since(stopped))
		if took > successorWindow {
			t.Errorf("its elections led elsewhere after %s, want within the successor window %s", took, successorWindow)
		}

		// A member cut off (as if crashed) loses its elections when their
		// leases run out.
		c.Partition(b.client)
		cut := time.Now()
		took = waitShares(t, 3*testTTL, n, []*groupMember{a}, []int{n})
		t.Logf("a member cut off: a leads all %d after %s", n, took)
		if limit := testTTL + time.Second; took > limit {
			t.Errorf("the cut-off member's elections led elsewhere after %s, want within the TTL + 1s (%s)", took, limit)
		}
		_ = cut
		checkOneLeaderEach(t, a, b)
	})
}

// TestSpreadHandsNothingToACrashedMember: of three members, one is cut
// off, as a crash, just after it renewed its member Lease and well after
// it last renewed its elections' Leases: those run out while its member
// Lease still counts it as alive. The others take its elections then, and
// must not hand any back to it, which would leave the election without a
// leader for the successor window.
func TestSpreadHandsNothingToACrashedMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 30
		c := electortest.NewCluster()
		a := startMember(t, c, "a", n, WithSpread(true))
		b := startMember(t, c, "b", n, WithSpread(true))
		cc := startMember(t, c, "c", n, WithSpread(true))
		waitShares(t, 2*testTTL, n, []*groupMember{a, b, cc}, []int{10, 10, 10})

		// The member Lease renews on a jittered cadence of its own, so its
		// phase drifts against the elections' renewals.
		margin := 3 * driftMargin(testTTL)
		for begin := time.Now(); ; {
			if time.Since(begin) > 20*testTTL {
				t.Fatal("c's member Lease never renewed well after its elections' Leases")
			}
			member, elections := renewalsOf(t, a.client, "c")
			if time.Since(member) < time.Millisecond && member.Sub(elections) > margin {
				break
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		c.Partition(cc.client)
		cut := time.Now()
		var handedBack []string
		for time.Since(cut) < 2*testTTL {
			leases, err := a.client.CoordinationV1().Leases("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range leases.Items {
				var h successorHint
				if raw := l.Annotations[successorAnnotation]; raw != "" && json.Unmarshal([]byte(raw), &h) == nil &&
					h.To == "c" && !slices.Contains(handedBack, l.Name) {
					handedBack = append(handedBack, l.Name)
				}
			}
			checkOneLeaderEach(t, a, b)
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		if len(handedBack) > 0 {
			t.Errorf("after c was cut off, %d elections were handed over to it: %v", len(handedBack), handedBack)
		}
		waitShares(t, testTTL, n, []*groupMember{a, b}, []int{15, 15})
	})
}

// renewalsOf returns when member id last renewed its member Lease, and
// the latest renewal of the elections' Leases it holds.
func renewalsOf(t *testing.T, client *fake.Clientset, id string) (member, elections time.Time) {
	t.Helper()
	leases, err := client.CoordinationV1().Leases("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Items {
		if ptrValue(l.Spec.HolderIdentity) != id || l.Spec.RenewTime == nil {
			continue
		}
		switch renewed := l.Spec.RenewTime.Time; {
		case l.Name == leaseName("shards", "member", id):
			member = renewed
		case renewed.After(elections):
			elections = renewed
		}
	}
	return member, elections
}
