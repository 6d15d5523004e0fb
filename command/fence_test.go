//go:build linux

package command

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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/record"
	"github.com/k8s-elector/elector/internal/testkit"
)

// TestCommandFenceStopsBeforeValidUntil freezes a leader that runs a command
// (every request hangs, as a partition or a stuck API server would have it)
// after each of its renewals in turn, over start offsets across second
// boundaries, with a command that exits on SIGTERM and one that ignores it.
// Followers count the lease from what they saw, so for every schedule: the
// command gets SIGTERM no later than valid_until - grace, SIGKILL (if it is
// needed) before valid_until, it is dead before valid_until, and neither a
// plain client-go follower nor an Elector follower acquires before it is
// dead.
func TestCommandFenceStopsBeforeValidUntil(t *testing.T) {
	schedules := 0
	var margins []time.Duration
	for _, ttl := range []time.Duration{2 * time.Second, 6 * time.Second} {
		for _, lock := range []elector.LockType{elector.LockLeases, elector.LockConfigMaps, elector.LockConfigMapsLeases} {
			for _, onTerm := range []time.Duration{0, -1} {
				name := fmt.Sprintf("%s/%s/exits-on-SIGTERM", ttl, lock)
				if onTerm < 0 {
					name = fmt.Sprintf("%s/%s/ignores-SIGTERM", ttl, lock)
				}
				t.Run(name, func(t *testing.T) {
					for offset := time.Duration(0); offset < time.Second; offset += 300 * time.Millisecond {
						for k := 1; k <= 2; k++ {
							schedules++
							synctest.Test(t, func(t *testing.T) {
								margins = append(margins, fenceSchedule(t, lock, ttl, onTerm, offset, k))
							})
							if t.Failed() {
								t.Fatalf("schedule: start +%s, frozen after renewal %d", offset, k)
							}
						}
					}
				})
			}
		}
	}
	if len(margins) > 0 {
		slices.Sort(margins)
		t.Logf("%d schedules; the command was dead this long before valid_until: least %s, median %s",
			schedules, margins[0], margins[len(margins)/2])
	}
}

// fenceSchedule runs one schedule of the sweep and returns how long before
// valid_until the command was dead.
func fenceSchedule(t *testing.T, lock elector.LockType, ttl, onTerm, offset time.Duration, k int) time.Duration {
	time.Sleep(offset)
	r := newFreezeRig(k)
	procs := &fakeStarter{onTerm: onTerm}
	a, cmd := newPair(t, r.leader, "a", lock, ttl, procs, nil)
	defer r.run(func(ctx context.Context) error { return cmd.Run(ctx, a) })()
	testkit.WaitFor(t, ttl, "the command starts", func() bool { return procs.last() != nil })
	grace := cmd.Grace()
	validUntil, taken := r.race(t, a, lock, ttl)
	if n := len(procs.all()); n != 1 {
		t.Fatalf("the leader started %d commands, want 1", n)
	}
	term, kill, ended := procs.last().times()
	switch {
	case term.IsZero() || ended.IsZero():
		t.Fatalf("the command got SIGTERM at %v and ended at %v: want both before the takeover", term, ended)
	case term.After(validUntil.Add(-grace)):
		t.Errorf("SIGTERM came %s after valid_until - grace", term.Sub(validUntil.Add(-grace)))
	case onTerm < 0 && (kill.IsZero() || !kill.Before(validUntil)):
		t.Errorf("a command that ignores SIGTERM got SIGKILL at %v, want before valid_until %v", kill, validUntil)
	case !ended.Before(validUntil):
		t.Errorf("the command ended %s after valid_until", ended.Sub(validUntil))
	case !taken.After(ended):
		t.Errorf("a follower acquired %s before the command ended", ended.Sub(taken))
	}
	if onTerm >= 0 && !kill.IsZero() {
		t.Errorf("a command that exits on SIGTERM got SIGKILL too")
	}
	return validUntil.Sub(ended)
}

