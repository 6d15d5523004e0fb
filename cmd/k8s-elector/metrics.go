package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/tools/leaderelection"
)

// processMetrics returns the binary's own metrics: the Go runtime, the process,
// and client-go's leader-election metrics under the names Kubernetes components
// use. client-go keeps its metrics provider in a package variable, which is why
// the binary sets it, once, and the library does not.
var processMetrics = sync.OnceValue(func() prometheus.Gatherer {
	r := prometheus.NewRegistry()
	le := &clientGoLeaderMetrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leader_election_master_status",
			Help: "client-go's view: 1 while this process is the leader of the named lease, else 0.",
		}, []string{"name"}),
		slowpath: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leader_election_slowpath_total",
			Help: "client-go's count of renewals that took the slow path (a full update instead of a cached one).",
		}, []string{"name"}),
	}
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		le.status, le.slowpath,
	)
	leaderelection.SetProvider(le)
	return r
})

type clientGoLeaderMetrics struct {
	status   *prometheus.GaugeVec
	slowpath *prometheus.CounterVec
}

func (m *clientGoLeaderMetrics) NewLeaderMetric() leaderelection.LeaderMetric { return m }
func (m *clientGoLeaderMetrics) On(name string)                               { m.status.WithLabelValues(name).Set(1) }
func (m *clientGoLeaderMetrics) Off(name string)                              { m.status.WithLabelValues(name).Set(0) }
func (m *clientGoLeaderMetrics) SlowpathExercised(name string) {
	m.slowpath.WithLabelValues(name).Inc()
}
