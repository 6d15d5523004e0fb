package elector

import (
	"testing"
	"testing/synctest"
	"time"

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
