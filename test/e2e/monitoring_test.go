package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// flagOnlyMetrics are the prefixes of metrics the binary exports only with
// some flags: k8s_elector_command_* with a command after --, and
// k8s_elector_candidate* with -ready-url. The check below finds them on an
// elector started with those flags.
var flagOnlyMetrics = []string{"k8s_elector_command_", "k8s_elector_candidate"}

// promqlParser is Prometheus's own PromQL parser, with its default options.
var promqlParser = parser.NewParser(parser.Options{})

// electionVar stands for the dashboard's $election in the expressions the
// test parses.
const electionVar = "__election__"

// ruleSpec returns the spec of the PrometheusRule in deploy/monitoring as
// YAML, which is a Prometheus rule file: {groups: [...]}.
func ruleSpec(t *testing.T) []byte {
	t.Helper()
	var specs [][]byte
	for _, u := range buildManifests(t, "monitoring", "monitoring") {
		if u.GetKind() != "PrometheusRule" {
			continue
		}
		if u.GetAPIVersion() != "monitoring.coreos.com/v1" {
			t.Errorf("PrometheusRule %s has apiVersion %s", u.GetName(), u.GetAPIVersion())
		}
		spec, err := yaml.Marshal(u.Object["spec"])
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	if len(specs) != 1 {
		t.Fatalf("deploy/monitoring builds %d PrometheusRules, want 1", len(specs))
	}
	return specs[0]
}

// parseRules parses a rule file strictly (unknown fields fail) and validates
// it as Prometheus does when it loads rules: names, durations, PromQL and
// the annotations' templates.
func parseRules(t *testing.T, content []byte) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(content, false, model.LegacyValidation, promqlParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rules: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

// metricNames returns the metric names expr selects. A selector without a
// metric name is an error: the check could not tell what it reads.
func metricNames(expr string) ([]string, []*parser.VectorSelector, error) {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	var selectors []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors = append(selectors, vs)
			names = append(names, vs.Name)
		}
		return nil
	})
	for i, n := range names {
		if n == "" {
			return nil, nil, fmt.Errorf("selector %s names no metric", selectors[i])
		}
	}
	return names, selectors, nil
}

