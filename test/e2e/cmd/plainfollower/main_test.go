package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	elector "github.com/k8s-elector/elector"
)

func TestRunRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		lockType string
		ttl      time.Duration
		want     string
	}{
		{"configmaps", 10 * time.Second, `-lock-type "configmaps": only leases`},
		{"", 10 * time.Second, `-lock-type "": only leases`},
		{"leases", time.Second, "-ttl 1s: want whole seconds, at least 2s"},
		{"leases", 2500 * time.Millisecond, "-ttl 2.5s: want whole seconds, at least 2s"},
		{"leases", 0, "-ttl 0s: want whole seconds, at least 2s"},
	} {
		err := run("/nonexistent/kubeconfig", "default", "e", "plain-1", "127.0.0.1:0", tc.lockType, tc.ttl)
		if err == nil || err.Error() != tc.want {
			t.Errorf("run(-lock-type=%q, -ttl=%s): got %v, want %q", tc.lockType, tc.ttl, err, tc.want)
		}
	}
}

func testLease(holder string, transitions, seconds int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default", UID: types.UID("uid-" + holder)}}
	if holder != "" {
		l.Spec.HolderIdentity = &holder
	}
	if transitions >= 0 {
		l.Spec.LeaseTransitions = &transitions
	}
	if seconds >= 0 {
		l.Spec.LeaseDurationSeconds = &seconds
	}
	return l
}

var cmpLockState = cmp.AllowUnexported(lockState{})

func TestStateOf(t *testing.T) {
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		lease *coordinationv1.Lease
		sent  time.Time
		want  lockState
	}{
		{"a write", testLease("a", 4, 10), sent, lockState{uid: "uid-a", transitions: 4, sent: sent, lease: 10 * time.Second}},
		{"a read", testLease("a", 4, 10), time.Time{}, lockState{uid: "uid-a", transitions: 4, lease: 10 * time.Second}},
		{"no transitions or duration", testLease("", -1, -1), sent, lockState{uid: "uid-", sent: sent}},
	} {
		if diff := cmp.Diff(tc.want, stateOf(tc.lease, tc.sent), cmpLockState); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

// testRound returns a round of a LeaderElector that has not run, leading
// in term if it is not nil.
func testRound(t *testing.T, term context.Context) *round {
	t.Helper()
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "default", Name: "e"},
			Client:     fake.NewClientset().CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: "plain-1"},
		},
		LeaseDuration: 10 * time.Second, RenewDeadline: 10 * time.Second / 3, RetryPeriod: 10 * time.Second / 6,
		Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &round{le: le}
	if term != nil {
		r.term.Store(&term)
	}
	return r
}

// view is what a candidate's status says of the lease: the fields of
// elector.Status that plainfollower fills in, but the time of the snapshot.
type view struct {
	IsLeader          bool
	Leader, Node      string
	LockUID           string
	LeaderTransitions int
	ValidUntil        time.Time
}

func viewOf(s elector.Status) view {
	return view{s.IsLeader, s.Leader, s.Node, s.LockUID, s.LeaderTransitions, s.ValidUntil}
}

