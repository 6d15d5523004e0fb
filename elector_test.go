package elector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/retry"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/record"
	"github.com/k8s-elector/elector/internal/serial"
	"github.com/k8s-elector/elector/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Timing used by the election tests: TTL 6s, renew deadline 2s, retry 1s.
const (
	testTTL   = 6 * time.Second
	testRetry = testTTL / retryPeriodDivisor
	// maxRetryWait is the longest a candidate waits between two attempts:
	// client-go jitters the retry period by up to 1.2×.
	maxRetryWait = testRetry + time.Duration(jitterFactor*float64(testRetry))
)

const testElection = "example"

// callbackLog records callbacks and checks their contract as they happen:
// started and stopped alternate, started first, stopped only after started
// has returned, and no two callbacks overlap.
type callbackLog struct {
	t       *testing.T
	id      string
	mu      sync.Mutex
	events  []string
	inCall  bool
	inTerm  bool
	onStart func(ctx context.Context) // leader work; default: wait for ctx
}

func (l *callbackLog) enter(event string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inCall {
		l.t.Errorf("%s: callback %q overlaps another callback", l.id, event)
	}
	l.inCall = true
	l.events = append(l.events, event)
	switch event {
	case "started":
		if l.inTerm {
			l.t.Errorf("%s: started-leading called twice without stopped-leading", l.id)
		}
		l.inTerm = true
	case "stopped":
		if !l.inTerm {
			l.t.Errorf("%s: stopped-leading called without a started term", l.id)
		}
		l.inTerm = false
	}
}

func (l *callbackLog) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inCall = false
}

func (l *callbackLog) options() []Option {
	return []Option{
		WithOnStartedLeading(func(ctx context.Context) {
			l.enter("started")
			defer l.leave()
			if l.onStart != nil {
				l.onStart(ctx)
				return
			}
			<-ctx.Done()
		}),
		WithOnStoppedLeading(func() {
			l.enter("stopped")
			l.leave()
		}),
		WithOnNewLeader(func(id string) {
			l.enter("leader=" + id)
			l.leave()
		}),
	}
}

// terms returns the started/stopped events only.
func (l *callbackLog) terms() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e == "started" || e == "stopped" {
			out = append(out, e)
		}
	}
	return out
}

type candidate struct {
	id     string
	e      *Elector
	client *fake.Clientset
	fault  atomic.Pointer[error] // when set, every request of this candidate fails with it
	// loseAnswer, when set, applies the next update and then fails it, as
	// a connection lost before the answer arrived.
	loseAnswer atomic.Bool
	// loseRequests, when set, fails that many next updates without
	// applying them, as requests lost on a broken connection: their
	// outcome is unknown to the candidate.
	loseRequests atomic.Int32
	stall        atomic.Int64 // when set, this candidate's next update first sleeps this long
	// onUpdate, when set, sees each update before it is applied.
	onUpdate atomic.Pointer[func(k8stesting.Action)]
	log      *callbackLog
	group    *Group // the Group it runs as, in forEachLock's group mode
	cancel   context.CancelFunc
	done     chan error
}

// start runs a candidate on its own clientset of cluster c. It must be called
// inside a synctest bubble; stop (or the test's end) cancels it.
func start(t *testing.T, c *electortest.Cluster, id string, lock LockType, opts ...Option) *candidate {
	t.Helper()
	return startWork(t, c, id, lock, nil, opts...)
}

// startWork is start with leader work: work runs as the started-leading
// callback (the default waits for its context).
func startWork(t *testing.T, c *electortest.Cluster, id string, lock LockType, work func(context.Context), opts ...Option) *candidate {
	t.Helper()
	return startFaulted(t, c, id, lock, work, nil, opts...)
}

// startFaulted is startWork with a fault that every request of the candidate
// fails with from its first on (nil for none): a fault stored after start
// may come after the candidate's first read.
func startFaulted(t *testing.T, c *electortest.Cluster, id string, lock LockType, work func(context.Context), fault error, opts ...Option) *candidate {
	t.Helper()
	cand := &candidate{id: id, client: c.Client(), log: &callbackLog{t: t, id: id, onStart: work}, done: make(chan error, 1)}
	if fault != nil {
		cand.fault.Store(&fault)
	}
	// Reactors must be in place before the client is used.
	cand.client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if err := cand.fault.Load(); err != nil {
			return true, nil, *err
		}
		if a.GetVerb() == "update" && !candidateWrite(a) {
			if f := cand.onUpdate.Load(); f != nil {
				(*f)(a)
			}
			// Like a paused process or a request stuck past its timeout:
			// the fake ignores contexts, so nothing cuts the sleep short.
			time.Sleep(time.Duration(cand.stall.Swap(0)))
			if cand.loseAnswer.CompareAndSwap(true, false) {
				// Applied, but the answer is lost on the way back.
				if _, err := c.Client().Invokes(a, nil); err != nil {
					return true, nil, err
				}
				return true, nil, errors.New("http2: client connection lost")
			}
			if n := cand.loseRequests.Load(); n > 0 && cand.loseRequests.CompareAndSwap(n, n-1) {
				return true, nil, errors.New("http2: client connection lost")
			}
		}
		return false, nil, nil
	})
	all := append([]Option{WithClient(cand.client), WithID(id), WithLockType(lock), WithTTL(testTTL)}, cand.log.options()...)
	ctx, cancel := context.WithCancel(context.Background())
	if slices.ContainsFunc(opts, isViaGroup) {
		// The candidate is a Group of one election, as a process that runs
		// many would be: the election goes through the Group's shared
		// watch and member Lease.
		var o options
		for _, opt := range opts {
			opt.apply(&o)
		}
		g, err := NewGroup("group", WithClient(cand.client), WithID(id), WithLockType(lock), WithTTL(testTTL), WithPriority(o.priority))
		if err != nil {
			t.Fatalf("NewGroup(%s): %v", id, err)
		}
		if cand.e, err = g.Add(testElection, append(all[1:], opts...)...); err != nil {
			t.Fatalf("Group.Add(%s): %v", id, err)
		}
		cand.group = g
		cand.cancel = cancel
		go func() { cand.done <- g.Run(ctx) }()
		t.Cleanup(func() { cand.stop(t) })
		return cand
	}
	e, err := New(testElection, append(all, opts...)...)
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	cand.e = e
	cand.cancel = cancel
	go func() { cand.done <- e.Run(ctx) }()
	t.Cleanup(func() { cand.stop(t) })
	return cand
}

