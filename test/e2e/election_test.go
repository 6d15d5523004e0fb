package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// Timing of the suite: TTL 6s gives a renew deadline of 2s and a retry
// period of 1s, which client-go jitters to up to 2.2× for candidates. The
// slack absorbs a loaded 2-core machine; every bound stays below the
// next-larger one it must be told apart from (a retry-period handover from a
// TTL one).
const (
	ttl   = 6 * time.Second
	slack = 2 * time.Second
	// leaderAnnotation holds the leader record of configmaps and endpoints
	// locks, as client-go up to v0.26 wrote it.
	leaderAnnotation = "control-plane.alpha.kubernetes.io/leader"
)

// The suite's derived timings, from the library that derives them.
var (
	timings = elector.DefaultTimings(ttl)
	retry   = timings.RetryPeriod
	// maxRetry is the longest wait between two attempts: client-go
	// jitters the retry period by up to 1.2×.
	maxRetry = retry * 22 / 10
)

var lockTypes = []string{"leases", "configmaps", "endpoints", "configmapsleases"}

var namespaces atomic.Int64

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("e2e-%d-%d", os.Getpid(), namespaces.Add(1))
	_, err := admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

// startFleet starts n electors for election in ns with the admin identity.
func startFleet(t *testing.T, ns, lock, election string, n int) []*fleet.Elector {
	t.Helper()
	cfg := fleet.Config{
		Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: election,
		Namespace: ns, LockType: lock, TTL: ttl,
	}
	var electors []*fleet.Elector
	for i := range n {
		e := startElector(t, cfg, fmt.Sprintf("%s-%d", lock, i))
		electors = append(electors, e)
	}
	return electors
}

// settledFleet starts 3 electors of election "demo" in a new namespace,
// waits for exactly one leader within the TTL, and for every elector to name
// it (followers learn it at their next attempt); it returns the namespace,
// the electors and the leader.
func settledFleet(t *testing.T, lock string) (string, []*fleet.Elector, *fleet.Elector) {
	t.Helper()
	ns := newNamespace(t)
	electors := startFleet(t, ns, lock, "demo", 3)
	leader, _ := waitLeader(t, ttl, electors...)
	waitAgree(t, maxRetry+slack, leader, electors...)
	return ns, electors, leader
}

// startElector starts one elector, killed at the end of the test; its log is
// printed when the test fails.
func startElector(t *testing.T, cfg fleet.Config, id string) *fleet.Elector {
	t.Helper()
	e, err := fleet.Start(cfg, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", e.ID, e.Logs())
		}
	})
	return e
}

// poll reads every elector's status once. Electors that do not answer
// (stopped, killed, not listening yet) are left out.
func poll(electors []*fleet.Elector) map[*fleet.Elector]fleet.Status {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out := map[*fleet.Elector]fleet.Status{}
	for _, e := range electors {
		if s, err := e.Status(ctx); err == nil {
			out[e] = s
		}
	}
	return out
}

