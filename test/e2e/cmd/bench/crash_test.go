package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func TestCrashOf(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	renewal := leaseState{holder: "a", renew: t0.Add(-time.Millisecond), at: t0}
	for _, tc := range []struct {
		name         string
		ttl          time.Duration
		killed, next time.Duration // after the renewal arrived
		want         crashResult
	}{
		{
			// The lease had 9 s left at the kill; the follower took 8.5 s:
			// half a second before the lease ran out as the bench saw it.
			name: "before the lease ran out", ttl: 10 * time.Second, killed: time.Second, next: 9500 * time.Millisecond,
			want: crashResult{killed: t0.Add(time.Second), since: time.Second, took: 8500 * time.Millisecond,
				pastLease: -500 * time.Millisecond, holder: "b", at: t0.Add(9500 * time.Millisecond)},
		},
		{
			name: "after", ttl: 10 * time.Second, killed: 500 * time.Millisecond, next: 10700 * time.Millisecond,
			want: crashResult{killed: t0.Add(500 * time.Millisecond), since: 500 * time.Millisecond, took: 10200 * time.Millisecond,
				pastLease: 700 * time.Millisecond, holder: "b", at: t0.Add(10700 * time.Millisecond)},
		},
		{
			name: "killed at the renewal", ttl: 3 * time.Second, killed: 0, next: 3200 * time.Millisecond,
			want: crashResult{killed: t0, since: 0, took: 3200 * time.Millisecond,
				pastLease: 200 * time.Millisecond, holder: "b", at: t0.Add(3200 * time.Millisecond)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := leaseState{holder: "b", renew: t0.Add(tc.next - time.Millisecond), at: t0.Add(tc.next)}
			got := crashOf(tc.ttl, renewal, t0.Add(tc.killed), next)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(crashResult{})); diff != "" {
				t.Errorf("crashOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCrashResultString(t *testing.T) {
	c := crashResult{since: time.Second, took: 8500 * time.Millisecond, pastLease: -500 * time.Millisecond}
	want := "SIGKILL 1.00 s after a renewal, another holder after 8.50 s (-500 ms after the lease ran out)"
	if got := c.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDescribeRefs(t *testing.T) {
	exited := &refProc{id: "client-go-1", log: &fleet.SyncBuffer{}, done: make(chan struct{})}
	close(exited.done)
	for i := range 25 {
		_, _ = exited.log.Write([]byte{byte('a' + i), '\n'})
	}
	running := &refProc{id: "client-go-2", log: &fleet.SyncBuffer{}, done: make(chan struct{})}
	_, _ = running.log.Write([]byte("not shown\n"))
	got := describeRefs(map[string]*refProc{running.id: running, exited.id: exited})
	// Sorted by ID; the log of one that exited, its last 20 lines.
	want := "\n  client-go-1: exited=true; log:\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\ns\nt\nu\nv\nw\nx\ny" +
		"\n  client-go-2: exited=false"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