// candidateWrite reports whether a is a write of a candidate Lease (the
// registry's) or of a Group's member Lease, which the faults aimed at the
// lock leave alone.
func candidateWrite(a k8stesting.Action) bool {
	o, ok := a.(interface{ GetObject() runtime.Object })
	if !ok {
		return false
	}
	m, err := meta.Accessor(o.GetObject())
	return err == nil && (m.GetLabels()[candidateLabel] != "" || m.GetLabels()[memberLabel] != "")
}

// viaGroup is the test option that makes start run the candidate as a
// Group of one election.
type viaGroup struct{}

func (viaGroup) apply(*options) {}

func isViaGroup(o Option) bool { _, ok := o.(viaGroup); return ok }

// stop cancels the candidate and waits for Run to return; Run must return nil.
func (c *candidate) stop(t *testing.T) {
	t.Helper()
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	if err := <-c.done; err != nil {
		t.Errorf("%s: Run returned %v, want nil after cancel", c.id, err)
	}
}

// leaders returns the IDs of the candidates that report leadership.
func leaders(cands ...*candidate) []string {
	var ids []string
	for _, c := range cands {
		if c.e.Status().IsLeader {
			ids = append(ids, c.id)
		}
	}
	return ids
}

// waitLeader advances virtual time in small steps until exactly one of cands
// leads, and returns it with the time that took. It fails the test after
// limit.
func waitLeader(t *testing.T, limit time.Duration, cands ...*candidate) (*candidate, time.Duration) {
	t.Helper()
	begin := time.Now()
	for {
		synctest.Wait()
		if ids := leaders(cands...); len(ids) == 1 {
			for _, c := range cands {
				if c.id == ids[0] {
					return c, time.Since(begin)
				}
			}
		} else if len(ids) > 1 {
			t.Fatalf("two leaders at once: %v", ids)
		}
		if time.Since(begin) > limit {
			var b strings.Builder
			for _, c := range cands {
				s := c.e.Status()
				fmt.Fprintf(&b, "\n  %s: leader %q, is_leader %t, transitions %d, renew %s", c.id, s.Leader, s.IsLeader, s.LeaderTransitions, s.RenewTime.Format("15:04:05.000"))
			}
			t.Fatalf("no leader among %d candidates after %s (now %s):%s", len(cands), limit, time.Now().Format("15:04:05.000"), b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockHolder reads the lock object as kubectl would and returns its record.
func lockHolder(t *testing.T, client kubernetes.Interface, lock LockType) resourcelock.LeaderElectionRecord {
	t.Helper()
	ctx := context.Background()
	if old, ok := migrating(lock); ok {
		// Both objects must record the same holder.
		rec, lease := lockHolder(t, client, old), lockHolder(t, client, LockLeases)
		if rec.HolderIdentity != lease.HolderIdentity {
			t.Fatalf("%s: the %s records holder %q, the lease %q", lock, old, rec.HolderIdentity, lease.HolderIdentity)
		}
		return rec
	}
	switch lock {
	case LockLeases:
		l, err := client.CoordinationV1().Leases("default").Get(ctx, testElection, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get lease: %v", err)
		}
		return *resourcelock.LeaseSpecToLeaderElectionRecord(&l.Spec)
	case LockConfigMaps, LockEndpoints:
		var ann map[string]string
		if lock == LockConfigMaps {
			cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, testElection, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get configmap: %v", err)
			}
			ann = cm.Annotations
		} else {
			ep, err := client.CoreV1().Endpoints("default").Get(ctx, testElection, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get endpoints: %v", err)
			}
			ann = ep.Annotations
		}
		rec, err := record.Decode(ann[record.AnnotationKey])
		if err != nil {
			t.Fatalf("lock annotation: %v", err)
		}
		return rec
	}
	t.Fatalf("unknown lock type %q", lock)
	return resourcelock.LeaderElectionRecord{}
}

// migrating returns the old lock type that a migration lock type holds
// together with a Lease.
func migrating(lock LockType) (LockType, bool) {
	switch lock {
	case LockConfigMapsLeases:
		return LockConfigMaps, true
	case LockEndpointsLeases:
		return LockEndpoints, true
	}
	return "", false
}

// kit is one case of forEachLock: a lock type and an election mode. Its
// start helpers start candidates in that mode.
type kit struct {
	lock  LockType
	poll  bool // WithWatch(false)
	group bool // a Group of one election: the shared watch
}

func (k kit) opts(opts []Option) []Option {
	switch {
	case k.poll:
		return append([]Option{WithWatch(false)}, opts...)
	case k.group:
		return append([]Option{viaGroup{}}, opts...)
	}
	return opts
}

func (k kit) start(t *testing.T, c *electortest.Cluster, id string, opts ...Option) *candidate {
	t.Helper()
	return start(t, c, id, k.lock, k.opts(opts)...)
}

func (k kit) startWork(t *testing.T, c *electortest.Cluster, id string, work func(context.Context), opts ...Option) *candidate {
	t.Helper()
	return startWork(t, c, id, k.lock, work, k.opts(opts)...)
}

func (k kit) startFaulted(t *testing.T, c *electortest.Cluster, id string, work func(context.Context), fault error, opts ...Option) *candidate {
	t.Helper()
	return startFaulted(t, c, id, k.lock, work, fault, k.opts(opts)...)
}

// forEachLock runs f for every lock type, in watch mode, polling mode and
// through a Group's shared watch, each in a synctest bubble.
func forEachLock(t *testing.T, f func(t *testing.T, k kit)) {
	for _, lock := range lockTypes() {
		for _, k := range []kit{{lock: lock}, {lock: lock, poll: true}, {lock: lock, group: true}} {
			t.Run(string(lock)+"/"+k.mode(), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { f(t, k) })
			})
		}
	}
}

// mode names the kit's mode.
func (k kit) mode() string {
	switch {
	case k.poll:
		return "poll"
	case k.group:
		return "group"
	}
	return "watch"
}

func TestExactlyOneLeaderAndAllAgree(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		cands := []*candidate{
			k.start(t, c, "a"), k.start(t, c, "b"), k.start(t, c, "c"),
		}
		leader, _ := waitLeader(t, testTTL, cands...)
		// Followers learn the leader at their next attempt.
		time.Sleep(maxRetryWait)
		// Let the election run for several TTLs: leadership must be stable,
		// unique, and agreed on by everyone.
		for range 3 * testTTL / testRetry {
			time.Sleep(testRetry)
			synctest.Wait()
			if got := leaders(cands...); !slices.Equal(got, []string{leader.id}) {
				t.Fatalf("leaders = %v, want only %s", got, leader.id)
			}
			for _, cand := range cands {
				if s := cand.e.Status(); s.Leader != leader.id || s.Node != cand.id {
					t.Fatalf("%s reports leader %q node %q, want leader %q node %q", cand.id, s.Leader, s.Node, leader.id, cand.id)
				}
			}
		}
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != leader.id {
			t.Fatalf("lock records holder %q, want %q", rec.HolderIdentity, leader.id)
		}
		for _, cand := range cands {
			want := []string(nil)
			if cand == leader {
				want = []string{"started"}
			}
			if got := cand.log.terms(); !slices.Equal(got, want) {
				t.Errorf("%s callbacks = %v, want %v", cand.id, got, want)
			}
		}
	})
}

