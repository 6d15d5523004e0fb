package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLogSummary(t *testing.T) {
	s := newLogSummary()
	logger := s.logger().WithName("elector").WithValues("election", "scale-watch-042")
	for range 3 {
		logger.Info("became leader", "transitions", 1)
	}
	for range 2 {
		logger.V(1).Info("retrying", "err", errors.New("get lease ns/scale-poll-7: timeout"))
	}
	logger.Error(errors.New("update lease ns/scale-watch-001: conflict"), "renew failed")
	logger.Error(errors.New("update lease ns/scale-clientgo-0999: conflict"), "renew failed")
	logger.WithValues("err", "from WithValues").WithValues("holder", "b").V(1).Info("blocked")
	logger.V(2).Info("renewed") // above V(1): not counted
	want := map[string]int{
		`V(0) "became leader"`:                                          3,
		`V(1) "retrying" err=get lease ns/<election>: timeout`:          2,
		`V(-1) "renew failed" err=update lease ns/<election>: conflict`: 2,
		`V(1) "blocked" err=from WithValues`:                            1,
	}
	if diff := cmp.Diff(want, s.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	// Errors, and lines with an err value: all but "became leader" (and the
	// V(2) line, not counted at all).
	if got := s.failures.Load(); got != 5 {
		t.Errorf("failures: got %d, want 5", got)
	}
}

func TestLogSummaryString(t *testing.T) {
	s := newLogSummary()
	s.counts = map[string]int{`V(1) "b"`: 2, `V(0) "a"`: 12, `V(-1) "c" err=x`: 1}
	want := "log     12× V(0) \"a\"\n" +
		"log      2× V(1) \"b\"\n" +
		"log      1× V(-1) \"c\" err=x\n"
	if got := s.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLockRequests(t *testing.T) {
	const first = `# HELP k8s_elector_lock_requests_total Requests to the lock.
# TYPE k8s_elector_lock_requests_total counter
k8s_elector_lock_requests_total{operation="get",result="success"} 3
k8s_elector_lock_requests_total{operation="update",result="success"} 10
k8s_elector_lock_requests_total{operation="update",result="conflict"} 1
k8s_elector_lock_requests_total{result="error",operation="create"} 2
k8s_elector_lock_requests_total{operation="get",result="success"} NaN-ish
k8s_elector_lock_requests_total_other{operation="get",result="success"} 100
k8s_elector_lock_duration_seconds_count{operation="get"} 3
`
	const second = "  k8s_elector_lock_requests_total{operation=\"get\",result=\"success\"} 4  \n" +
		"k8s_elector_lock_requests_total{operation=\"update\",result=\"success\"} 1e1\n"
	sum := map[string]float64{}
	addLockRequests(sum, first)
	addLockRequests(sum, second)
	want := map[string]float64{"get/success": 7, "update/success": 20, "update/conflict": 1, "create/error": 2}
	if diff := cmp.Diff(want, sum); diff != "" {
		t.Errorf("sum (-want +got):\n%s", diff)
	}
	if got, want := formatLockRequests(sum), "create/error=2 get/success=7 update/conflict=1 update/success=20"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := formatLockRequests(map[string]float64{}); got != "" {
		t.Errorf("none: got %q, want \"\"", got)
	}
}
