package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func lease(holder string, renew time.Time) *coordinationv1.Lease {
	l := &coordinationv1.Lease{}
	if holder != "" {
		l.Spec.HolderIdentity = &holder
	}
	if !renew.IsZero() {
		l.Spec.RenewTime = &metav1.MicroTime{Time: renew}
	}
	return l
}

func newTestLeaseWatch() *leaseWatch {
	return &leaseWatch{name: "election", changed: make(chan struct{}), done: make(chan struct{})}
}

func TestLeaseWatchAdd(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := newTestLeaseWatch()
	for _, step := range []struct {
		lease  *coordinationv1.Lease
		added  bool
		holder string
	}{
		{lease("a", t0), true, "a"},
		{lease("a", t0), false, ""},                  // the same state again: a list after a watch
		{lease("a", t0.Add(time.Second)), true, "a"}, // a renewal
		{lease("b", t0.Add(time.Second)), true, "b"}, // another holder, same time
		{lease("", t0.Add(2*time.Second)), true, ""}, // released
		{nil, true, ""},                              // deleted: no renew time
		{nil, false, ""},                             // deleted again
		{lease("", time.Time{}), false, ""},          // the same as deleted
		{lease("b", t0.Add(time.Second)), true, "b"}, // b again, after others
	} {
		n, changed := len(w.seen), w.changed
		w.add(step.lease)
		want := 0
		if step.added {
			want = 1
		}
		if got := len(w.seen) - n; got != want {
			t.Fatalf("after %d states, adding %+v: got %d new states, want %d", n, step.lease, got, want)
		}
		select {
		case <-changed:
			if !step.added {
				t.Errorf("after %d states: changed was closed, but nothing was added", n)
			}
		default:
			if step.added {
				t.Errorf("after %d states: changed was not closed, but a state was added", n)
			}
		}
		if step.added {
			if s := w.seen[len(w.seen)-1]; s.holder != step.holder {
				t.Errorf("state %d: got holder %q, want %q", n, s.holder, step.holder)
			}
		}
	}
}

func TestLeaseWatchNext(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := newTestLeaseWatch()
	w.add(lease("a", t0))
	w.add(lease("b", t0))
	w.add(lease("a", t0.Add(time.Second)))
	w.add(lease("b", t0.Add(time.Second)))
	// They arrived a millisecond apart, an hour ago.
	base := time.Now().Add(-time.Hour)
	for i := range w.seen {
		w.seen[i].at = base.Add(time.Duration(i) * time.Millisecond)
	}
	since := w.seen[2].at

	// The first a at or after since: the third state, which arrived then.
	s, err := w.next(ctx, since, time.Second, "a", func(s leaseState) bool { return s.holder == "a" })
	if err != nil || !s.renew.Equal(t0.Add(time.Second)) {
		t.Errorf("next a since the third state: got %v, %v, want the renewal at %v", s.renew, err, t0.Add(time.Second))
	}
	isB := func(s leaseState) bool { return s.holder == "b" }
	// The first b at or after since: the fourth state.
	s, err = w.next(ctx, since, time.Second, "b", isB)
	if err != nil || !s.renew.Equal(t0.Add(time.Second)) {
		t.Errorf("next b since the third state: got %v, %v, want the renewal at %v", s.renew, err, t0.Add(time.Second))
	}
	s, err = w.next(ctx, time.Time{}, time.Second, "b", isB)
	if err != nil || !s.renew.Equal(t0) {
		t.Errorf("next b since ever: got %v, %v, want the renewal at %v", s.renew, err, t0)
	}

	// A state that arrives later wakes it up.
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.add(lease("c", t0.Add(2*time.Second)))
	}()
	s, err = w.next(ctx, since, 10*time.Second, "c", func(s leaseState) bool { return s.holder == "c" })
	if err != nil || s.holder != "c" {
		t.Errorf("next c: got %q, %v, want c", s.holder, err)
	}

	_, err = w.next(ctx, since, 30*time.Millisecond, "a holder d", func(s leaseState) bool { return s.holder == "d" })
	if want := "lease election: a holder d: not within 30ms; last states seen:\n"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("next d: got %v, want an error that starts %q", err, want)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.next(cctx, since, time.Minute, "d", func(s leaseState) bool { return s.holder == "d" }); !errors.Is(err, context.Canceled) {
		t.Errorf("next d, cancelled: got %v, want %v", err, context.Canceled)
	}
}

func TestLeaseWatchDescribe(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	w := newTestLeaseWatch()
	for i, h := range []string{"a", "b", "c"} {
		w.add(lease(h, t0.Add(time.Duration(i)*time.Second)))
	}
	var want strings.Builder
	for i, h := range []string{"b", "c"} {
		at := w.seen[i+1].at.Format(time.StampMilli)
		fmt.Fprintf(&want, "  at %s: holder=%q renewTime=Jan  2 03:04:0%d.000006\n", at, h, 6+i)
	}
	if got := w.describe(2); got != want.String() {
		t.Errorf("describe(2): got\n%s\nwant\n%s", got, want.String())
	}
	if got, want := strings.Count(w.describe(10), "\n"), 3; got != want {
		t.Errorf("describe(10): got %d lines, want %d", got, want)
	}
}
