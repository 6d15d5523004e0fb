package elector

import (
	"slices"
	"sync"
	"sync/atomic"
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
//
// An election's counters and gauges are not Prometheus metric objects but
// plain counters and its views, which the families' collector reads when
// scraped: a child of a metric vector per election and label set costs a
// Group of a thousand elections megabytes of heap.
type metricFamilies struct {
	registry    *prometheus.Registry
	latency     *prometheus.HistogramVec
	perElection bool // the latency histogram has the election label
	elections   *electionCollector
}

// metrics are one election's series of its families.
type metrics struct {
	registry *prometheus.Registry
	counts   *electionCounts
	latency  prometheus.ObserverVec
}

// The label values of k8s_elector_lock_requests_total, and of
// k8s_elector_candidacy_checks_total, in the order of electionCounts.
var (
	requestOps     = [...]string{"get", "acquire", "renew", "release"}
	requestResults = [...]string{"success", "conflict", "error", "cached"}
	gateResults    = [...]string{"ready", "not_ready"}
)

// electionCounts are one election's counters.
type electionCounts struct {
	transitions atomic.Uint64
	requests    [len(requestOps)][len(requestResults)]atomic.Uint64
	gateChecks  [len(gateResults)]atomic.Uint64
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
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "k8s_elector_lock_request_duration_seconds", ConstLabels: labels,
			Help:    "Latency of requests on the lock object, by operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, latencyLabels),
		elections: newElectionCollector(labels),
	}
	f.registry.MustRegister(f.latency, f.elections)
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
	m := &metrics{registry: f.registry, counts: &electionCounts{}, latency: f.latency}
	if f.perElection {
		m.latency = f.latency.MustCurryWith(prometheus.Labels{"election": election})
	}
	f.elections.add(election, electionSource{vs: vs, gated: gated, counts: m.counts})
	return m
}

// remove deletes the series of election.
func (f *metricFamilies) remove(election string) {
	if f.perElection {
		f.latency.DeletePartialMatch(prometheus.Labels{"election": election})
	}
	f.elections.remove(election)
}

// electionCollector collects every election's counters, and the gauges
// that read its views, when scraped.
type electionCollector struct {
	isLeader, lastRenew, candidate, transitions, requests, gateChecks *prometheus.Desc

	mu        sync.Mutex
	elections map[string]electionSource // by election
}

// electionSource is what the series of one election are read from.
type electionSource struct {
	vs     *views
	gated  bool
	counts *electionCounts
}

func newElectionCollector(labels prometheus.Labels) *electionCollector {
	election := []string{"election"}
	return &electionCollector{
		isLeader: prometheus.NewDesc("k8s_elector_is_leader",
			"1 while this candidate leads (holds the lock within its valid-until time), else 0.", election, labels),
		lastRenew: prometheus.NewDesc("k8s_elector_last_renew_timestamp_seconds",
			"Unix time from which this candidate's lease counts: the send time of its first renewal that changed the lock record as followers compare it (whole seconds); 0 while following.",
			election, labels),
		candidate: prometheus.NewDesc("k8s_elector_candidate",
			"1 while this candidate campaigns (its application is ready), else 0.", election, labels),
		transitions: prometheus.NewDesc("k8s_elector_leadership_transitions_total",
			"Terms of leadership this candidate has started.", election, labels),
		requests: prometheus.NewDesc("k8s_elector_lock_requests_total",
			"Requests on the lock object, by operation (get, acquire, renew, release) and result (success, conflict, error; cached for reads the watch served without a request).",
			[]string{"election", "operation", "result"}, labels),
		gateChecks: prometheus.NewDesc("k8s_elector_candidacy_checks_total",
			"Checks of the application's readiness, on which candidacy depends, by result (ready, not_ready).",
			[]string{"election", "result"}, labels),
		elections: map[string]electionSource{},
	}
}

func (c *electionCollector) add(election string, src electionSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.elections[election] = src
}

func (c *electionCollector) remove(election string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.elections, election)
}

// Describe implements prometheus.Collector.
func (c *electionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.isLeader, c.lastRenew, c.candidate, c.transitions, c.requests, c.gateChecks} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A counter of requests or checks
// appears once it counts one, as a metric vector's child would.
func (c *electionCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, n *atomic.Uint64, always bool, labels ...string) {
		if v := n.Load(); v > 0 || always {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
		}
	}
	for election, src := range c.elections {
		v := src.vs.load()
		leading, renewed := 0.0, 0.0
		if v.leadingAt(now) {
			leading = 1
		}
		if v.leading {
			renewed = float64(v.renewed.UnixNano()) / 1e9
		}
		gauge(c.isLeader, leading, election)
		gauge(c.lastRenew, renewed, election)
		if src.gated {
			ready := 0.0
			if v.candidate == campaigning {
				ready = 1
			}
			gauge(c.candidate, ready, election)
		}
		counter(c.transitions, &src.counts.transitions, true, election)
		for i, op := range requestOps {
			for j, result := range requestResults {
				counter(c.requests, &src.counts.requests[i][j], false, election, op, result)
			}
		}
		for i, result := range gateResults {
			counter(c.gateChecks, &src.counts.gateChecks[i], false, election, result)
		}
	}
}

// started counts a term that started.
func (m *metrics) started() { m.counts.transitions.Add(1) }

// gateChecked counts a check of the application's readiness.
func (m *metrics) gateChecked(ready bool) {
	if ready {
		m.counts.gateChecks[0].Add(1)
	} else {
		m.counts.gateChecks[1].Add(1)
	}
}

// cachedRead counts a read of the lock served by the watch (WithWatch).
func (m *metrics) cachedRead() {
	if m != nil {
		m.count("get", "cached")
	}
}

// observe records one lock request.
func (m *metrics) observe(operation, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.count(operation, result)
	m.latency.WithLabelValues(operation).Observe(took.Seconds())
}

// count counts a request: operation is one of requestOps, result one of
// requestResults.
func (m *metrics) count(operation, result string) {
	if i, j := slices.Index(requestOps[:], operation), slices.Index(requestResults[:], result); i >= 0 && j >= 0 {
		m.counts.requests[i][j].Add(1)
	}
}
