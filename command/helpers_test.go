//go:build linux

package command

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/record"
)

// Timing used by the election tests: TTL 6s, renew deadline 2s, retry 1s.
const (
	testTTL   = 6 * time.Second
	testRetry = testTTL / 6
	// maxRetryWait is the longest a candidate waits between two attempts:
	// client-go jitters the retry period by up to 1.2×.
	maxRetryWait = testRetry + time.Duration(1.2*float64(testRetry))
)

const testElection = "example"

// fakeProc is a command on virtual time: it records the signals it gets and
// exits as told.
type fakeProc struct {
	n      int
	env    []string
	onTerm time.Duration // exits this long after SIGTERM; < 0 ignores it

	mu      sync.Mutex
	started time.Time
	term    time.Time // first SIGTERM
	kill    time.Time // first SIGKILL
	ended   time.Time
	other   []syscall.Signal // any other signal; negative when sent to the group
	st      exitStatus
	exited  chan struct{}
}

func (p *fakeProc) pid() int { return 1000 + p.n }

func (p *fakeProc) signal(sig syscall.Signal, group bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended.IsZero() {
		return syscall.ESRCH
	}
	switch sig {
	case syscall.SIGTERM:
		if p.term.IsZero() {
			p.term = time.Now()
			if p.onTerm >= 0 {
				time.AfterFunc(p.onTerm, func() { p.exit(0) })
			}
		}
	case syscall.SIGKILL:
		if p.kill.IsZero() {
			p.kill = time.Now()
		}
		p.exitLocked(128 + int(syscall.SIGKILL))
	default:
		if group {
			sig = -sig // marks a signal sent to the group
		}
		p.other = append(p.other, sig)
	}
	return nil
}

func (p *fakeProc) exit(code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exitLocked(code)
}

func (p *fakeProc) exitLocked(code int) {
	if !p.ended.IsZero() {
		return
	}
	p.ended = time.Now()
	p.st = exitStatus{code: code, status: fmt.Sprintf("exit status %d", code)}
	close(p.exited)
}

func (p *fakeProc) wait() exitStatus {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// times returns when the process got SIGTERM and SIGKILL and when it ended
// (zero for what did not happen).
func (p *fakeProc) times() (term, kill, ended time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.term, p.kill, p.ended
}

// fakeStarter starts fakeProcs and keeps them in order.
type fakeStarter struct {
	onTerm time.Duration
	fail   error // Start fails with it, when set

	mu    sync.Mutex
	procs []*fakeProc
}

func (f *fakeStarter) start(path string, argv, env []string) (process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	p := &fakeProc{n: len(f.procs), env: env, onTerm: f.onTerm, started: time.Now(), exited: make(chan struct{})}
	f.procs = append(f.procs, p)
	return p, nil
}

func (f *fakeStarter) all() []*fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.procs)
}

func (f *fakeStarter) last() *fakeProc {
	ps := f.all()
	if len(ps) == 0 {
		return nil
	}
	return ps[len(ps)-1]
}

// testConfig is a command as the tests run it: sh, which exists, for
// candidate id of the test election with the TTL ttl.
func testConfig(id string, ttl time.Duration) Config {
	return Config{
		Name: "sh", Args: []string{"-c", "exit 0"},
		Election: testElection, Namespace: "default", ID: id,
		Timings: elector.DefaultTimings(ttl),
	}
}

// newPair builds candidate id's Command, which starts fake processes of
// procs, and its Elector on client, with the command's Options. edit, if
// not nil, changes the Config first.
func newPair(t *testing.T, client kubernetes.Interface, id string, lock elector.LockType, ttl time.Duration, procs *fakeStarter,
	edit func(*Config), opts ...elector.Option) (*elector.Elector, *Command) {
	t.Helper()
	cfg := testConfig(id, ttl)
	if edit != nil {
		edit(&cfg)
	}
	cmd, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	cmd.start = procs.start
	all := []elector.Option{elector.WithClient(client), elector.WithID(id), elector.WithLockType(lock), elector.WithTTL(ttl)}
	e, err := elector.New(testElection, append(append(all, opts...), cmd.Options()...)...)
	if err != nil {
		t.Fatalf("elector.New(%s): %v", id, err)
	}
	return e, cmd
}

