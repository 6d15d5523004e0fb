package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var cmpRates = cmp.AllowUnexported(rates{})

func TestRatesTotal(t *testing.T) {
	for _, tc := range []struct {
		r    rates
		want float64
	}{
		{rates{}, 0},
		{rates{verbs: map[string]float64{"GET": 1, "PUT": 2.5}, conflicts: 7}, 3.5}, // conflicts are among the verbs' figures
		{rates{verbs: map[string]float64{"GET": -1, "PUT": 2.5}}, 1.5},
	} {
		if got := tc.r.total(); got != tc.want {
			t.Errorf("total of %v: got %v, want %v", tc.r.verbs, got, tc.want)
		}
	}
}

func TestRatesPlusTimes(t *testing.T) {
	r := rates{verbs: map[string]float64{"GET": 1, "PUT": 2}, conflicts: 1}
	o := rates{verbs: map[string]float64{"PUT": 1, "WATCH": 4}, conflicts: 0.5}
	for _, tc := range []struct {
		name string
		got  rates
		want rates
	}{
		{"r − o", r.plus(-1, o), rates{verbs: map[string]float64{"GET": 1, "PUT": 1, "WATCH": -4}, conflicts: 0.5}},
		{"r + 2·o", r.plus(2, o), rates{verbs: map[string]float64{"GET": 1, "PUT": 4, "WATCH": 8}, conflicts: 2}},
		{"r + 0·o keeps o's verbs at 0", r.plus(0, o), rates{verbs: map[string]float64{"GET": 1, "PUT": 2, "WATCH": 0}, conflicts: 1}},
		{"zero + o", rates{}.plus(1, o), rates{verbs: map[string]float64{"PUT": 1, "WATCH": 4}, conflicts: 0.5}},
		{"½·r", r.times(0.5), rates{verbs: map[string]float64{"GET": 0.5, "PUT": 1}, conflicts: 0.5}},
		{"−1·o", o.times(-1), rates{verbs: map[string]float64{"PUT": -1, "WATCH": -4}, conflicts: -0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got, cmpRates); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The operands are values: neither changes.
	if diff := cmp.Diff(rates{verbs: map[string]float64{"GET": 1, "PUT": 2}, conflicts: 1}, r, cmpRates); diff != "" {
		t.Errorf("r changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rates{verbs: map[string]float64{"PUT": 1, "WATCH": 4}, conflicts: 0.5}, o, cmpRates); diff != "" {
		t.Errorf("o changed (-want +got):\n%s", diff)
	}
}

func TestRatesString(t *testing.T) {
	for _, tc := range []struct {
		r              rates
		rate, asCounts string
	}{
		{rates{}, "0.0/min", "0 requests (409: 0)"},
		{rates{verbs: map[string]float64{"PUT": 2.5, "GET": 1}}, "3.5/min GET 1.0 PUT 2.5", "4 requests GET 1 PUT 2 (409: 0)"},
		{rates{verbs: map[string]float64{"PUT": 3, "GET": 4.4}, conflicts: 1}, "7.4/min GET 4.4 PUT 3.0 (409: 1.0)", "7 requests GET 4 PUT 3 (409: 1)"},
		{rates{verbs: map[string]float64{"GET": -0.25}, conflicts: -2}, "-0.2/min GET -0.2 (409: -2.0)", "-0 requests GET -0 (409: -2)"},
	} {
		if got := tc.r.String(); got != tc.rate {
			t.Errorf("String of %v: got %q, want %q", tc.r.verbs, got, tc.rate)
		}
		if got := tc.r.counts(); got != tc.asCounts {
			t.Errorf("counts of %v: got %q, want %q", tc.r.verbs, got, tc.asCounts)
		}
	}
}

func TestCountedPerMinute(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s0 := scrape{at: t0, counts: map[string]float64{"GET": 10, "PUT": 5, "LIST": 3}, conflicts: 1}
	s1 := scrape{at: t0.Add(30 * time.Second), counts: map[string]float64{"GET": 16, "PUT": 5, "POST": 1}, conflicts: 2}
	// PUT did not change: no entry. LIST is gone from the second scrape: it
	// is not counted.
	want := rates{verbs: map[string]float64{"GET": 6, "POST": 1}, conflicts: 1}
	if diff := cmp.Diff(want, counted(s0, s1), cmpRates); diff != "" {
		t.Errorf("counted (-want +got):\n%s", diff)
	}
	// Half a minute apart: twice the counts.
	want = rates{verbs: map[string]float64{"GET": 12, "POST": 2}, conflicts: 2}
	if diff := cmp.Diff(want, perMinute(s0, s1), cmpRates); diff != "" {
		t.Errorf("perMinute over 30s (-want +got):\n%s", diff)
	}
	s1.at = t0.Add(4 * time.Minute)
	want = rates{verbs: map[string]float64{"GET": 1.5, "POST": 0.25}, conflicts: 0.25}
	if diff := cmp.Diff(want, perMinute(s0, s1), cmpRates); diff != "" {
		t.Errorf("perMinute over 4m (-want +got):\n%s", diff)
	}
}

func TestParseMetrics(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const metrics = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="GET",version="v1"} 120
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 40
apiserver_request_total{code="409",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",resource="leases",scope="namespace",verb="LIST",version="v1"} 1.5e+03
apiserver_request_total{code="409",resource="leases",verb="WATCH",note="a \"quoted\" } brace"} 5
apiserver_request_total{code="200",component="apiserver",resource="configmaps",subresource="",verb="GET"} 999
apiserver_request_total{code="200",component="apiserver",resource="leases",subresource="status",verb="GET"} 7
apiserver_request_total{code="200",resource="leases",verb="GET"} not-a-number
apiserver_request_total_extra{code="200",resource="leases",verb="GET"} 100
apiserver_request_duration_seconds_bucket{resource="leases",verb="GET",le="0.1"} 50
# TYPE apiserver_longrunning_requests gauge
apiserver_longrunning_requests{component="apiserver",group="coordination.k8s.io",resource="leases",scope="namespace",subresource="",verb="WATCH",version="v1"} 3
apiserver_longrunning_requests{component="apiserver",group="coordination.k8s.io",resource="leases",scope="cluster",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{resource="leases",verb="LIST"} 4
apiserver_longrunning_requests{resource="leases",verb="CONNECT"} 2
apiserver_longrunning_requests{resource="pods",verb="WATCH"} 9
apiserver_longrunning_requests 11
`
	for _, tc := range []struct {
		name    string
		text    string
		want    scrape
		wantErr string
	}{
		{
			name: "a kube-apiserver's",
			text: metrics,
			want: scrape{at: at, counts: map[string]float64{"GET": 120, "PUT": 43, "POST": 2, "LIST": 1500, "WATCH": 5},
				conflicts: 8, watches: 4},
		},
		{
			name: "the counter for other resources only",
			text: `apiserver_request_total{code="200",resource="pods",verb="GET"} 4` + "\n",
			want: scrape{at: at, counts: map[string]float64{}},
		},
		{
			name:    "no counter at all",
			text:    "# no metrics\nprocess_cpu_seconds_total 1\n",
			want:    scrape{at: at, counts: map[string]float64{}},
			wantErr: "the API server's /metrics has no apiserver_request_total",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMetrics([]byte(tc.text), at)
			if gotErr := errString(err); gotErr != tc.wantErr {
				t.Errorf("error: got %q, want %q", gotErr, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(scrape{})); diff != "" {
				t.Errorf("scrape (-want +got):\n%s", diff)
			}
		})
	}
}

// errString is err's message, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
