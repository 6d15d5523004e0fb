package elector_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	elector "github.com/k8s-elector/elector"
)

// crashTakeover is an embedder's unit test: two candidates share one fake
// clientset (client-go's fake keeps the objects), the leader crashes (its Run
// is cancelled without releasing the lease), and the follower takes over when
// the lease runs out. In a testing/synctest bubble client-go's timers run on
// virtual time, so the TTL of 10s passes in milliseconds and nothing sleeps
// on the real clock. The fake clientset sets no UIDs, so Status().LockUID is
// empty there; everything else behaves as on a cluster.
func crashTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := fake.NewClientset()
		// start runs a candidate until the returned stop is called, or the
		// test ends.
		start := func(id string, opts ...elector.Option) (*elector.Elector, func()) {
			e, err := elector.New("my-app", append([]elector.Option{elector.WithClient(client), elector.WithID(id)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			stop := sync.OnceFunc(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("%s: Run: %v", id, err)
				}
			})
			t.Cleanup(stop)
			return e, stop
		}
		a, crash := start("a", elector.WithReleaseOnCancel(false))
		synctest.Wait()
		if !a.Status().IsLeader {
			t.Fatalf("a: %+v, want the leader", a.Status())
		}
		b, _ := start("b")
		synctest.Wait()

		crash()
		begin := time.Now()
		for !b.Status().IsLeader {
			if time.Since(begin) > time.Minute {
				t.Fatalf("b did not take over within a minute: %+v", b.Status())
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		if took := time.Since(begin); took < 8*time.Second {
			t.Fatalf("b took over %s after the crash, before the lease could have run out", took)
		}
	})
}

// An embedder's unit test takes a crash-style takeover in virtual time with
// testing/synctest and client-go's fake clientset: see crashTakeover, which
// TestExampleCrashTakeover runs. In a test file of your own:
//
//	func TestFailover(t *testing.T) { crashTakeover(t) }
func Example_unitTestWithSynctest() {}