// candidate is an Elector running in a test, with a command or without.
type candidate struct {
	id     string
	e      *elector.Elector
	cmd    *Command // nil for a plain candidate
	cancel context.CancelFunc
	done   chan error
}

// start runs candidate id with a command of procs on its own clientset of
// cluster c, with the test TTL. It must be called inside a synctest bubble;
// stop (or the test's end) cancels it.
func start(t *testing.T, c *electortest.Cluster, id string, procs *fakeStarter, edit func(*Config), opts ...elector.Option) *candidate {
	t.Helper()
	e, cmd := newPair(t, c.Client(), id, elector.LockLeases, testTTL, procs, edit, opts...)
	return runCandidate(t, id, e, cmd)
}

// startPlain runs candidate id without a command: its leader work waits
// for the term to end.
func startPlain(t *testing.T, c *electortest.Cluster, id string) *candidate {
	t.Helper()
	e, err := elector.New(testElection, elector.WithClient(c.Client()), elector.WithID(id), elector.WithTTL(testTTL),
		elector.WithOnStartedLeading(func(ctx context.Context) { <-ctx.Done() }))
	if err != nil {
		t.Fatalf("elector.New(%s): %v", id, err)
	}
	return runCandidate(t, id, e, nil)
}

// runCandidate runs e, with cmd's Run when cmd is not nil, until stop.
func runCandidate(t *testing.T, id string, e *elector.Elector, cmd *Command) *candidate {
	cand := &candidate{id: id, e: e, cmd: cmd, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	cand.cancel = cancel
	go func() {
		if cmd == nil {
			cand.done <- e.Run(ctx)
			return
		}
		cand.done <- cmd.Run(ctx, e)
	}()
	t.Cleanup(func() { cand.stop(t) })
	return cand
}

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

// reported returns the command's status as e's Status reports it, and
// false if it reports none.
func reported(t *testing.T, e *elector.Elector) (Status, bool) {
	t.Helper()
	raw, ok := e.Status().Reports[StatusKey]
	if !ok {
		return Status{}, false
	}
	var s Status
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("the command's report %s: %v", raw, err)
	}
	return s, true
}

// lockHolder reads the lock object as kubectl would and returns its record.
func lockHolder(t *testing.T, client kubernetes.Interface, lock elector.LockType) resourcelock.LeaderElectionRecord {
	t.Helper()
	ctx := context.Background()
	switch lock {
	case elector.LockConfigMapsLeases:
		// Both objects must record the same holder.
		rec, lease := lockHolder(t, client, elector.LockConfigMaps), lockHolder(t, client, elector.LockLeases)
		if rec.HolderIdentity != lease.HolderIdentity {
			t.Fatalf("%s: the configmap records holder %q, the lease %q", lock, rec.HolderIdentity, lease.HolderIdentity)
		}
		return rec
	case elector.LockLeases:
		l, err := client.CoordinationV1().Leases("default").Get(ctx, testElection, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get lease: %v", err)
		}
		return *resourcelock.LeaseSpecToLeaderElectionRecord(&l.Spec)
	case elector.LockConfigMaps:
		cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, testElection, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get configmap: %v", err)
		}
		rec, err := record.Decode(cm.Annotations[record.AnnotationKey])
		if err != nil {
			t.Fatalf("lock annotation: %v", err)
		}
		return rec
	}
	t.Fatalf("unsupported lock type %q", lock)
	return resourcelock.LeaderElectionRecord{}
}

// holderOf returns the holder an object written to the fake records: of
// the lock, not of the candidates' own Leases beside it.
func holderOf(obj runtime.Object) string {
	switch o := obj.(type) {
	case *coordinationv1.Lease:
		if o.Spec.HolderIdentity != nil && o.Name == testElection {
			return *o.Spec.HolderIdentity
		}
	case *corev1.ConfigMap:
		rec, _ := record.Decode(o.Annotations[record.AnnotationKey])
		return rec.HolderIdentity
	}
	return ""
}
