package electortest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
)

// Two candidates campaign on one Cluster, each with a clientset of its own:
// exactly one leads, and the other follows it. The lock gets a UID, so the
// fencing token is complete. This example runs on the real clock, which is
// quick here because nobody waits for a lease to run out; tests that do wait
// run inside synctest.Test, as TestExampleCrash and TestExampleZombie do.
func ExampleCluster() {
	cluster := electortest.NewCluster()
	var candidates []*elector.Elector
	for _, id := range []string{"a", "b"} {
		e, err := elector.New("my-app", elector.WithClient(cluster.Client()), elector.WithID(id))
		if err != nil {
			fmt.Println(err)
			return
		}
		candidates = append(candidates, e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, e := range candidates {
		wg.Go(func() { _ = e.Run(ctx) })
	}

	// Wait until one leads and both name it.
	settled := func() bool {
		a, b := candidates[0].Status(), candidates[1].Status()
		return (a.IsLeader || b.IsLeader) && a.Leader != "" && a.Leader == b.Leader
	}
	for begin := time.Now(); !settled() && time.Since(begin) < 10*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	var uid string // the lock's, which the fencing token carries
	if lease, err := cluster.Client().CoordinationV1().Leases("default").Get(ctx, "my-app", metav1.GetOptions{}); err != nil {
		fmt.Println(err)
	} else {
		uid = string(lease.UID)
	}
	leaders := 0
	for _, e := range candidates {
		if s := e.Status(); s.IsLeader {
			leaders++
			fmt.Printf("token: lock_uid is the Lease's UID: %v, leader_transitions %d\n", s.LockUID == uid, s.LeaderTransitions)
		}
	}
	fmt.Println("leaders:", leaders)
	fmt.Println("both name the same leader:", candidates[0].Status().Leader == candidates[1].Status().Leader)

	cancel()
	wg.Wait()
	// Output:
	// token: lock_uid is the Lease's UID: true, leader_transitions 0
	// leaders: 1
	// both name the same leader: true
}

// run starts a candidate of the election "my-app" on client, in the
// bubble of the test. stop cancels its Run and waits for it to return; the
// end of the test calls it too.
func run(t *testing.T, client *fake.Clientset, id string, opts ...elector.Option) (e *elector.Elector, stop func()) {
	t.Helper()
	e, err := elector.New("my-app", append([]elector.Option{elector.WithClient(client), elector.WithID(id)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	})
	t.Cleanup(stop)
	return e, stop
}

// waitUntil lets virtual time pass in steps of 100ms until cond holds, and
// fails the test if it does not hold within limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	synctest.Wait()
	for begin := time.Now(); !cond(); {
		if time.Since(begin) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
	}
}

// TestExampleCrash is an embedder's test of a crash: the leader stops without
// releasing the lock, and the follower takes over once the lease it last saw
// renewed has run out, with the next fencing token. Inside synctest.Test the
// TTL of 10s passes on virtual time, in milliseconds.
func TestExampleCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cluster := electortest.NewCluster()
		// A crash is a Run that ends without releasing the lock.
		a, crash := run(t, cluster.Client(), "a", elector.WithReleaseOnCancel(false))
		waitUntil(t, time.Second, "a leads", func() bool { return a.Status().IsLeader })
		b, _ := run(t, cluster.Client(), "b")
		waitUntil(t, time.Second, "b follows a", func() bool { return b.Status().Leader == "a" })

		last := a.Status() // a's token, and when its lease ends as it last renewed it
		crash()
		crashed := time.Now()
		lease, err := cluster.Client().CoordinationV1().Leases("default").Get(context.Background(), "my-app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := *lease.Spec.HolderIdentity; got != "a" {
			t.Fatalf("holder after the crash: got %q, want a (nobody released it)", got)
		}

		waitUntil(t, 2*elector.DefaultTimings(0).TTL, "b takes over", func() bool { return b.Status().IsLeader })
		if now := time.Now(); now.Before(last.ValidUntil) {
			t.Errorf("b leads %s before a's lease ran out", last.ValidUntil.Sub(now))
		}
		s := b.Status()
		if s.LockUID == "" || s.LockUID != last.LockUID || s.LeaderTransitions != last.LeaderTransitions+1 {
			t.Errorf("b's token: got %s/%d, want %s/%d", s.LockUID, s.LeaderTransitions, last.LockUID, last.LeaderTransitions+1)
		}
		t.Logf("b took over %s after the crash", time.Since(crashed))
	})
}