// freezeRig is a leader "a" that freezes after its k-th renewal once armed
// (every request then hangs, as a stopped process or a partition would have
// it), and the followers that race for its lock: a plain client-go follower
// "b" and an Elector "c".
type freezeRig struct {
	c      *electortest.Cluster
	leader *fake.Clientset // the leader's clientset

	mu       sync.Mutex
	armed    bool
	renewals int
	frozen   chan struct{} // closed when the leader freezes
	thaw     chan struct{} // closed at the end, to let its requests go
	taken    time.Time     // a follower's first acquisition
}

func newFreezeRig(k int) *freezeRig {
	r := &freezeRig{c: electortest.NewCluster(), frozen: make(chan struct{}), thaw: make(chan struct{})}
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
func (r *freezeRig) run(f func(context.Context) error) (stop func()) {
	stopA := runUntil(f)
	return func() {
		close(r.thaw)
		stopA()
	}
}

// race waits for a to lead, starts the followers, arms the freeze, and
// returns a's last valid_until and when a follower first acquired.
func (r *freezeRig) race(t *testing.T, a *elector.Elector, lock elector.LockType, ttl time.Duration) (validUntil, taken time.Time) {
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
	b, err := elector.New(testElection, elector.WithClient(ours), elector.WithID("c"), elector.WithLockType(lock), elector.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runUntil(b.Run))
	// Both followers have read the lock at least once before the count.
	time.Sleep(3 * (ttl / 6))
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

// runUntil runs f until the returned function is called, which cancels
// f's context and waits for it to return.
func runUntil(f func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	return func() {
		cancel()
		<-done
	}
}

// plainFollower runs a plain client-go LeaderElector for id on its own
// clientset of c, with the Elector's default timings for ttl: on a Lease,
// on a ConfigMap as client-go's former ConfigMapLock, or on both as its
// MultiLock. It reports the instant its first acquisition was sent.
func plainFollower(t *testing.T, c *electortest.Cluster, lock elector.LockType, id string, ttl time.Duration, acquired func(time.Time)) {
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
	lease := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: "default", Name: testElection},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	var rl resourcelock.Interface
	switch lock {
	case elector.LockLeases:
		rl = lease
	case elector.LockConfigMaps:
		rl = &configMapLock{client: client.CoreV1(), id: id}
	case elector.LockConfigMapsLeases:
		rl = &resourcelock.MultiLock{Primary: &configMapLock{client: client.CoreV1(), id: id}, Secondary: lease}
	default:
		t.Fatalf("no plain follower for lock type %q", lock)
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          rl,
		LeaseDuration: ttl,
		RenewDeadline: ttl / 3,
		RetryPeriod:   ttl / 6,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), logr.Discard()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// configMapLock is client-go's former ConfigMapLock: the record in an
// annotation of the ConfigMap, as its raw record.
type configMapLock struct {
	client corev1client.ConfigMapsGetter
	id     string
	cm     *corev1.ConfigMap // as last read or written
}

func (l *configMapLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	cm, err := l.client.ConfigMaps("default").Get(ctx, testElection, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	l.cm = cm
	raw, ok := cm.Annotations[record.AnnotationKey]
	if !ok {
		return &resourcelock.LeaderElectionRecord{}, nil, nil
	}
	rec, err := record.Decode(raw)
	if err != nil {
		return nil, nil, err
	}
	return &rec, []byte(raw), nil
}

func (l *configMapLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	cm, err := l.client.ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: testElection, Annotations: map[string]string{record.AnnotationKey: record.Encode(rec)},
	}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.cm = cm
	return nil
}

func (l *configMapLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if l.cm == nil {
		return errors.New("configmap not initialized, call get or create first")
	}
	cm := l.cm.DeepCopy()
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[record.AnnotationKey] = record.Encode(rec)
	cm, err := l.client.ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.cm = cm
	return nil
}

func (l *configMapLock) RecordEvent(string) {}
func (l *configMapLock) Identity() string   { return l.id }
func (l *configMapLock) Describe() string   { return "default/" + testElection }