func TestCandidateStatus(t *testing.T) {
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mine := lockState{uid: "uid-mine", transitions: 4, sent: sent, lease: 10 * time.Second}
	seen := lockState{uid: "uid-seen", transitions: 5, sent: sent.Add(time.Second), lease: 10 * time.Second}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	follower := view{Node: "plain-1", LockUID: "uid-seen", LeaderTransitions: 5}
	for _, tc := range []struct {
		name  string
		round bool
		term  context.Context // of the round; nil: it never led
		want  view
	}{
		{name: "before the first round", want: follower},
		{name: "a candidate that never led", round: true, want: follower},
		{
			// The leader reports the lease it wrote, valid for its
			// duration from the send time of that write.
			name: "leading", round: true, term: context.Background(),
			want: view{IsLeader: true, Node: "plain-1", LockUID: "uid-mine", LeaderTransitions: 4, ValidUntil: sent.Add(10 * time.Second)},
		},
		{name: "its term ended", round: true, term: ended, want: follower},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &candidate{id: "plain-1", seen: seen, mine: mine}
			if tc.round {
				c.round.Store(testRound(t, tc.term))
			}
			before := time.Now()
			got := c.status()
			if got.Timestamp.Before(before) || got.Timestamp.After(time.Now()) {
				t.Errorf("timestamp: got %v, want now", got.Timestamp)
			}
			if diff := cmp.Diff(tc.want, viewOf(got)); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTrackedLeases(t *testing.T) {
	ctx := context.Background()
	c := &candidate{id: "plain-1"}
	leases := trackedGetter{fake.NewClientset().CoordinationV1(), c}.Leases("default")

	// Created naming this candidate: seen and mine, with the send time.
	before := time.Now()
	if _, err := leases.Create(ctx, testLease("plain-1", 0, 10), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if c.mine.sent.Before(before) || c.mine.sent.After(after) {
		t.Errorf("send time of the create: got %v, want between %v and %v", c.mine.sent, before, after)
	}
	want := lockState{uid: "uid-plain-1", transitions: 0, sent: c.mine.sent, lease: 10 * time.Second}
	if diff := cmp.Diff(want, c.mine, cmpLockState); diff != "" {
		t.Errorf("mine after the create (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, c.seen, cmpLockState); diff != "" {
		t.Errorf("seen after the create (-want +got):\n%s", diff)
	}

	// A failed request changes nothing.
	if _, err := leases.Get(ctx, "missing", metav1.GetOptions{}); err == nil {
		t.Fatal("Get of a lease that does not exist: got no error")
	}
	if diff := cmp.Diff(want, c.seen, cmpLockState); diff != "" {
		t.Errorf("seen after a failed Get (-want +got):\n%s", diff)
	}
	if _, err := leases.Create(ctx, testLease("plain-1", 7, 10), metav1.CreateOptions{}); err == nil {
		t.Fatal("Create of a lease that exists: got no error")
	}
	if diff := cmp.Diff(want, c.mine, cmpLockState); diff != "" {
		t.Errorf("mine after a failed Create (-want +got):\n%s", diff)
	}

	// Updated to name another: seen only.
	other := testLease("plain-2", 1, 15)
	other.UID = "uid-plain-1"
	if _, err := leases.Update(ctx, other, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if c.seen.transitions != 1 || c.seen.lease != 15*time.Second || c.seen.sent.IsZero() {
		t.Errorf("seen after the update: got %+v, want transitions 1, lease 15s, a send time", c.seen)
	}
	if diff := cmp.Diff(want, c.mine, cmpLockState); diff != "" {
		t.Errorf("mine after an update naming another (-want +got):\n%s", diff)
	}

	// Read: seen, without a send time.
	if _, err := leases.Get(ctx, "e", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lockState{uid: "uid-plain-1", transitions: 1, lease: 15 * time.Second}, c.seen, cmpLockState); diff != "" {
		t.Errorf("seen after a Get (-want +got):\n%s", diff)
	}
}

func TestServeHTTP(t *testing.T) {
	c := &candidate{id: "plain-1", seen: lockState{uid: "uid", transitions: 2}}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodPost, "/", http.StatusNotFound},
		{http.MethodGet, "/watch", http.StatusNotFound},
	} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
		if tc.code != http.StatusOK {
			continue
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type: got %q, want application/json", tc.method, tc.path, ct)
		}
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s %s: %v: %s", tc.method, tc.path, err, w.Body)
		}
		want := map[string]any{"is_leader": false, "leader": "", "node": "plain-1", "lock_uid": "uid", "leader_transitions": 2.0}
		for k := range got {
			if _, ok := want[k]; !ok {
				delete(got, k) // the timestamp, and what plainfollower does not fill in
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %s: body (-want +got):\n%s", tc.method, tc.path, diff)
		}
	}
}
