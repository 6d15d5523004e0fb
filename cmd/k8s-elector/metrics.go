package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	elector "github.com/k8s-elector/elector"
)

// binaryMetrics returns the binary's own metrics: the Go runtime, the
// process, and leader_election_master_status under the name and labels that
// Kubernetes components export through client-go, so that their dashboards
// and alerts work on the sidecar as they are. The election loop is not
// client-go's, so the gauge reads the Elector's Status.
func binaryMetrics(election string, e *elector.Elector) prometheus.Gatherer {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "leader_election_master_status",
			Help:        "1 while this process is the leader of the named lease, else 0, as client-go's leader election reports it.",
			ConstLabels: prometheus.Labels{"name": election},
		}, func() float64 {
			if e.Status().IsLeader {
				return 1
			}
			return 0
		}),
	)
	return r
}
