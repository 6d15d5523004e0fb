package elector

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metricFamilies are the Prometheus metrics of one candidate in one or more
// elections (a Group's), in a registry of their own: the library registers
// nothing globally. Every series carries the election (namespace/name) as a
// label and the identity as a constant label, so that the registries of
// several Electors can be gathered together; but for the latency histogram
// of a Group, which has one per operation for all its elections: a
// histogram per election and operation would cost a Group of a thousand
// elections several megabytes.
type metricFamilies struct {
	registry    *prometheus.Registry
	transitions *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	perElection bool // the latency histogram has the election label
	gateChecks  *prometheus.CounterVec
	gauges      *viewGauges
}

// metrics are one election's series of its families.
type metrics struct {
	registry    *prometheus.Registry
	transitions prometheus.Counter
	requests    *prometheus.CounterVec
	latency     prometheus.ObserverVec

	// With a candidacy gate only.
	gateChecks *prometheus.CounterVec
}

// newMetricFamilies returns the metric families of candidate id, with a
// latency histogram per election if perElection.
func newMetricFamilies(id string, perElection bool) *metricFamilies {
	labels := prometheus.Labels{"identity": id}
	latencyLabels := []string{"operation"}
	if perElection {
		latencyLabels = []string{"election", "operation"}
	}
	f := &metricFamilies{
		perElection: perElection,
		registry:    prometheus.NewRegistry(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "k8s_elector_leadership_transitions_total", ConstLabels: labels,
			Help: "Terms of leadership this candidate has started.",
		}, []string{"election"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "k8s_elector_lock_requests_total", ConstLabels: labels,
			Help: "Requests on the lock object, by operation (get, acquire, renew, release) and result (success, conflict, error; cached for reads the watch served without a request).",
		}, []string{"election", "operation", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "k8s_elector_lock_request_duration_seconds", ConstLabels: labels,
			Help:    "Latency of requests on the lock object, by operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, latencyLabels),
		gateChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "k8s_elector_candidacy_checks_total", ConstLabels: labels,
			Help: "Checks of the application's readiness, on which candidacy depends, by result (ready, not_ready).",
		}, []string{"election", "result"}),
		gauges: newViewGauges(labels),
	}
	f.registry.MustRegister(f.transitions, f.requests, f.latency, f.gateChecks, f.gauges)
	return f
}

// newMetrics returns the metrics of candidate id in a single election
// (namespace/name), whose gauges read vs; with gated, those of the
// candidacy gate.
func newMetrics(election, id string, vs *views, gated bool) *metrics {
	return newMetricFamilies(id, true).add(election, vs, gated)
}

// add returns the series of election, whose gauges read vs.
func (f *metricFamilies) add(election string, vs *views, gated bool) *metrics {
	l := prometheus.Labels{"election": election}
	m := &metrics{
		registry:    f.registry,
		transitions: f.transitions.With(l),
		requests:    f.requests.MustCurryWith(l),
		latency:     f.latency,
	}
	if f.perElection {
		m.latency = f.latency.MustCurryWith(l)
	}
	if gated {
		m.gateChecks = f.gateChecks.MustCurryWith(l)
	}
	f.gauges.add(election, vs, gated)
	return m
}

// remove deletes the series of election.
func (f *metricFamilies) remove(election string) {
	l := prometheus.Labels{"election": election}
	f.transitions.DeletePartialMatch(l)
	f.requests.DeletePartialMatch(l)
	if f.perElection {
		f.latency.DeletePartialMatch(l)
	}
	f.gateChecks.DeletePartialMatch(l)
	f.gauges.remove(election)
}

// viewGauges collects the gauges that read each election's views when
// scraped.
type viewGauges struct {
	isLeader, lastRenew, candidate *prometheus.Desc

	mu    sync.Mutex
	views map[string]gaugeSource // by election
}

type gaugeSource struct {
	vs    *views
	gated bool
}

func newViewGauges(labels prometheus.Labels) *viewGauges {
	return &viewGauges{
		isLeader: prometheus.NewDesc("k8s_elector_is_leader",
			"1 while this candidate leads (holds the lock within its valid-until time), else 0.", []string{"election"}, labels),
		lastRenew: prometheus.NewDesc("k8s_elector_last_renew_timestamp_seconds",
			"Unix time from which this candidate's lease counts: the send time of its first renewal that changed the lock record as followers compare it (whole seconds); 0 while following.",
			[]string{"election"}, labels),
		candidate: prometheus.NewDesc("k8s_elector_candidate",
			"1 while this candidate campaigns (its application is ready), else 0.", []string{"election"}, labels),
		views: map[string]gaugeSource{},
	}
}

func (g *viewGauges) add(election string, vs *views, gated bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.views[election] = gaugeSource{vs: vs, gated: gated}
}

func (g *viewGauges) remove(election string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.views, election)
}

// Describe implements prometheus.Collector.
func (g *viewGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.isLeader
	ch <- g.lastRenew
	ch <- g.candidate
}

// Collect implements prometheus.Collector.
func (g *viewGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for election, src := range g.views {
		v := src.vs.load()
		leading, renewed, ready := 0.0, 0.0, 0.0
		if v.leadingAt(now) {
			leading = 1
		}
		if v.leading {
			renewed = float64(v.renewed.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(g.isLeader, prometheus.GaugeValue, leading, election)
		ch <- prometheus.MustNewConstMetric(g.lastRenew, prometheus.GaugeValue, renewed, election)
		if src.gated {
			if v.candidate == campaigning {
				ready = 1
			}
			ch <- prometheus.MustNewConstMetric(g.candidate, prometheus.GaugeValue, ready, election)
		}
	}
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