func TestCancelReleasesAndHandsOverWithinARetry(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		cands := []*candidate{k.start(t, c, "a"), k.start(t, c, "b"), k.start(t, c, "c")}
		old, _ := waitLeader(t, testTTL, cands...)
		before := lockHolder(t, c.Client(), k.lock)

		old.stop(t) // returns once Run has released the lock
		if s := old.e.Status(); s.IsLeader {
			t.Fatalf("stopped leader still reports is_leader")
		}
		if got := old.log.terms(); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Fatalf("old leader callbacks = %v, want [started stopped]", got)
		}
		var rest []*candidate
		for _, cand := range cands {
			if cand != old {
				rest = append(rest, cand)
			}
		}
		// Without the release the followers would wait out the TTL (6s);
		// with it they take over at their next attempt.
		next, took := waitLeader(t, testTTL, rest...)
		if took > maxRetryWait {
			t.Fatalf("handover took %s, want at most one jittered retry period (%s)", took, maxRetryWait)
		}
		after := lockHolder(t, c.Client(), k.lock)
		if after.HolderIdentity != next.id {
			t.Fatalf("lock holder %q, want %q", after.HolderIdentity, next.id)
		}
		if after.LeaderTransitions != before.LeaderTransitions+1 {
			t.Fatalf("leaderTransitions %d -> %d, want +1", before.LeaderTransitions, after.LeaderTransitions)
		}
	})
}

func TestCrashedLeaderIsReplacedAfterTTL(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a", WithReleaseOnCancel(false))
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b")
		synctest.Wait()
		a.stop(t) // like a crash: no release
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "a" {
			t.Fatalf("holder after stop without release = %q, want a", rec.HolderIdentity)
		}
		_, took := waitLeader(t, 3*testTTL, b)
		if took < testTTL-testRetry || took > testTTL+maxRetryWait {
			t.Fatalf("takeover after %s, want between TTL-retry (%s) and TTL+jittered retry (%s)",
				took, testTTL-testRetry, testTTL+maxRetryWait)
		}
	})
}

func TestRejoinsAfterLosingLeadership(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b")
		synctest.Wait()

		// Cut a off: its renewals fail, so it must step down within the
		// renew deadline, and b takes over after the TTL.
		refused := errors.New("connection refused")
		a.fault.Store(&refused)
		time.Sleep(testTTL / renewDeadlineDivisor)
		synctest.Wait()
		if a.e.Status().IsLeader {
			// one more retry of slack for the jittered renew loop
			time.Sleep(maxRetryWait)
			synctest.Wait()
			if a.e.Status().IsLeader {
				t.Fatal("a still leads after its renew deadline with every request failing")
			}
		}
		waitLeader(t, 2*testTTL, a, b)
		if got := leaders(a, b); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("leaders = %v, want [b]", got)
		}

		a.fault.Store(nil)
		b.stop(t)
		// a is still campaigning, so it takes the released lock.
		waitLeader(t, maxRetryWait+time.Second, a)
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped", "started"}) {
			t.Fatalf("a callbacks = %v, want [started stopped started]", got)
		}
	})
}

func TestRunWaitsForLeaderWorkBeforeReleasing(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		const drain = 1500 * time.Millisecond
		var drained time.Time // written by the callback; read after Run returns
		a := k.startWork(t, c, "a", func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(drain) // leader work winding down
			drained = time.Now()
		})
		waitLeader(t, testTTL, a)

		a.cancel()
		time.Sleep(drain / 2)
		synctest.Wait()
		if a.e.Status().IsLeader {
			t.Fatal("a reports is_leader after its context was cancelled")
		}
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "a" {
			t.Fatalf("lock released while leader work was still running (holder %q)", rec.HolderIdentity)
		}
		if err := <-a.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		a.cancel = nil
		if drained.IsZero() {
			t.Fatal("Run returned before the started-leading callback")
		}
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "" {
			t.Fatalf("lock holder after Run = %q, want released", rec.HolderIdentity)
		}
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Fatalf("callbacks = %v, want [started stopped]", got)
		}
	})
}

