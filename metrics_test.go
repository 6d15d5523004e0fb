package elector

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-elector/elector/electortest"
)

func TestMetricsFollowTheElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a, b := start(t, c, "a", LockLeases), start(t, c, "b", LockLeases)
		leader, _ := waitLeader(t, testTTL, a, b)
		follower := a
		if leader == a {
			follower = b
		}
		time.Sleep(2 * maxRetryWait) // a renewal and a follower's read
		synctest.Wait()

		gauge := func(cand *candidate) float64 {
			t.Helper()
			families, err := cand.e.Metrics().Gather()
			if err != nil {
				t.Fatalf("Gather: %v", err)
			}
			for _, f := range families {
				if f.GetName() == "k8s_elector_is_leader" {
					return f.GetMetric()[0].GetGauge().GetValue()
				}
			}
			t.Fatalf("%s: no k8s_elector_is_leader", cand.id)
			return 0
		}
		if got := gauge(leader); got != 1 {
			t.Errorf("leader's is_leader = %v, want 1", got)
		}
		if got := gauge(follower); got != 0 {
			t.Errorf("follower's is_leader = %v, want 0", got)
		}
		if got := metricValue(t, leader.e, "k8s_elector_leadership_transitions_total"); got != 1 {
			t.Errorf("leader's transitions = %v, want 1", got)
		}
		if got := metricValue(t, leader.e, "k8s_elector_lock_requests_total", "operation", "renew", "result", "success"); got < 1 {
			t.Errorf("leader's successful renewals = %v, want at least 1", got)
		}
		if got := metricValue(t, follower.e, "k8s_elector_lock_requests_total", "operation", "get", "result", "success"); got < 1 {
			t.Errorf("follower's successful reads = %v, want at least 1", got)
		}

		// GET /metrics serves the same registry, labelled by election and identity.
		rec := serveGET(leader.e, "/metrics")
		body := rec.Body.String()
		if rec.Code != 200 {
			t.Fatalf("GET /metrics = %d", rec.Code)
		}
		for _, want := range []string{
			`k8s_elector_is_leader{election="default/example",identity="` + leader.id + `"} 1`,
			`k8s_elector_lock_requests_total{election="default/example",identity="` + leader.id + `",operation="renew",result="success"}`,
			`k8s_elector_lock_request_duration_seconds_bucket`,
			`k8s_elector_last_renew_timestamp_seconds`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("GET /metrics lacks %q:\n%s", want, body)
			}
		}

		leader.stop(t)
		synctest.Wait()
		if got := gauge(leader); got != 0 {
			t.Errorf("stopped leader's is_leader = %v, want 0", got)
		}
		if got := metricValue(t, leader.e, "k8s_elector_lock_requests_total", "operation", "release", "result", "success"); got != 1 {
			t.Errorf("stopped leader's releases = %v, want 1", got)
		}
	})
}

// metricValue returns the value of the counter or gauge name of e's
// metrics whose labels include labels (name, value, ...); 0 if it has none.
func metricValue(t *testing.T, e *Elector, name string, labels ...string) float64 {
	t.Helper()
	families, err := e.Metrics().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matches := 0
			for _, l := range m.GetLabel() {
				for i := 0; i+1 < len(labels); i += 2 {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						matches++
					}
				}
			}
			if matches < len(labels)/2 {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestMetricsAreNotRegisteredGlobally(t *testing.T) {
	if _, err := New(testElection, WithClient(electortest.NewCluster().Client()), WithID("a")); err != nil {
		t.Fatal(err)
	}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "k8s_elector_") {
			t.Errorf("the library registered %s in the default registry", f.GetName())
		}
	}
}

// TestMetricsGatherWithOthers: the Elector's metrics gather together with
// a program's own, as Metrics says.
func TestMetricsGatherWithOthers(t *testing.T) {
	extra := prometheus.NewRegistry()
	extra.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "app_extra_total", Help: "x"}))
	e, err := New(testElection, WithClient(electortest.NewCluster().Client()), WithID("a"))
	if err != nil {
		t.Fatal(err)
	}
	families, err := prometheus.Gatherers{e.Metrics(), extra}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{"app_extra_total", "k8s_elector_is_leader"} {
		if !slices.Contains(names, want) {
			t.Errorf("gathered %v, want %s among them", names, want)
		}
	}
}