// A dashboard, as far as the test reads it.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title      string   `json:"title"`
	Type       string   `json:"type"`
	Datasource *panelDS `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // of a collapsed row
}

type panelDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	Expr       string   `json:"expr"`
	Datasource *panelDS `json:"datasource"`
}

// grafanaVars replaces the dashboard's variables by values PromQL parses.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "1h", "${__range}", "1h",
	"${election}", electionVar, "$election", electionVar,
)

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// dashboardMetrics checks deploy/monitoring/dashboard.json and returns the
// metric names it reads, each with where it is read.
func dashboardMetrics(t *testing.T, content []byte) map[string][]string {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(content)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("the dashboard has no title or uid")
	}
	used := map[string][]string{}
	var hasDS, hasElection bool
	for _, v := range d.Templating.List {
		switch v.Name {
		case "datasource":
			hasDS = v.Type == "datasource"
		case "election":
			hasElection = v.Type == "query"
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("variable election: query: %v", err)
			}
			m := labelValues.FindStringSubmatch(q.Query)
			if m == nil || m[2] != "election" {
				t.Errorf("variable election: query %q is not label_values(<metric>, election)", q.Query)
				continue
			}
			used[m[1]] = append(used[m[1]], "variable election")
		}
	}
	if !hasDS || !hasElection {
		t.Errorf("the dashboard must be templated by a datasource variable and a query variable election")
	}
	var walk func(ps []panel)
	var targets int
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			for _, tg := range p.Targets {
				targets++
				names, selectors, err := metricNames(grafanaVars.Replace(tg.Expr))
				if err != nil {
					t.Errorf("panel %q: %q: %v", p.Title, tg.Expr, err)
					continue
				}
				for i, n := range names {
					used[n] = append(used[n], fmt.Sprintf("panel %q", p.Title))
					// Every election series the dashboard reads is filtered
					// by the election variable; process_* series are
					// joined to them.
					if strings.HasPrefix(n, "k8s_elector_") && !slices.ContainsFunc(selectors[i].LabelMatchers, func(m *labels.Matcher) bool {
						return m.Name == "election" && m.Type == labels.MatchRegexp && m.Value == electionVar
					}) {
						t.Errorf("panel %q: %s is not filtered by election=~\"$election\"", p.Title, selectors[i])
					}
				}
			}
		}
	}
	walk(d.Panels)
	if targets == 0 {
		t.Errorf("the dashboard has no queries")
	}
	return used
}

// exportedMetrics reads GET /metrics of a running elector and returns the
// names of the series it exports: a histogram's _bucket, _sum and _count, a
// summary's _sum and _count besides its own name.
func exportedMetrics(t *testing.T, e *fleet.Elector) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + e.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %s", e.ID, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		switch name := f[2]; f[3] {
		case "histogram":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "summary":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// waitExported polls /metrics until it exports every one of want.
func waitExported(t *testing.T, e *fleet.Elector, limit time.Duration, want ...string) map[string]bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := exportedMetrics(t, e)
		var missing []string
		for _, w := range want {
			if !got[w] {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not export %v within %s", e.ID, missing, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMonitoringRulesAndDashboard parses the PrometheusRule with
// Prometheus's own rule and PromQL parsers and the Grafana dashboard, and
// checks that every metric they read is one the binary exports.
func TestMonitoringRulesAndDashboard(t *testing.T) {
	parallel(t)
	dir := filepath.Join(controlplane.RepoRoot(), "deploy", "monitoring")

	// Where each metric is read: rule or panel.
	used := map[string][]string{}
	groups := parseRules(t, ruleSpec(t))
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule (%s); deploy/monitoring ships alerts", g.Name, r.Record)
				continue
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s has severity %q, want critical or warning", r.Alert, s)
			}
			names, _, err := metricNames(r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
			for _, n := range names {
				used[n] = append(used[n], "alert "+r.Alert)
			}
		}
	}
	content, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	for n, where := range dashboardMetrics(t, content) {
		used[n] = append(used[n], where...)
	}

	// The metrics of a plain elector, and of one with a command and a
	// readiness gate, once it has led, started and seen its command exit,
	// and checked the gate.
	ns := newNamespace(t)
	plain := startElector(t, fleet.Config{
		Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: "monitoring",
		Namespace: ns, LockType: "leases", TTL: ttl,
	}, "plain")
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(ready.Close)
	flagged := startElector(t, fleet.Config{
		Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: "monitoring-command",
		Namespace: ns, LockType: "leases", TTL: ttl,
		Extra:   []string{"-ready-url=" + ready.URL + "/ready"},
		Command: []string{"sh", "-c", "sleep 0.5"},
	}, "flagged")
	waitLeader(t, ttl+slack, plain)
	exported := waitExported(t, plain, ttl+slack,
		"k8s_elector_is_leader", "k8s_elector_lock_requests_total", "k8s_elector_lock_request_duration_seconds_bucket")
	withFlags := waitExported(t, flagged, 2*ttl+slack,
		"k8s_elector_command_exits_total", "k8s_elector_candidacy_checks_total", "k8s_elector_candidate")
	for n := range exported {
		for _, p := range flagOnlyMetrics {
			if strings.HasPrefix(n, p) {
				t.Errorf("a plain elector exports %s: it is not one of the flag-only metrics %v", n, flagOnlyMetrics)
			}
		}
	}

	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("the rules and the dashboard read %s", strings.Join(names, " "))
	for _, n := range names {
		where := slices.Compact(slices.Sorted(slices.Values(used[n])))
		flagOnly := slices.ContainsFunc(flagOnlyMetrics, func(p string) bool { return strings.HasPrefix(n, p) })
		switch {
		case exported[n]:
		case flagOnly && withFlags[n]:
			t.Logf("%s (used by %s) is exported only with a command or -ready-url", n, strings.Join(where, ", "))
		default:
			t.Errorf("%s, used by %s, is not a metric the binary exports", n, strings.Join(where, ", "))
		}
	}
	if t.Failed() {
		var all []string
		for n := range exported {
			all = append(all, n)
		}
		sort.Strings(all)
		t.Logf("a plain elector exports: %s", strings.Join(all, " "))
	}
}

// TestPodMonitorScrapesTheSidecar checks that the PodMonitor in
// deploy/monitoring scrapes the port the sidecar Component and
// deploy/example declare, on the path the binary serves its metrics.
func TestPodMonitorScrapesTheSidecar(t *testing.T) {
	parallel(t)
	type endpoint struct {
		Port string `json:"port"`
		Path string `json:"path"`
	}
	var eps []endpoint
	for _, u := range buildManifests(t, "monitoring", "monitoring") {
		if u.GetKind() != "PodMonitor" {
			continue
		}
		b, err := json.Marshal(u.Object["spec"])
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			PodMetricsEndpoints []endpoint `json:"podMetricsEndpoints"`
		}
		if err := json.Unmarshal(b, &spec); err != nil {
			t.Fatal(err)
		}
		eps = append(eps, spec.PodMetricsEndpoints...)
	}
	if len(eps) != 1 || eps[0].Path != "/metrics" {
		t.Fatalf("the PodMonitor's endpoints are %+v, want one on path /metrics", eps)
	}
	for _, dir := range []string{sidecarSample, "example"} {
		var ports []string
		for _, u := range buildManifests(t, dir, "default") {
			if u.GetKind() != "Deployment" {
				continue
			}
			d := splitSidecarBuild(t, []*unstructured.Unstructured{u}).deployments[0]
			for _, c := range d.Spec.Template.Spec.InitContainers {
				if c.Name == sidecarName {
					for _, p := range c.Ports {
						ports = append(ports, p.Name)
					}
				}
			}
		}
		if !slices.Contains(ports, eps[0].Port) {
			t.Errorf("deploy/%s: the elector's ports are %q; the PodMonitor scrapes port %q", dir, ports, eps[0].Port)
		}
	}
}