func TestFollowerGetsNoTermCallbacks(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b")
		time.Sleep(2 * testTTL)
		synctest.Wait()
		b.stop(t)
		if got := b.log.terms(); len(got) != 0 {
			t.Fatalf("follower callbacks = %v, want none", got)
		}
		b.log.mu.Lock()
		defer b.log.mu.Unlock()
		if !slices.Equal(b.log.events, []string{"leader=a"}) {
			t.Fatalf("follower events = %v, want [leader=a]", b.log.events)
		}
	})
}

// testLoop returns the election loop of candidate id on client, with no
// Run around it, for tests of its steps.
func testLoop(t *testing.T, id string, lock LockType, client client) *loop {
	q := serial.New()
	t.Cleanup(q.Close)
	o := defaults()
	o.id, o.lockType, o.ttl, o.renewDeadline, o.retryPeriod = id, lock, testTTL, testTTL/renewDeadlineDivisor, testRetry
	vs := newViews(id)
	return &loop{
		id: id, o: &o, log: logr.Discard(), queue: q, views: vs, inbox: newInbox(), driver: &driver{},
		metrics: newMetrics("default/"+testElection, id, vs, false),
		rec: &observed{lock: newObjectLock(lock, "default", testElection, id, client, nil, nil), kind: lockTypeOf(lock).kind,
			id: id, ttl: testTTL, timeout: time.Second, log: logr.Discard()},
	}
}

// TestReleaseNeverClearsAnotherHolder: a candidate that believes it holds
// the lock releases it after another candidate has taken it, first from a
// stale view (its write conflicts), then after a fresh read.
func TestReleaseNeverClearsAnotherHolder(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		ctx := context.Background()
		a, b := testLoop(t, "a", k.lock, c.Client()), testLoop(t, "b", k.lock, c.Client())
		if !a.write(ctx, a.claim(time.Now())) || !a.rec.ours() {
			t.Fatal("a could not create the lock")
		}
		// b takes over (as after a's lease expired), unseen by a.
		if err := b.rec.read(ctx); err != nil {
			t.Fatal(err)
		}
		if !b.write(ctx, b.claim(time.Now())) {
			t.Fatal("b could not take the lock")
		}
		// a, still believing it holds the lock, releases from its stale
		// view: the write conflicts, a reads, and leaves b's record alone.
		if !a.rec.ours() {
			t.Fatal("a's stale view does not name a")
		}
		a.release(ctx, time.Now().Add(time.Second), "")
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "b" {
			t.Fatalf("holder = %q after a's release from a stale view, want b", rec.HolderIdentity)
		}
		// Again, from the fresh read: no write at all.
		a.release(ctx, time.Now().Add(time.Second), "")
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "b" {
			t.Fatalf("holder = %q after a's release from a fresh read, want b", rec.HolderIdentity)
		}
		// b's own release works.
		b.release(ctx, time.Now().Add(time.Second), "")
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "" {
			t.Fatalf("holder = %q after b's release, want none", rec.HolderIdentity)
		}
	})
}

// stubLock records the deadline of each request's context.
type stubLock struct {
	objectLock
	deadline time.Time
}

func (s *stubLock) get(ctx context.Context) (lockRead, error) {
	s.deadline, _ = ctx.Deadline()
	return lockRead{}, nil
}
func (s *stubLock) describe() string { return "default/example" }

func TestEveryRequestIsBounded(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want time.Duration
	}{
		{10 * time.Second, 10 * time.Second / 3 / 2},
		{60 * time.Second, 10 * time.Second},
		{3 * time.Second, time.Second}, // renew deadline 1s: floor of 1s
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, err := New(testElection, WithClient(fake.NewClientset()), WithTTL(tc.ttl))
				if err != nil {
					t.Fatal(err)
				}
				stub := &stubLock{}
				l := &observed{lock: stub, timeout: e.o.requestTimeout(), log: logr.Discard()}
				if err := l.read(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := stub.deadline.Sub(time.Now()); got != tc.want {
					t.Fatalf("request deadline in %s, want %s", got, tc.want)
				}
			})
		})
	}
}

func TestForeignObjectIsNeverAdopted(t *testing.T) {
	for _, lock := range []LockType{LockConfigMaps, LockEndpoints} {
		t.Run(string(lock), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				meta := metav1.ObjectMeta{Namespace: "default", Name: testElection, Labels: map[string]string{"app": "web"}}
				var obj runtime.Object = &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": "v"}}
				if lock == LockEndpoints {
					obj = &corev1.Endpoints{ObjectMeta: meta}
				}
				c := electortest.NewCluster(obj)
				logs := &testkit.Log{}
				a := start(t, c, "a", lock, WithLogger(logs.Logger()))
				time.Sleep(2 * testTTL)
				synctest.Wait()
				if s := a.e.Status(); s.IsLeader || s.Leader != "" {
					t.Fatalf("status = %+v, want no leader", s)
				}
				a.stop(t)
				got := objectMeta(t, c.Client(), lock)
				if got.ResourceVersion != "1" || len(got.Annotations) != 0 {
					t.Fatalf("foreign object was modified: rv %s, annotations %v", got.ResourceVersion, got.Annotations)
				}
				want := fmt.Sprintf("default/%s exists but has no %q annotation", testElection, record.AnnotationKey)
				if n := logs.ErrorsContaining(want); n != 1 {
					t.Fatalf("logged %d errors containing %q, want exactly 1 (once, not once per retry); log:\n%s", n, want, logs)
				}
			})
		})
	}
}

