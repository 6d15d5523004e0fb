package elector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/record"
)

// plainLock is a lock as a plain client-go follower, or the original
// k8s-elector, reads it: the raw record it compares is the whole-second one.
// For leases the sweep uses client-go's own LeaseLock instead.
type plainLock struct {
	objectLock
	id string
}

func (p plainLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, err := p.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &r.rec, r.visible, nil
}

func (p plainLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	_, err := p.create(ctx, rec)
	return err
}

func (p plainLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	_, err := p.update(ctx, rec, extras{})
	return err
}

func (p plainLock) RecordEvent(string) {}
func (p plainLock) Identity() string   { return p.id }
func (p plainLock) Describe() string   { return p.describe() }

// plainFollower runs a plain client-go LeaderElector for id on its own
// clientset of c, with the Elector's default timings for ttl. It reports the
// instant its first acquisition was sent.
func plainFollower(t *testing.T, c *electortest.Cluster, lock LockType, id string, ttl time.Duration, acquired func(time.Time)) {
	t.Helper()
	client := c.Client()
	client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() == "create" || a.GetVerb() == "update" {
			if holderOf(a.(k8stesting.CreateAction).GetObject()) == id {
				acquired(time.Now())
			}
		}
		return false, nil, nil
	})
	var rl resourcelock.Interface = plainLock{objectLock: newObjectLock(lock, "default", testElection, id, client, nil, nil), id: id}
	if lock == LockLeases {
		rl = &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "default", Name: testElection},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		}
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          rl,
		LeaseDuration: ttl,
		RenewDeadline: ttl / renewDeadlineDivisor,
		RetryPeriod:   ttl / retryPeriodDivisor,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runClientGo(le))
}

// runClientGo runs a plain client-go LeaderElector until the returned
// function is called, which waits for it to return.
func runClientGo(le *leaderelection.LeaderElector) (stop func()) {
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), logr.Discard()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// holderOf returns the holder an object written to the fake records: of a
// lock object, not of a candidate Lease.
func holderOf(obj runtime.Object) string {
	switch o := obj.(type) {
	case *coordinationv1.Lease:
		if o.Spec.HolderIdentity != nil && o.Labels[candidateLabel] == "" {
			return *o.Spec.HolderIdentity
		}
	case *corev1.ConfigMap:
		rec, _ := record.Decode(o.Annotations[record.AnnotationKey])
		return rec.HolderIdentity
	case *corev1.Endpoints:
		rec, _ := record.Decode(o.Annotations[record.AnnotationKey])
		return rec.HolderIdentity
	}
	return ""
}

// TestLeaseCountsFromWhatFollowersSee sweeps the leader's renewal times across
// second boundaries and freezes it (every request hangs, as a stopped process
// or a partition would have it) after each renewal in turn. The lock records
// whole seconds, so a renewal in the same second as the previous one changes
// nothing a plain client-go follower compares: the leader's valid_until must
// count from the first write that gave followers what they see. For every
// schedule, a plain client-go follower and an Elector follower must both
// acquire no earlier than the old leader's valid_until plus the drift margin.
//
// The sweep runs at the default renew interval (2.1 retry periods, at
// least 1s), also with a renewal that fails and is retried a retry period
// later, so that renewals come at both cadences; and at a renew interval of
// one retry period, plain client-go's, where several renewals fall in one
// second.
func TestLeaseCountsFromWhatFollowersSee(t *testing.T) {
	schedules := 0
	var margins []time.Duration
	for _, ttl := range []time.Duration{2 * time.Second, 3 * time.Second} {
		def := DefaultTimings(ttl)
		for _, sc := range []struct {
			name     string
			interval time.Duration
			step     time.Duration // of the start offset
			failing  bool          // also with the k-th renewal's first attempt failing, at every other offset
		}{
			{"default", def.RenewInterval, 100 * time.Millisecond, true},
			{"retry", def.RetryPeriod, 200 * time.Millisecond, false},
		} {
			// Renewals over more than a second: every way they fall
			// around a second boundary.
			renewals := int(time.Second/sc.interval) + 1
			if sc.interval >= time.Second {
				renewals = 3
			}
			for _, lock := range lockTypes() {
				t.Run(fmt.Sprintf("%s/%s/%s", ttl, sc.name, lock), func(t *testing.T) {
					for offset := time.Duration(0); offset < time.Second; offset += sc.step {
						for k := 1; k <= renewals; k++ {
							for _, fail := range []bool{false, true} {
								if fail && (!sc.failing || offset%(2*sc.step) != 0) {
									continue
								}
								schedules++
								synctest.Test(t, func(t *testing.T) {
									m := freezeAfterRenewal(t, lock, ttl, sc.interval, offset, k, fail)
									margins = append(margins, m)
								})
								if t.Failed() {
									t.Fatalf("schedule: start +%s, frozen after renewal %d, the one before failing: %t", offset, k, fail)
								}
							}
						}
					}
				})
			}
		}
	}
	if len(margins) > 0 {
		slices.Sort(margins)
		t.Logf("%d schedules; margin (first acquisition - old valid_until - drift margin): least %s, median %s",
			schedules, margins[0], margins[len(margins)/2])
	}
}