// waitLeader polls until exactly one elector reports leadership and returns
// it with the time that took. Two electors reporting leadership in one round
// of polls fails the test at once.
func waitLeader(t *testing.T, limit time.Duration, electors ...*fleet.Elector) (*fleet.Elector, time.Duration) {
	t.Helper()
	begin := time.Now()
	for {
		var leading []*fleet.Elector
		for e, s := range poll(electors) {
			if s.IsLeader {
				leading = append(leading, e)
			}
		}
		switch {
		case len(leading) > 1:
			t.Fatalf("%s and %s both report is_leader", leading[0].ID, leading[1].ID)
		case len(leading) == 1:
			return leading[0], time.Since(begin)
		case time.Since(begin) > limit:
			t.Fatalf("no leader within %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAgree polls until every elector reports the same leader, within limit.
func waitAgree(t *testing.T, limit time.Duration, leader *fleet.Elector, electors ...*fleet.Elector) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		statuses := poll(electors)
		agree := len(statuses) == len(electors)
		for e, s := range statuses {
			if s.Leader != leader.ID || s.Node != e.ID || s.IsLeader != (e == leader) {
				agree = false
			}
		}
		if agree {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("electors do not agree that %s leads within %s: %v", leader.ID, limit, describe(statuses))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(statuses map[*fleet.Elector]fleet.Status) string {
	var parts []string
	for e, s := range statuses {
		parts = append(parts, fmt.Sprintf("%s: leader=%q is_leader=%v", e.ID, s.Leader, s.IsLeader))
	}
	return strings.Join(parts, "; ")
}

// holder reads the lock object through the API, as kubectl get would, and
// returns the holder it records. A missing object fails the test.
func holder(t *testing.T, ns, lock, name string) string {
	t.Helper()
	ctx := context.Background()
	var ann map[string]string
	switch lock {
	case "configmapsleases", "endpointsleases":
		// Both objects record the holder.
		old := strings.TrimSuffix(lock, "leases")
		h, l := holder(t, ns, old, name), holder(t, ns, "leases", name)
		if h != l {
			t.Fatalf("%s: the %s records holder %q, the lease %q", lock, old, h, l)
		}
		return h
	case "leases":
		l, err := admin.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get lease %s/%s: %v", ns, name, err)
		}
		if l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	case "configmaps":
		cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get configmap %s/%s: %v", ns, name, err)
		}
		ann = cm.Annotations
	case "endpoints":
		ep, err := admin.CoreV1().Endpoints(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get endpoints %s/%s: %v", ns, name, err)
		}
		ann = ep.Annotations
	}
	// The record older client-go wrote and read.
	var rec struct {
		HolderIdentity       string `json:"holderIdentity"`
		LeaseDurationSeconds int    `json:"leaseDurationSeconds"`
	}
	if err := json.Unmarshal([]byte(ann[leaderAnnotation]), &rec); err != nil {
		t.Fatalf("%s %s/%s: annotation %s: %v", lock, ns, name, leaderAnnotation, err)
	}
	if rec.HolderIdentity != "" && rec.LeaseDurationSeconds != int(ttl.Seconds()) {
		t.Errorf("%s %s/%s records leaseDurationSeconds %d, want %d", lock, ns, name, rec.LeaseDurationSeconds, int(ttl.Seconds()))
	}
	return rec.HolderIdentity
}

func forEachLock(t *testing.T, f func(t *testing.T, lock string)) {
	for _, lock := range lockTypes {
		t.Run(lock, func(t *testing.T) {
			parallel(t)
			f(t, lock)
		})
	}
}

func TestFleetElectsOneLeaderAndAgrees(t *testing.T) {
	parallelParent(t)
	forEachLock(t, func(t *testing.T, lock string) {
		ns, electors, leader := settledFleet(t, lock)
		if got := holder(t, ns, lock, "demo"); got != leader.ID {
			t.Fatalf("the %s object records holder %q, want %q", lock, got, leader.ID)
		}
		// Leadership stays put for more than a TTL.
		stableUntil := time.Now().Add(ttl + retry)
		for time.Now().Before(stableUntil) {
			for e, s := range poll(electors) {
				if s.IsLeader != (e == leader) || s.Leader != leader.ID {
					t.Fatalf("%s reports is_leader=%v leader=%q while %s leads", e.ID, s.IsLeader, s.Leader, leader.ID)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The gauge that Kubernetes components export through client-go
		// says the same, for their dashboards and alerts.
		for _, e := range electors {
			want := 0.0
			if e == leader {
				want = 1
			}
			wantMetric(t, e, want, "leader_election_master_status", `name="demo"`)
		}
	})
}

// stackTrace matches what a Go panic or a dumped goroutine looks like.
var stackTrace = regexp.MustCompile(`(?m)^(panic: |goroutine \d+ \[|fatal error: )`)

func TestSIGTERMReleasesAndHandsOverWithinARetry(t *testing.T) {
	parallelParent(t)
	forEachLock(t, func(t *testing.T, lock string) {
		ns, electors, leader := settledFleet(t, lock)

		if err := leader.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		rest := without(electors, leader)
		next, took := waitLeader(t, ttl, rest...)
		t.Logf("%s: %s led %s after SIGTERM", lock, next.ID, took)
		if limit := maxRetry + slack; took > limit {
			t.Errorf("after SIGTERM, %s led only after %s; a released lock must be taken within a retry period (%s with slack)", next.ID, took, limit)
		}
		code, err := leader.Wait(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0", leader.ID, code)
		}
		logs := leader.Logs()
		if stackTrace.MatchString(logs) {
			t.Errorf("%s printed a stack trace on SIGTERM:\n%s", leader.ID, logs)
		}
		if !strings.Contains(logs, "released lock") {
			t.Errorf("%s did not log that it released the lock", leader.ID)
		}
		if got := holder(t, ns, lock, "demo"); got != next.ID {
			t.Errorf("the lock records holder %q, want %q", got, next.ID)
		}
	})
}

func TestSIGKILLIsReplacedAfterTheTTL(t *testing.T) {
	parallelParent(t)
	forEachLock(t, func(t *testing.T, lock string) {
		_, electors, leader := settledFleet(t, lock)

		leader.Kill()
		next, took := waitLeader(t, 2*ttl+slack, without(electors, leader)...)
		t.Logf("%s: %s led %s after SIGKILL", lock, next.ID, took)
		if limit := ttl + maxRetry + slack; took > limit {
			t.Errorf("after SIGKILL, %s led only after %s, want within TTL + retry period (%s with slack)", next.ID, took, limit)
		}
		// The lease was not released: a follower may take it only once it
		// has seen the record unchanged for a TTL, which began at most one
		// renewal interval before the kill.
		if floor := ttl - maxRetry - 500*time.Millisecond; took < floor {
			t.Errorf("after SIGKILL, %s led after %s, before the killed leader's lease could have run out (%s)", next.ID, took, floor)
		}
	})
}

func without(all []*fleet.Elector, drop *fleet.Elector) []*fleet.Elector {
	var out []*fleet.Elector
	for _, e := range all {
		if e != drop {
			out = append(out, e)
		}
	}
	return out
}