func TestUnparseableRecordIsNeverOverwritten(t *testing.T) {
	for _, lock := range []LockType{LockConfigMaps, LockEndpoints} {
		t.Run(string(lock), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				meta := metav1.ObjectMeta{Namespace: "default", Name: testElection,
					Annotations: map[string]string{record.AnnotationKey: `{"holderIdentity":`}}
				var obj runtime.Object = &corev1.ConfigMap{ObjectMeta: meta}
				if lock == LockEndpoints {
					obj = &corev1.Endpoints{ObjectMeta: meta}
				}
				c := electortest.NewCluster(obj)
				logs := &testkit.Log{}
				a := start(t, c, "a", lock, WithLogger(logs.Logger()))
				time.Sleep(2 * testTTL)
				synctest.Wait()
				if a.e.Status().IsLeader {
					t.Fatal("took over a lock whose record cannot be parsed")
				}
				if got := objectMeta(t, c.Client(), lock); got.Annotations[record.AnnotationKey] != `{"holderIdentity":` {
					t.Fatalf("unparseable record was overwritten: %q", got.Annotations[record.AnnotationKey])
				}
				if logs.ErrorsContaining("cannot be parsed") != 1 {
					t.Fatalf("want one error saying the record cannot be parsed; log:\n%s", logs)
				}

				// An operator fixes the record: the election recovers.
				fixLock(t, c.Client(), lock, `{"holderIdentity":"","leaseDurationSeconds":1,"acquireTime":null,"renewTime":null,"leaderTransitions":4}`)
				waitLeader(t, 2*maxRetryWait, a)
				if rec := lockHolder(t, c.Client(), lock); rec.LeaderTransitions != 5 {
					t.Fatalf("leaderTransitions = %d, want 5", rec.LeaderTransitions)
				}
			})
		})
	}
}

func objectMeta(t *testing.T, client kubernetes.Interface, lock LockType) metav1.ObjectMeta {
	t.Helper()
	ctx := context.Background()
	if lock == LockConfigMaps {
		cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, testElection, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.ObjectMeta
	}
	ep, err := client.CoreV1().Endpoints("default").Get(ctx, testElection, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ep.ObjectMeta
}

// fixLock rewrites the annotation as a third party (an operator or an old
// elector) would. Candidates may write in between its read and its write:
// it retries on conflict, as a careful third party does.
func fixLock(t *testing.T, client kubernetes.Interface, lock LockType, value string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if lock == LockConfigMaps {
			cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, testElection, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.Annotations = map[string]string{record.AnnotationKey: value}
			_, err = client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, testElection, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ep.Annotations = map[string]string{record.AnnotationKey: value}
		_, err = client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("rewrite lock: %v", err)
	}
}

// TestSharesElectionWithOldClientGo runs an elector against a lock that an
// elector on client-go v0.17 holds and renews in the old format.
func TestSharesElectionWithOldClientGo(t *testing.T) {
	for _, lock := range []LockType{LockConfigMaps, LockEndpoints} {
		t.Run(string(lock), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				old := func(renew time.Time) string {
					return fmt.Sprintf(`{"holderIdentity":"up-1","leaseDurationSeconds":6,"acquireTime":"2026-11-25T04:36:54Z","renewTime":%q,"leaderTransitions":3}`,
						renew.UTC().Format(time.RFC3339))
				}
				meta := metav1.ObjectMeta{Namespace: "default", Name: testElection,
					Annotations: map[string]string{record.AnnotationKey: old(time.Now())}}
				var obj runtime.Object = &corev1.ConfigMap{ObjectMeta: meta}
				if lock == LockEndpoints {
					obj = &corev1.Endpoints{ObjectMeta: meta}
				}
				c := electortest.NewCluster(obj)
				a := start(t, c, "a", lock)
				admin := c.Client()

				// The old elector renews every 2s for a while: a must follow.
				for range 8 {
					time.Sleep(2 * time.Second)
					fixLock(t, admin, lock, old(time.Now()))
					synctest.Wait()
					if s := a.e.Status(); s.IsLeader || s.Leader != "up-1" {
						t.Fatalf("status = %+v while up-1 renews, want follower of up-1", s)
					}
				}
				// The old elector dies: a takes over after the TTL, and writes
				// the record in the old format. a sees the last renewal at its
				// next attempt, and the lease expired at the attempt after the
				// TTL: up to a jittered retry on either side.
				waitLeader(t, maxRetryWait+testTTL+maxRetryWait+100*time.Millisecond, a)
				raw := objectMeta(t, admin, lock).Annotations[record.AnnotationKey]
				var keys []string
				for _, kv := range strings.Split(strings.Trim(raw, "{}"), ",") {
					keys = append(keys, strings.SplitN(kv, ":", 2)[0])
				}
				want := []string{`"holderIdentity"`, `"leaseDurationSeconds"`, `"acquireTime"`, `"renewTime"`, `"leaderTransitions"`}
				if !slices.Equal(keys, want) {
					t.Fatalf("record %s has keys %v, want exactly %v", raw, keys, want)
				}
				if rec := lockHolder(t, admin, lock); rec.HolderIdentity != "a" || rec.LeaderTransitions != 4 || rec.LeaseDurationSeconds != 6 {
					t.Fatalf("record = %+v, want holder a, 4 transitions, 6s", rec)
				}
			})
		})
	}
}

func TestLeaseRecordsHolderAndDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		l, err := c.Client().CoordinationV1().Leases("default").Get(context.Background(), testElection, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *l.Spec.HolderIdentity != "a" || *l.Spec.LeaseDurationSeconds != int32(testTTL/time.Second) {
			t.Fatalf("lease spec holder %q duration %d, want a and %d", *l.Spec.HolderIdentity, *l.Spec.LeaseDurationSeconds, testTTL/time.Second)
		}
	})
}

func TestRunTwiceConcurrentlyIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		synctest.Wait()
		if err := a.e.Run(context.Background()); !errors.Is(err, errAlreadyRunning) {
			t.Fatalf("second Run = %v, want errAlreadyRunning", err)
		}
	})
}

func TestConcurrentStatusAndHTTPWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a, b := start(t, c, "a", LockLeases), start(t, c, "b", LockLeases)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, cand := range []*candidate{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					_ = cand.e.Status()
					serveGET(cand.e, "/")
					time.Sleep(time.Millisecond)
				}
			}()
		}
		leader, _ := waitLeader(t, testTTL, a, b)
		leader.stop(t)
		time.Sleep(testTTL)
		cancel()
		wg.Wait()
	})
}

// TestStalledLeaderStopsReportingBeforeTakeover stalls the leader's renewal
// for two TTLs, as a paused process would be: it must stop reporting
// leadership, and stop its leader work, before the follower can take over,
// so that no instant has two leaders.
func TestStalledLeaderStopsReportingBeforeTakeover(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		var workEnded time.Time
		a := k.startWork(t, c, "a", func(ctx context.Context) {
			<-ctx.Done()
			workEnded = time.Now()
		})
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b")
		time.Sleep(maxRetryWait)
		synctest.Wait()

		a.stall.Store(int64(2 * testTTL))
		begin := time.Now()
		var aStopped, bStarted time.Time
		for time.Since(begin) < 3*testTTL {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			sa, sb := a.e.Status(), b.e.Status()
			if sa.IsLeader && sb.IsLeader {
				t.Fatalf("two leaders %s after the stall began", time.Since(begin))
			}
			if !sa.IsLeader && aStopped.IsZero() {
				aStopped = time.Now()
			}
			if sb.IsLeader && bStarted.IsZero() {
				bStarted = time.Now()
			}
		}
		if aStopped.IsZero() || bStarted.IsZero() {
			t.Fatalf("a stopped at %v, b started at %v: want both", aStopped, bStarted)
		}
		// a's last renewal was sent at most one jittered retry before the
		// stall: it must stop by then + TTL - margin, before b starts.
		if limit := begin.Add(testTTL - driftMargin(testTTL)); aStopped.After(limit) {
			t.Fatalf("a reported leadership until %s after the stall, want at most TTL-margin (%s)", aStopped.Sub(begin), testTTL-driftMargin(testTTL))
		}
		if !aStopped.Before(bStarted) {
			t.Fatalf("b started (%s) before a stopped (%s)", bStarted.Sub(begin), aStopped.Sub(begin))
		}
		a.stop(t)
		if workEnded.IsZero() || workEnded.After(aStopped) {
			t.Fatalf("a's leader work ended at %s, want by the time a stopped reporting (%s)", workEnded.Sub(begin), aStopped.Sub(begin))
		}
	})
}

// TestTakeoverSeenStopsLeadershipAtOnce rewrites the lock to another holder
// behind the leader's back: the read that shows it must end the term, rather
// than client-go's renew loop running on to its deadline.
func TestTakeoverSeenStopsLeadershipAtOnce(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		var workEnded time.Time
		a := k.startWork(t, c, "a", func(ctx context.Context) {
			<-ctx.Done()
			workEnded = time.Now()
		})
		waitLeader(t, testTTL, a)
		admin := c.Client()
		rec := lockHolder(t, admin, k.lock)
		rec.HolderIdentity = "intruder"
		rec.LeaderTransitions++
		writeRecord(t, admin, k.lock, rec)

		for begin := time.Now(); a.e.Status().Leader != "intruder"; {
			if time.Since(begin) > 2*maxRetryWait {
				t.Fatalf("a did not read the intruder's record within two retries: %+v", a.e.Status())
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		seen := time.Now()
		if a.e.Status().IsLeader {
			t.Fatal("a still reports leadership after reading that intruder holds the lock")
		}
		synctest.Wait()
		if workEnded.IsZero() || workEnded.After(seen) {
			t.Fatalf("leader work not cancelled when the takeover was read")
		}
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Fatalf("callbacks = %v, want [started stopped]", got)
		}
		// a keeps campaigning and follows the intruder.
		time.Sleep(testTTL / 2)
		synctest.Wait()
		if s := a.e.Status(); s.IsLeader || s.Leader != "intruder" {
			t.Fatalf("status = %+v, want follower of intruder", s)
		}
	})
}

// writeRecord overwrites the lock record as a third party would, retrying on
// conflict with the candidates. For a migration lock it writes the two
// objects one after the other, so candidates may see them disagree (an
// unknown holder) in between.
func writeRecord(t *testing.T, client kubernetes.Interface, lock LockType, rec resourcelock.LeaderElectionRecord) {
	t.Helper()
	if old, ok := migrating(lock); ok {
		writeRecord(t, client, old, rec)
		writeRecord(t, client, LockLeases, rec)
		return
	}
	if lock != LockLeases {
		fixLock(t, client, lock, record.Encode(rec))
		return
	}
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := client.CoordinationV1().Leases("default").Get(ctx, testElection, metav1.GetOptions{})
		if err != nil {
			return err
		}
		l.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&rec)
		_, err = client.CoordinationV1().Leases("default").Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("rewrite lease: %v", err)
	}
}

