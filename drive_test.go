package elector

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8s-elector/elector/electortest"
)

// A driver takes one turn at a time; wake-ups during a turn make one more
// turn, not one each, and none is lost; once the loop has finished, a
// wake-up does nothing.
func TestDriverTakesOneTurnAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var turns, inTurn, overlaps atomic.Int32
		hold := make(chan struct{})
		finish := atomic.Bool{}
		d := &driver{}
		d.wake() // before start: waits for it
		d.start(func() bool {
			if inTurn.Add(1) > 1 {
				overlaps.Add(1)
			}
			defer inTurn.Add(-1)
			if turns.Add(1) == 1 {
				<-hold
			}
			return finish.Load()
		})
		synctest.Wait()
		for range 3 {
			d.wake()
		}
		close(hold)
		synctest.Wait()
		if got := turns.Load(); got != 2 {
			t.Errorf("%d turns after three wake-ups during the first, want 2", got)
		}
		finish.Store(true)
		d.wake()
		synctest.Wait()
		d.wake()
		synctest.Wait()
		if got, o := turns.Load(), overlaps.Load(); got != 3 || o != 0 {
			t.Errorf("%d turns, %d overlapping; want 3 (none after the loop finished), 0", got, o)
		}
	})
}

// An idle election has no goroutine of its own: a Group of many elections
// whose leaders wait for their next renewal runs a few goroutines (its
// watch, its member Lease), not one per election.
func TestIdleElectionsHaveNoGoroutine(t *testing.T) {
	const n = 40
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		g, err := NewGroup("idle", WithClient(c.Client()), WithID("a"), WithTTL(testTTL),
			WithRetryPeriod(testRetry), WithRenewDeadline(testTTL/renewDeadlineDivisor))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, err := g.Add(fmt.Sprintf("idle-%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		before := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = g.Run(ctx) }()
		time.Sleep(testTTL)
		synctest.Wait()
		leading := 0
		for _, e := range g.Electors() {
			if e.Status().IsLeader {
				leading++
			}
		}
		if leading != n {
			t.Fatalf("%d of %d elections lead", leading, n)
		}
		got := runtime.NumGoroutine() - before
		t.Logf("%d goroutines for %d idle elections", got, n)
		if got >= n/4 {
			t.Errorf("%d goroutines for %d idle elections, want fewer than %d", got, n, n/4)
		}
		cancel()
		<-done
	})
}
