package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func TestRunRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		lockType string
		ttl      time.Duration
		want     string
	}{
		{"secrets", 10 * time.Second, `-lock-type "secrets": want configmaps, endpoints, configmapsleases, endpointsleases or leases`},
		{"", 10 * time.Second, `-lock-type "": want configmaps, endpoints, configmapsleases, endpointsleases or leases`},
		{"configmaps", time.Second, "-ttl 1s: want whole seconds, at least 2s"},
		{"endpoints", 2500 * time.Millisecond, "-ttl 2.5s: want whole seconds, at least 2s"},
	} {
		err := run("/nonexistent/kubeconfig", "default", "e", "old-1", "127.0.0.1:0", tc.lockType, tc.ttl)
		if err == nil || err.Error() != tc.want {
			t.Errorf("run(-lock-type=%q, -ttl=%s): got %v, want %q", tc.lockType, tc.ttl, err, tc.want)
		}
	}
}

func TestAnnotated(t *testing.T) {
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	meta := func(ann string) metav1.ObjectMeta {
		m := metav1.ObjectMeta{UID: "uid-1"}
		if ann != "" {
			m.Annotations = map[string]string{resourcelock.LeaderElectionRecordAnnotationKey: ann}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		ann  string
		want lockState
	}{
		{"a record", `{"holderIdentity":"a","leaseDurationSeconds":6,"leaderTransitions":3}`,
			lockState{uid: "uid-1", holder: "a", transitions: 3, sent: sent, lease: 6 * time.Second}},
		{"no annotation", "", lockState{uid: "uid-1", sent: sent}},
		{"an unparseable record", `{"holderIdentity": "half`, lockState{uid: "uid-1", sent: sent}},
	} {
		if got := annotated(meta(tc.ann), sent); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestSawBeginsTerms checks which writes begin a term: the first write
// naming the candidate, and one with a token it did not hold; a renewal
// keeps the term's start.
func TestSawBeginsTerms(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &candidate{id: "old-1", kind: "configmaps"}
	write := func(holder string, transitions int, at time.Duration) lockState {
		return lockState{uid: "uid-1", holder: holder, transitions: transitions, sent: t0.Add(at), lease: 6 * time.Second}
	}
	steps := []struct {
		name         string
		kind         string
		s            lockState
		wantAcquired time.Duration // of mine, from t0
		wantSeen     int           // transitions of seen
	}{
		{"acquired", "configmaps", write("old-1", 1, 0), 0, 1},
		{"renewed", "configmaps", write("old-1", 1, time.Second), 0, 1},
		{"the lease of a migration lock", "leases", write("old-1", 7, 2*time.Second), 0, 1},
		{"released", "configmaps", write("", 1, 3*time.Second), 0, 1},
		{"read another holder", "configmaps", lockState{uid: "uid-1", holder: "other", transitions: 2}, 0, 2},
		{"acquired again", "configmaps", write("old-1", 3, 4*time.Second), 4 * time.Second, 3},
		{"renewed again", "configmaps", write("old-1", 3, 5*time.Second), 4 * time.Second, 3},
	}
	for _, st := range steps {
		c.saw(st.kind, st.s)
		if got := c.mine.acquired.Sub(t0); got != st.wantAcquired {
			t.Errorf("%s: the term began at t0+%s, want t0+%s", st.name, got, st.wantAcquired)
		}
		if c.seen.transitions != st.wantSeen {
			t.Errorf("%s: seen has transitions %d, want %d", st.name, c.seen.transitions, st.wantSeen)
		}
	}
}

// TestTrackedClients writes and reads each lock type through the tracked
// clients, as client-go's LeaderElector does, and checks what the
// candidate saw: the object that holds the election's record.
func TestTrackedClients(t *testing.T) {
	for lockType, kind := range recordKind {
		t.Run(lockType, func(t *testing.T) {
			ctx := context.Background()
			client := fake.NewSimpleClientset()
			c := &candidate{id: "old-1", kind: kind}
			lock, err := resourcelock.New(lockType, "default", "e",
				trackedCore{client.CoreV1(), c}, trackedCoordination{client.CoordinationV1(), c},
				resourcelock.ResourceLockConfig{Identity: "old-1"})
			if err != nil {
				t.Fatal(err)
			}
			now := metav1.Now()
			rec := resourcelock.LeaderElectionRecord{HolderIdentity: "old-1", LeaseDurationSeconds: 6, AcquireTime: now, RenewTime: now}
			before := time.Now()
			if err := lock.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if c.mine.holder != "old-1" || c.mine.lease != 6*time.Second || c.mine.sent.Before(before) || c.mine.acquired != c.mine.sent {
				t.Errorf("after the create, mine is %+v, want the write naming old-1 that began the term", c.mine)
			}
			if _, _, err := lock.Get(ctx); err != nil {
				t.Fatal(err)
			}
			rec.LeaderTransitions = 1
			rec.HolderIdentity = "other"
			if err := lock.Update(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if c.seen.holder != "other" || c.seen.transitions != 1 || c.mine.holder != "old-1" {
				t.Errorf("after the update naming other, seen %+v and mine %+v; want seen naming other, mine naming old-1", c.seen, c.mine)
			}
		})
	}
}

func TestServeHTTP(t *testing.T) {
	client := fake.NewSimpleClientset()
	lock, err := resourcelock.New("configmaps", "default", "e", client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: "old-1"})
	if err != nil {
		t.Fatal(err)
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: 6 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: time.Second,
		Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	c := &candidate{id: "old-1", kind: "configmaps"}
	c.saw("configmaps", lockState{uid: "uid-1", holder: "old-1", transitions: 2, sent: sent, lease: 6 * time.Second})
	r := &round{le: le}
	term, cancel := context.WithCancel(context.Background())
	r.term.Store(&term)
	c.round.Store(r)

	// The fields the suite's recorder reads, decoded as it decodes them.
	type got struct {
		IsLeader          bool      `json:"is_leader"`
		Node              string    `json:"node"`
		LockUID           string    `json:"lock_uid"`
		LeaderTransitions int       `json:"leader_transitions"`
		AcquireTime       time.Time `json:"acquire_time"`
		ValidUntil        time.Time `json:"valid_until"`
	}
	get := func() got {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /: %d", rec.Code)
		}
		var g got
		if err := json.Unmarshal(rec.Body.Bytes(), &g); err != nil {
			t.Fatalf("GET /: %v: %s", err, rec.Body)
		}
		return g
	}
	ms := sent.Truncate(time.Millisecond)
	want := got{IsLeader: true, Node: "old-1", LockUID: "uid-1", LeaderTransitions: 2, AcquireTime: ms, ValidUntil: ms.Add(6 * time.Second)}
	if g := get(); g != want {
		t.Errorf("leading: got %+v, want %+v", g, want)
	}
	cancel()
	want = got{Node: "old-1", LockUID: "uid-1", LeaderTransitions: 2}
	if g := get(); g != want {
		t.Errorf("after the term: got %+v, want %+v", g, want)
	}

	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/watch", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /watch: %d, want 404", rec.Code)
	}
}