// TestFencingTokenGrowsWithEveryHolder hands leadership around a fleet, by
// release and by expiry, and checks that each new leader's token is higher
// than its predecessor's, within one lock object.
func TestFencingTokenGrowsWithEveryHolder(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		cands := []*candidate{
			k.start(t, c, "a", WithReleaseOnCancel(false)),
			k.start(t, c, "b"), k.start(t, c, "c"), k.start(t, c, "d"),
		}
		var uid string
		last := -1
		for round := range len(cands) {
			var live []*candidate
			for _, cand := range cands {
				if cand.cancel != nil {
					live = append(live, cand)
				}
			}
			// A migration lock's candidates that race for it after a lease
			// ran out can each write one of its two objects: the holder
			// is then unknown for another lease duration.
			limit := 2 * testTTL
			if _, ok := migrating(k.lock); ok {
				limit = 3 * testTTL
			}
			leader, _ := waitLeader(t, limit, live...)
			s := leader.e.Status()
			if s.LockUID == "" || (uid != "" && s.LockUID != uid) {
				t.Fatalf("round %d: lock UID %q, want one stable non-empty UID (%q)", round, s.LockUID, uid)
			}
			uid = s.LockUID
			if s.LeaderTransitions <= last {
				t.Fatalf("round %d: %s leads with token %d, not above its predecessor's %d", round, leader.id, s.LeaderTransitions, last)
			}
			if s.ValidUntil.IsZero() || !s.ValidUntil.After(time.Now()) {
				t.Fatalf("leader's valid_until %v is not in the future", s.ValidUntil)
			}
			for _, f := range live {
				if f != leader && !f.e.Status().ValidUntil.IsZero() {
					t.Fatalf("follower %s reports valid_until", f.id)
				}
			}
			last = s.LeaderTransitions
			leader.stop(t)
		}
	})
}

func TestResignHandsOverAndRejoinsAfterCooldown(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "b")
		time.Sleep(maxRetryWait)
		synctest.Wait()

		if err := b.e.Resign(context.Background()); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("follower Resign = %v, want ErrNotLeader", err)
		}
		const cooldown = 3 * testTTL
		if err := a.e.ResignFor(context.Background(), cooldown); err != nil {
			t.Fatalf("Resign: %v", err)
		}
		resigned := time.Now()
		if a.e.Status().IsLeader {
			t.Fatal("a reports leadership after Resign returned")
		}
		// b, the successor the release names, may be taking the lock at
		// this instant: let its writes land, so that a lock of two objects
		// is read between them, not in the middle.
		synctest.Wait()
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "" && rec.HolderIdentity != "b" {
			t.Fatalf("holder after Resign = %q, want released", rec.HolderIdentity)
		}
		if _, took := waitLeader(t, testTTL, a, b); took > maxRetryWait {
			t.Fatalf("b took over %s after Resign, want within a jittered retry (%s)", took, maxRetryWait)
		}
		if got := leaders(a, b); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("leaders = %v, want [b]", got)
		}
		// During the cooldown a stays out, even with the lock free.
		b.stop(t)
		for time.Since(resigned) < cooldown-100*time.Millisecond {
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if a.e.Status().IsLeader {
				t.Fatalf("a leads %s after resigning, within its %s cooldown", time.Since(resigned), cooldown)
			}
		}
		// Then it campaigns again.
		waitLeader(t, 2*maxRetryWait, a)
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped", "started"}) {
			t.Fatalf("a callbacks = %v, want [started stopped started]", got)
		}
	})
}

func TestResignNeedsRun(t *testing.T) {
	e, err := New(testElection, WithClient(fake.NewClientset()))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Resign(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Resign before Run = %v, want ErrNotLeader", err)
	}
}

func TestReleaseDelayReportsNotLeaderFirst(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		const delay = 2 * time.Second
		a := k.start(t, c, "a", WithReleaseDelay(delay))
		waitLeader(t, testTTL, a)
		a.cancel()
		synctest.Wait()
		cancelled := time.Now()
		if a.e.Status().IsLeader {
			t.Fatal("a reports leadership after cancel")
		}
		time.Sleep(delay - 100*time.Millisecond)
		synctest.Wait()
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "a" {
			t.Fatalf("lock released %s after cancel, before the %s release delay", time.Since(cancelled), delay)
		}
		if err := <-a.done; err != nil {
			t.Fatal(err)
		}
		a.cancel = nil
		if took := time.Since(cancelled); took < delay {
			t.Fatalf("Run returned %s after cancel, before the release delay", took)
		}
		if rec := lockHolder(t, c.Client(), k.lock); rec.HolderIdentity != "" {
			t.Fatalf("holder after Run = %q, want released", rec.HolderIdentity)
		}
	})
}

// TestMigrationFromConfigMapsToLeases walks the documented migration: a fleet
// on configmaps, then on configmapsleases, then on leases, with electors of
// neighbouring steps sharing the election, one leader at every moment.
func TestMigrationFromConfigMapsToLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		steady := func(leader *candidate, cands ...*candidate) {
			t.Helper()
			for range 2 * testTTL / testRetry {
				time.Sleep(testRetry)
				synctest.Wait()
				if got := leaders(cands...); !slices.Equal(got, []string{leader.id}) {
					t.Fatalf("leaders = %v, want only %s", got, leader.id)
				}
			}
			for _, cand := range cands {
				if s := cand.e.Status(); s.Leader != leader.id {
					t.Fatalf("%s reports leader %q, want %q", cand.id, s.Leader, leader.id)
				}
			}
		}

		// Step 1: the old fleet leads on configmaps; a replica rolled to
		// configmapsleases follows it.
		old := start(t, c, "old", LockConfigMaps)
		waitLeader(t, testTTL, old)
		mid := start(t, c, "mid", LockConfigMapsLeases)
		steady(old, old, mid)

		// The old replica goes away: the migrating one takes both objects.
		old.stop(t)
		waitLeader(t, testTTL+maxRetryWait, mid)
		if rec := lockHolder(t, c.Client(), LockConfigMapsLeases); rec.HolderIdentity != "mid" {
			t.Fatalf("holder %q, want mid in both objects", rec.HolderIdentity)
		}
		// An old replica still around (or restarted) follows it.
		old2 := start(t, c, "old2", LockConfigMaps)
		steady(mid, mid, old2)
		old2.stop(t)

		// Step 2: a replica rolled to leases follows the migrating leader.
		leases := start(t, c, "new", LockLeases)
		steady(mid, mid, leases)

		// Step 3: the last migrating replica goes; leases alone from now on.
		mid.stop(t)
		waitLeader(t, testTTL+maxRetryWait, leases)
		steady(leases, leases)
	})
}

