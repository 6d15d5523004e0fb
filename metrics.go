package elector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one Elector's Prometheus metrics, in a registry of its own: the
// library registers nothing globally. Every series carries the election and
// identity as constant labels, so the registries of several Electors can be
// gathered together.
type metrics struct {
	registry    *prometheus.Registry
	transitions prometheus.Counter
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec

	// With a candidacy gate only.
	gateChecks *prometheus.CounterVec
}

// newMetrics returns the metrics of candidate id in election (namespace/name),
// whose gauges read vs; with
// gated, those of the candidacy gate.
func newMetrics(election, id string, vs *views, gated bool) *metrics {
	labels := prometheus.Labels{"election": election, "identity": id}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "k8s_elector_leadership_transitions_total", ConstLabels: labels,
			Help: "Terms of leadership this candidate has started.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "k8s_elector_lock_requests_total", ConstLabels: labels,
			Help: "Requests on the lock object, by operation (get, acquire, renew, release) and result (success, conflict, error; cached for reads the watch served without a request).",
		}, []string{"operation", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "k8s_elector_lock_request_duration_seconds", ConstLabels: labels,
			Help:    "Latency of requests on the lock object, by operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
	}
	m.registry.MustRegister(m.transitions, m.requests, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "k8s_elector_is_leader", ConstLabels: labels,
			Help: "1 while this candidate leads (holds the lock within its valid-until time), else 0.",
		}, func() float64 {
			if vs.load().leadingAt(time.Now()) {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "k8s_elector_last_renew_timestamp_seconds", ConstLabels: labels,
			Help: "Unix time from which this candidate's lease counts: the send time of its first renewal that changed the lock record as followers compare it (whole seconds); 0 while following.",
		}, func() float64 {
			v := vs.load()
			if !v.leading {
				return 0
			}
			return float64(v.renewed.UnixNano()) / 1e9
		}),
	)
	if gated {
		m.gateChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "k8s_elector_candidacy_checks_total", ConstLabels: labels,
			Help: "Checks of the application's readiness, on which candidacy depends, by result (ready, not_ready).",
		}, []string{"result"})
		m.registry.MustRegister(m.gateChecks, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "k8s_elector_candidate", ConstLabels: labels,
			Help: "1 while this candidate campaigns (its application is ready), else 0.",
		}, func() float64 {
			if vs.load().candidate == campaigning {
				return 1
			}
			return 0
		}))
	}
	return m
}

// cachedRead counts a read of the lock served by the watch (WithWatch).
func (m *metrics) cachedRead() {
	if m != nil {
		m.requests.WithLabelValues("get", "cached").Inc()
	}
}

// observe records one lock request.
func (m *metrics) observe(operation, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(operation, result).Inc()
	m.latency.WithLabelValues(operation).Observe(took.Seconds())
}