// fencedStore is the resource that the leader work writes in
// TestExampleZombie: a map, guarded by the highest fencing token it has
// accepted. It refuses a write with a lower token, so that a leader whose
// term has ended cannot overwrite the writes of the next. (It accepts one
// lock UID only: a store that must outlive a deletion of the lock has to
// order UIDs too; see elector.Status.)
type fencedStore struct {
	mu      sync.Mutex
	uid     string // the lock UID of the tokens accepted
	highest int    // the highest LeaderTransitions accepted
	data    map[string]string
	log     []string // "accepted a" or "refused a", in order
}

var errStaleToken = errors.New("stale fencing token")

func (s *fencedStore) put(token elector.Term, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uid == "" {
		s.uid = token.LockUID
	}
	if token.LockUID != s.uid || token.LeaderTransitions < s.highest {
		s.log = append(s.log, "refused "+value)
		return fmt.Errorf("token %s/%d, highest accepted %s/%d: %w",
			token.LockUID, token.LeaderTransitions, s.uid, s.highest, errStaleToken)
	}
	s.highest = token.LeaderTransitions
	s.data[key] = value
	s.log = append(s.log, "accepted "+value)
	return nil
}

// read returns the owner and a copy of the log.
func (s *fencedStore) read() (owner string, log []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data["owner"], slices.Clone(s.log)
}

// TestExampleZombie is an embedder's test of fencing: the leader is cut off
// from the API server while its leader work goes on writing, the follower
// takes over with a higher LeaderTransitions, and the store refuses the old
// leader's writes from the first write of the new one on.
func TestExampleZombie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cluster := electortest.NewCluster()
		store := &fencedStore{data: map[string]string{}}
		exit := make(chan struct{}) // closed when the candidates' processes exit
		exitAll := sync.OnceFunc(func() { close(exit) })

		// The leader work writes its candidate's name every second with its
		// term's token. It never looks at ctx (as work that is stuck, or slow
		// to notice, does not): it stops only when its process exits.
		work := func(id string) func(ctx context.Context) {
			return func(ctx context.Context) {
				token, _ := elector.TermFromContext(ctx)
				for {
					_ = store.put(token, "owner", id) // a refusal is the fence at work
					select {
					case <-exit:
						return
					case <-time.After(time.Second):
					}
				}
			}
		}
		clientA := cluster.Client()
		a, _ := run(t, clientA, "a", elector.WithOnStartedLeading(work("a")))
		waitUntil(t, time.Second, "a leads", func() bool { return a.Status().IsLeader })
		b, _ := run(t, cluster.Client(), "b", elector.WithOnStartedLeading(work("b")))
		waitUntil(t, time.Second, "b follows a", func() bool { return b.Status().Leader == "a" })
		// Cleanups run last registered first: the work stops before the Runs.
		t.Cleanup(exitAll)

		old := a.Status()
		cluster.Partition(clientA)
		waitUntil(t, 2*elector.DefaultTimings(0).TTL, "b takes over", func() bool { return b.Status().IsLeader })
		if a.Status().IsLeader {
			t.Fatalf("a and b both lead: a %+v, b %+v", a.Status(), b.Status())
		}
		if s := b.Status(); s.LockUID != old.LockUID || s.LeaderTransitions <= old.LeaderTransitions {
			t.Fatalf("b's token: got %s/%d, want a higher LeaderTransitions than a's %s/%d",
				s.LockUID, s.LeaderTransitions, old.LockUID, old.LeaderTransitions)
		}
		time.Sleep(3 * time.Second) // the zombie writes on
		synctest.Wait()

		owner, log := store.read()
		if owner != "b" {
			t.Errorf("owner in the store: got %q, want b", owner)
		}
		first := slices.Index(log, "accepted b")
		if first < 0 || !slices.Contains(log[first:], "refused a") || slices.Contains(log[first:], "accepted a") {
			t.Errorf("store log %q: want b's writes accepted, and a's refused from b's first on", log)
		}

		// Healed, a finds that b leads once its work has stopped.
		cluster.Heal(clientA)
		exitAll()
		waitUntil(t, elector.DefaultTimings(0).TTL, "a follows b", func() bool { return a.Status().Leader == "b" })
	})
}