// TestSharedIDIsReported runs two candidates with one ID: the lock cannot
// tell them apart, but a candidate that reads a record in its name that it
// did not write says so, loudly.
func TestSharedIDIsReported(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		var logs [2]testkit.Log
		a := k.start(t, c, "a", WithLogger(logs[0].Logger()))
		waitLeader(t, testTTL, a)
		b := k.start(t, c, "a", WithLogger(logs[1].Logger()))
		time.Sleep(3 * testTTL)
		synctest.Wait()
		a.stop(t)
		b.stop(t)
		if n := logs[0].ErrorsContaining("same ID") + logs[1].ErrorsContaining("same ID"); n == 0 {
			t.Errorf("two candidates with ID a, and neither reported it:\n%s\n%s", logs[0].String(), logs[1].String())
		}
	})
}

// TestThirdPartyLeaseDurations has a third party write a record naming
// another holder with a lease duration of 0 or a huge one: nobody reports
// leadership while another holds the lock by its own record, never two at
// once, and a zero duration is taken over at once (as client-go judges a
// record it sees: expired).
func TestThirdPartyLeaseDurations(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seconds  int
		takeover bool
	}{
		{"zero", 0, true},
		{"huge", 1 << 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachLock(t, func(t *testing.T, k kit) {
				c := electortest.NewCluster()
				a, b := k.start(t, c, "a"), k.start(t, c, "b")
				waitLeader(t, testTTL, a, b)
				admin := c.Client()
				rec := lockHolder(t, admin, k.lock)
				rec.HolderIdentity = "intruder"
				rec.LeaseDurationSeconds = tc.seconds
				rec.LeaderTransitions++
				writeRecord(t, admin, k.lock, rec)

				begin := time.Now()
				var took time.Duration
				for time.Since(begin) < 3*testTTL {
					ids := leaders(a, b)
					if len(ids) > 1 {
						t.Fatalf("two leaders: %v", ids)
					}
					// A takeover is a term after the intruder's record; the
					// old leader may report its own term until it reads it.
					for _, cand := range []*candidate{a, b} {
						if s := cand.e.Status(); s.IsLeader && s.LeaderTransitions > rec.LeaderTransitions && took == 0 {
							took = time.Since(begin)
						}
					}
					time.Sleep(10 * time.Millisecond)
					synctest.Wait()
				}
				// A migration lock's two objects are written one after the
				// other: a candidate that reads them in between sees an
				// unknown holder, which stands until the records stop
				// changing for a lease duration.
				limit := 2 * maxRetryWait
				if _, ok := migrating(k.lock); ok {
					limit = testTTL + maxRetryWait
				}
				switch {
				case tc.takeover && (took == 0 || took > limit):
					t.Errorf("a record with a zero lease duration was taken over after %s, want within %s", took, limit)
				case !tc.takeover && took != 0:
					t.Errorf("a record with a lease of %ds was taken over after %s", tc.seconds, took)
				}
			})
		})
	}
}

// TestUnansweredRenewalIsNotASharedID: a renewal that lands but whose answer
// is lost (a client timeout) shows up in the next read as a record this
// candidate did not see written. It is not another process with its ID.
func TestUnansweredRenewalIsNotASharedID(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		var logs testkit.Log
		a := k.start(t, c, "a", WithLogger(logs.Logger()))
		waitLeader(t, testTTL, a)
		// The next update is applied, then its answer is lost.
		a.loseAnswer.Store(true)
		time.Sleep(3 * maxRetryWait)
		synctest.Wait()
		if a.loseAnswer.Load() {
			t.Fatal("no renewal was attempted")
		}
		if n := logs.ErrorsContaining("same ID"); n != 0 {
			t.Errorf("a lost answer was reported as a shared ID:\n%s", logs.String())
		}
	})
}

// TestUnansweredRenewalsInARowAreNotASharedID: under load, a renewal lands
// but its answer is lost, and the next ones are lost too, their outcome
// unknown as well. The record then read is the first of them: still this
// candidate's own write, not another process's with its ID, and it keeps
// leading.
func TestUnansweredRenewalsInARowAreNotASharedID(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		var logs testkit.Log
		a := k.start(t, c, "a", WithLogger(logs.Logger()))
		waitLeader(t, testTTL, a)
		a.loseAnswer.Store(true) // the next renewal lands, its answer lost
		a.loseRequests.Store(2)  // the two after it are lost

		time.Sleep(testTTL)
		synctest.Wait()
		if a.loseAnswer.Load() || a.loseRequests.Load() != 0 {
			t.Fatal("the renewals were not attempted")
		}
		if n := logs.ErrorsContaining("same ID"); n != 0 {
			t.Errorf("renewals whose answers were lost were reported as a shared ID:\n%s", logs.String())
		}
		waitLeader(t, testTTL, a)
	})
}

// TestShutdownCutOffIsBounded stops a leader that cannot reach the API server
// any more, with a Pod label and Events still to send: the release and the
// flush share one budget, so Run returns within it.
func TestShutdownCutOffIsBounded(t *testing.T) {
	for _, ttl := range []time.Duration{3 * time.Second, 10 * time.Second} {
		t.Run(ttl.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := electortest.NewCluster()
				createPod(t, c, "pod-a", nil)
				a := start(t, c, "a", LockLeases, WithTTL(ttl), WithPodName("pod-a"), WithEvents(true))
				waitLeader(t, ttl, a)
				synctest.Wait()
				unreachable := errors.New("dial tcp 10.0.0.1:443: connect: connection refused")
				a.fault.Store(&unreachable)
				begin := time.Now()
				a.stop(t)
				budget := DefaultTimings(ttl).ShutdownBudget
				if took := time.Since(begin); took > budget {
					t.Errorf("Run returned %s after cancel, want at most the shutdown budget %s", took, budget)
				}
			})
		})
	}
}