// freezeAfterRenewal runs one schedule of the sweep and returns by how much
// the first takeover came after the old leader's valid_until plus the drift
// margin.
func freezeAfterRenewal(t *testing.T, lock LockType, ttl, interval, offset time.Duration, k int, fail bool) time.Duration {
	time.Sleep(offset)
	r := newFreezeRig(k, fail)
	a, err := New(testElection, WithClient(r.leader), WithID("a"), WithLockType(lock), WithTTL(ttl), WithRenewInterval(interval))
	if err != nil {
		t.Fatal(err)
	}
	defer r.run(a)()
	validUntil, got := r.race(t, a, lock, ttl)
	limit := validUntil.Add(driftMargin(ttl))
	if got.Before(limit) {
		t.Errorf("%s, TTL %s: a follower acquired %s before the frozen leader's valid_until plus the drift margin (%s)",
			lock, ttl, limit.Sub(got), limit.Format("15:04:05.000"))
	}
	return got.Sub(limit)
}

// freezeRig is a leader "a" that freezes after its k-th renewal once armed
// (every request then hangs, as a stopped process or a partition would have
// it), and the followers that race for its lock: a plain client-go follower
// "b" and an Elector "c". With fail, the k-th renewal's first attempt fails
// without landing, so that the k-th renewal is its retry.
type freezeRig struct {
	c      *electortest.Cluster
	leader *fake.Clientset // the leader's clientset
	fail   bool

	mu       sync.Mutex
	armed    bool
	renewals int
	failed   bool
	frozen   chan struct{} // closed when the leader freezes
	thaw     chan struct{} // closed at the end, to let its requests go
	taken    time.Time     // a follower's first acquisition
}

func newFreezeRig(k int, fail bool) *freezeRig {
	r := &freezeRig{c: electortest.NewCluster(), fail: fail, frozen: make(chan struct{}), thaw: make(chan struct{})}
	r.leader = r.c.Client()
	r.leader.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		select {
		case <-r.frozen:
			<-r.thaw
			return true, nil, errors.New("frozen")
		default:
		}
		if a.GetVerb() != "update" {
			return false, nil, nil
		}
		r.mu.Lock()
		if r.armed && r.fail && !r.failed && r.renewals == k-1 && holderOf(a.(k8stesting.UpdateAction).GetObject()) == "a" {
			r.failed = true
			r.mu.Unlock()
			return true, nil, errors.New("injected: the renewal did not land")
		}
		r.mu.Unlock()
		obj, err := r.c.Client().Invokes(a, nil)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err == nil && r.armed && holderOf(obj) == "a" {
			if r.renewals++; r.renewals == k {
				close(r.frozen)
			}
		}
		return true, obj, err
	})
	return r
}

func (r *freezeRig) acquired(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.taken.IsZero() {
		r.taken = at
	}
}

// run runs the leader until the returned function is called, which thaws it
// first.
func (r *freezeRig) run(a *Elector) (stop func()) {
	stopA := runElector(a)
	return func() {
		close(r.thaw)
		stopA()
	}
}

// race waits for a to lead, starts the followers, arms the freeze, and
// returns a's last valid_until and when a follower first acquired.
func (r *freezeRig) race(t *testing.T, a *Elector, lock LockType, ttl time.Duration) (validUntil, taken time.Time) {
	t.Helper()
	for begin := time.Now(); !a.Status().IsLeader; {
		if time.Since(begin) > ttl {
			t.Fatalf("the leader-to-be did not lead within a TTL: %+v", a.Status())
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
	}
	plainFollower(t, r.c, lock, "b", ttl, r.acquired)
	ours := r.c.Client()
	ours.PrependReactor("*", "*", func(act k8stesting.Action) (bool, runtime.Object, error) {
		if v := act.GetVerb(); (v == "create" || v == "update") && holderOf(act.(k8stesting.CreateAction).GetObject()) == "c" {
			r.acquired(time.Now())
		}
		return false, nil, nil
	})
	b, err := New(testElection, WithClient(ours), WithID("c"), WithLockType(lock), WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runElector(b))
	// Both followers have read the lock at least once before the count.
	time.Sleep(3 * (ttl / retryPeriodDivisor))
	synctest.Wait()
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()

	begin := time.Now()
	for {
		if s := a.Status(); s.IsLeader && s.ValidUntil.After(validUntil) {
			validUntil = s.ValidUntil
		}
		r.mu.Lock()
		got := r.taken
		r.mu.Unlock()
		if !got.IsZero() {
			return validUntil, got
		}
		if time.Since(begin) > 4*ttl {
			t.Fatalf("%s, TTL %s: nobody took over from the frozen leader in %s", lock, ttl, 4*ttl)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
	}
}

// runElector runs e until the returned function is called, which waits for
// Run to return.
func runElector(e *Elector) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return func() {
		cancel()
		<-done
	}
}
