package elector

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-elector/elector/electortest"
)

// TestReportJoinsTheStatus: a report shows in Status and in GET /, after
// the Status's own fields; nil removes it; the Status's own keys are
// refused.
func TestReportJoinsTheStatus(t *testing.T) {
	e, err := New(testElection, WithClient(fake.NewClientset()), WithID("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Report("work", map[string]any{"state": "running", "pid": 42}); err != nil {
		t.Fatal(err)
	}
	s := e.Status()
	if got := string(s.Reports["work"]); got != `{"pid":42,"state":"running"}` {
		t.Fatalf("Status().Reports[work] = %s", got)
	}
	body, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(body), `,"work":{"pid":42,"state":"running"}}`) {
		t.Errorf("JSON = %s, want the report as a last field", body)
	}
	var decoded map[string]any
	if err := json.Unmarshal(body, &decoded); err != nil || decoded["node"] != "a" {
		t.Errorf("JSON %s does not decode with its own fields: %v", body, err)
	}
	if err := e.Report("work", nil); err != nil {
		t.Fatal(err)
	}
	if r := e.Status().Reports; r != nil {
		t.Errorf("after Report(work, nil): Reports = %v, want nil", r)
	}
	for _, key := range []string{"", "is_leader", "candidate"} {
		if err := e.Report(key, 1); err == nil {
			t.Errorf("Report(%q) = nil, want an error", key)
		}
	}
	if err := e.Report("bad", func() {}); err == nil {
		t.Error("Report of a value JSON cannot encode = nil, want an error")
	}
	var zero Elector
	if err := zero.Report("work", 1); err == nil {
		t.Error("Report on a zero Elector = nil, want an error")
	}
}

// TestBeforeReleaseRunsBetweenTheTermAndTheRelease: the hook sees
// not-leader while the lock still names this candidate, and it runs on
// Resign and on cancellation alike.
func TestBeforeReleaseRunsBetweenTheTermAndTheRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		type call struct {
			status Status
			holder string
		}
		calls := make(chan call, 4)
		hook := WithBeforeRelease(func(ctx context.Context, s Status) error {
			calls <- call{s, lockHolder(t, c.Client(), LockLeases).HolderIdentity}
			return nil
		})
		a := start(t, c, "a", LockLeases, hook)
		waitLeader(t, testTTL, a)
		if err := a.e.ResignFor(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		got := <-calls
		if got.status.IsLeader || got.holder != "a" {
			t.Errorf("on Resign, the hook saw is_leader=%v with the lock held by %q, want false and held by a", got.status.IsLeader, got.holder)
		}
		waitLeader(t, testTTL, a)
		a.stop(t)
		if got := <-calls; got.status.IsLeader || got.holder != "a" {
			t.Errorf("on cancel, the hook saw is_leader=%v with the lock held by %q, want false and held by a", got.status.IsLeader, got.holder)
		}
		if h := lockHolder(t, c.Client(), LockLeases).HolderIdentity; h != "" {
			t.Errorf("after Run returned, the lock names %q, want it released", h)
		}
	})
}

// TestStopGraceEndsTheTermEarly: a leader whose renewals fail ends its term
// the stop grace and the drift margin before ValidUntil, and its
// started-leading context ends then. The renew deadline is long, so that
// it is not what ends the term.
func TestStopGraceEndsTheTermEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		grace := 2 * time.Second
		ended := make(chan time.Time, 1)
		a := startWork(t, c, "a", LockLeases, func(ctx context.Context) {
			<-ctx.Done()
			ended <- time.Now()
		}, WithStopGrace(grace), WithRenewDeadline(5*time.Second))
		waitLeader(t, testTTL, a)
		c.Partition(a.client)
		until := a.e.Status().ValidUntil
		var at time.Time
		select {
		case at = <-ended:
		case <-time.After(testTTL):
			t.Fatal("the term did not end")
		}
		if want := until.Add(-grace - driftMargin(testTTL)); at.After(want) {
			t.Errorf("the term ended at ValidUntil-%s, want by ValidUntil-%s", until.Sub(at), until.Sub(want))
		}
		c.Heal(a.client)
	})
}
