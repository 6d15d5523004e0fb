package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
)

// prometheusBinDirEnv names the directory hack/prometheus-bins.sh fills: the
// prometheus binary, and in crds/ the Prometheus Operator's
// CustomResourceDefinitions for PodMonitor and PrometheusRule.
const prometheusBinDirEnv = "PROMETHEUS_BIN_DIR"

// The shipped alerts that the node tests drive.
const (
	alertNoLeader         = "K8sElectorNoLeader"
	alertCandidatesAbsent = "K8sElectorCandidatesAbsent"
	alertMultipleLeaders  = "K8sElectorMultipleLeaders"
)

// promIntervals are the scrape and rule evaluation intervals of the test's
// Prometheus: short, so that an alert's state follows the electors within
// seconds; the rules' own `for:` durations are kept as shipped.
const promInterval = time.Second

// monitoring is deploy/monitoring installed on a node's cluster, and a
// Prometheus that scrapes and evaluates it as the Prometheus Operator
// would configure it.
type monitoring struct {
	url string // Prometheus's HTTP API
}

// startMonitoring installs the Prometheus Operator's CRDs for PodMonitor
// and PrometheusRule, applies deploy/monitoring server-side into a namespace
// of the test's own, and starts a Prometheus built from its Go module with the
// configuration the operator generates from those objects, as the API
// server stored them: the PodMonitor as a scrape job of Kubernetes Pod
// discovery (a container port named as the PodMonitor says, its path), the
// PrometheusRule's spec as its rule file. Prometheus stops when t ends.
func startMonitoring(t *testing.T, nc *nodeCluster) *monitoring {
	t.Helper()
	ctx := context.Background()
	dir := os.Getenv(prometheusBinDirEnv)
	if dir == "" {
		t.Fatalf("%s is not set: it names the directory hack/prometheus-bins.sh builds; run the node tests with `make e2e E2E_FLAGS='-run ^TestNode'`", prometheusBinDirEnv)
	}
	a, err := manifests.NewApplier(nc.Admin)
	if err != nil {
		t.Fatal(err)
	}
	var crds []*unstructured.Unstructured
	for _, name := range []string{"monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"} {
		crds = append(crds, readObject(t, filepath.Join(dir, "crds", name)))
	}
	if _, err := a.Apply(ctx, crds, fieldManager); err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		waitEstablished(t, a, crd)
	}
	// A namespace of the test's own: two node tests may monitor at once.
	ns := nc.namespace(t, "monitoring-"+strings.ToLower(strings.TrimPrefix(t.Name(), "Test")))
	objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", "monitoring"), ns)
	if err != nil {
		t.Fatal(err)
	}
	var applied []*unstructured.Unstructured
	// A new Applier discovers the kinds the CRDs added.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if a, err = manifests.NewApplier(nc.Admin); err != nil {
			t.Fatal(err)
		}
		if applied, err = a.Apply(ctx, objs, fieldManager); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("applying deploy/monitoring server-side: %v", err)
	}
	rules, scrape := "", ""
	for _, u := range applied {
		switch u.GetKind() {
		case "PrometheusRule":
			b, err := sigsyaml.Marshal(u.Object["spec"])
			if err != nil {
				t.Fatal(err)
			}
			rules = string(b)
		case "PodMonitor":
			scrape = podMonitorJob(t, u)
		}
	}
	if rules == "" || scrape == "" {
		t.Fatalf("deploy/monitoring applied no PrometheusRule or no PodMonitor: %d objects", len(applied))
	}

	work := t.TempDir()
	ruleFile := filepath.Join(work, "rules.yaml")
	if err := os.WriteFile(ruleFile, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
rule_files:
  - %[2]s
scrape_configs:
%[3]s`, promInterval, ruleFile, strings.ReplaceAll(scrape, "{{kubeconfig}}", nc.AdminKubeconfig))
	configFile := filepath.Join(work, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := freeLocalPort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(work, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "prometheus"),
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(work, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log, last lines:\n%s", tailFile(logPath, 20))
		}
	})
	m := &monitoring{url: "http://" + addr}
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", tailFile(logPath, 20))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s:\n%s", tailFile(logPath, 20))
		}
	}
	return m
}

// fieldManager owns what the node tests apply server-side.
const fieldManager = "k8s-elector-e2e"

// podMonitorJob translates a PodMonitor (monitoring.coreos.com/v1) into the
// scrape job the Prometheus Operator generates for it, for the fields
// deploy/monitoring uses: Kubernetes Pod discovery in the namespaces of its
// namespaceSelector, its label selector, and per endpoint, the container
// port by name and the path. Any other field fails the test, so that a
// change to the PodMonitor cannot pass unchecked.
func podMonitorJob(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	var spec struct {
		NamespaceSelector struct {
			Any        bool     `json:"any"`
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []map[string]any     `json:"podMetricsEndpoints"`
	}
	b, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	var job strings.Builder
	for i, ep := range spec.PodMetricsEndpoints {
		port, _ := ep["port"].(string)
		path, _ := ep["path"].(string)
		for k := range ep {
			if k != "port" && k != "path" {
				t.Fatalf("PodMonitor %s: endpoint field %q: the test's translation knows port and path only", u.GetName(), k)
			}
		}
		fmt.Fprintf(&job, "  - job_name: podMonitor/%s/%s/%d\n", u.GetNamespace(), u.GetName(), i)
		fmt.Fprintf(&job, "    metrics_path: %s\n", path)
		fmt.Fprintf(&job, "    kubernetes_sd_configs:\n      - role: pod\n        kubeconfig_file: {{kubeconfig}}\n")
		if !spec.NamespaceSelector.Any {
			ns := spec.NamespaceSelector.MatchNames
			if len(ns) == 0 {
				ns = []string{u.GetNamespace()}
			}
			fmt.Fprintf(&job, "        namespaces:\n          names: [%s]\n", strings.Join(ns, ", "))
		}
		fmt.Fprintf(&job, "    relabel_configs:\n")
		fmt.Fprintf(&job, "      - {source_labels: [__meta_kubernetes_pod_phase], regex: (Failed|Succeeded), action: drop}\n")
		if len(spec.Selector.MatchExpressions) > 0 {
			t.Fatalf("PodMonitor %s: matchExpressions: the test's translation knows matchLabels only", u.GetName())
		}
		for k, v := range spec.Selector.MatchLabels {
			fmt.Fprintf(&job, "      - {source_labels: [__meta_kubernetes_pod_label_%s], regex: %q, action: keep}\n", sanitizeLabel(k), v)
		}
		fmt.Fprintf(&job, "      - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: %q, action: keep}\n", port)
		fmt.Fprintf(&job, "      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}\n")
		fmt.Fprintf(&job, "      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}\n")
		fmt.Fprintf(&job, "      - {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}\n")
	}
	return job.String()
}

// sanitizeLabel turns a Kubernetes label key into the Prometheus label
// name suffix Kubernetes discovery gives it.
func sanitizeLabel(k string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, k)
}

// readObject reads one YAML object from a file.
func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := &unstructured.Unstructured{}
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&u.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

// waitEstablished waits until the API server serves a CRD.
func waitEstablished(t *testing.T, a *manifests.Applier, crd *unstructured.Unstructured) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := a.Get(context.Background(), crd)
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD %s not established within 30s (%v)", crd.GetName(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freeLocalPort returns a TCP port free on the loopback address.
func freeLocalPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sample is one series of an instant query's result.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant PromQL query now.
func (m *monitoring) query(ctx context.Context, q string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: %v: %s", q, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	var out []sample
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v", q, s.Value[1])
		}
		out = append(out, sample{Metric: s.Metric, Value: v})
	}
	return out, nil
}

// waitQuery polls q every scrape interval until ok accepts its result, and
// returns the instant it did.
func (m *monitoring) waitQuery(t *testing.T, q string, timeout time.Duration, what string, ok func([]sample) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []sample
	var lastErr error
	for {
		last, lastErr = m.query(context.Background(), q)
		if lastErr == nil && ok(last) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; %s gave %v (%v)", what, timeout, q, last, lastErr)
		}
		time.Sleep(promInterval / 2)
	}
}

// alertState returns the state of alert for election: "pending",
// "firing", or "" when it is neither.
func (m *monitoring) alertState(ctx context.Context, alert, election string) (string, error) {
	res, err := m.query(ctx, fmt.Sprintf(`ALERTS{alertname=%q,election=%q}`, alert, election))
	if err != nil {
		return "", err
	}
	state := ""
	for _, s := range res {
		if s.Metric["alertstate"] == "firing" || state == "" {
			state = s.Metric["alertstate"]
		}
	}
	return state, nil
}

// ruleFor returns the `for:` of an alert as the shipped rule file says.
func ruleFor(t *testing.T, alert string) time.Duration {
	t.Helper()
	for _, g := range parseRules(t, ruleSpec(t)).Groups {
		for _, r := range g.Rules {
			if r.Alert == alert {
				return time.Duration(r.For)
			}
		}
	}
	t.Fatalf("deploy/monitoring has no alert %s", alert)
	return 0
}

// TestNodeMonitoring checks deploy/monitoring with real servers: the
// Prometheus Operator's CRDs accept its PodMonitor and PrometheusRule
// (applied server-side), and a Prometheus configured from them scrapes the
// electors of two deploy/example Deployments. In one, the RoleBinding is
// taken away: every elector runs and says it does not lead, and
// K8sElectorNoLeader fires after its `for:`, then clears once the binding
// is back and one leads. The other is scaled to 0, so that every elector
// has stopped: there is no series left for K8sElectorNoLeader to compare,
// and K8sElectorCandidatesAbsent fires after its `for:` instead, and clears
// once the Deployment is scaled up and its electors report again. It runs
// in parallel with the rest of the suite, and has the node to itself (its
// turn among the node tests: nobody cordons it) while it starts its Pods and
// while it scales them up again, not while it waits for the alerts' `for:`.
func TestNodeMonitoring(t *testing.T) {
	t.Parallel()
	giveBack := takeNodeTurn()
	t.Cleanup(giveBack)
	nc := startNode(t)
	ctx := context.Background()
	m := startMonitoring(t, nc)
	starved, _ := applyExample(t, nc, "node-mon-starved")
	stopped, _ := applyExample(t, nc, "node-mon-stopped")
	election := func(ns string) string { return ns + "/k8s-elector" }
	for _, ns := range []string{starved, stopped} {
		q := fmt.Sprintf(`count by (election) (k8s_elector_is_leader{election=%q}) == 3 and sum by (election) (k8s_elector_is_leader{election=%q}) == 1`, election(ns), election(ns))
		m.waitQuery(t, q, time.Minute, "Prometheus scrapes 3 electors of "+ns+", one leading", func(s []sample) bool { return len(s) == 1 })
	}
	t.Logf("Prometheus scrapes the 3 electors of each Deployment; one of each leads")

	// Starve one election of its RoleBinding; stop every elector of the other.
	binding, err := nc.client.RbacV1().RoleBindings(starved).Get(ctx, "k8s-elector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.client.RbacV1().RoleBindings(starved).Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	starvedAt := time.Now()
	scale := func(ns string, n int) {
		t.Helper()
		patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
		if _, err := nc.client.AppsV1().Deployments(ns).Patch(ctx, exampleDeployment, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scale(stopped, 0)
	stoppedAt := time.Now()
	giveBack()

	noLeaderFor, absentFor := ruleFor(t, alertNoLeader), ruleFor(t, alertCandidatesAbsent)
	type watched struct {
		alert, election string
		from            time.Time
		wait            time.Duration
		pending, firing time.Time
	}
	// The leader steps down within a TTL (10s); the Pods stop within their
	// grace period (30s); then the `for:`, and a few scrapes and evaluations.
	ws := []*watched{
		{alert: alertNoLeader, election: election(starved), from: starvedAt, wait: noLeaderFor + time.Minute},
		{alert: alertCandidatesAbsent, election: election(stopped), from: stoppedAt, wait: absentFor + time.Minute},
	}
	// Neither alert may fire for the other election.
	wrong := []*watched{
		{alert: alertCandidatesAbsent, election: election(starved)},
		{alert: alertNoLeader, election: election(stopped)},
	}
	for {
		pendingAll := true
		for _, w := range ws {
			st, err := m.alertState(ctx, w.alert, w.election)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if st != "" && w.pending.IsZero() {
				w.pending = now
				t.Logf("%s for %s pending %s after the change", w.alert, w.election, now.Sub(w.from).Round(time.Second))
			}
			if st == "firing" && w.firing.IsZero() {
				w.firing = now
				t.Logf("%s for %s firing %s after the change, %s after pending", w.alert, w.election, now.Sub(w.from).Round(time.Second), now.Sub(w.pending).Round(time.Second))
			}
			if w.firing.IsZero() {
				pendingAll = false
				if now.Sub(w.from) > w.wait {
					t.Fatalf("%s for %s not firing %s after the change", w.alert, w.election, w.wait)
				}
			}
		}
		// Pending for a scrape or two, while the stopped Deployment's
		// electors shut down (none leads, all still scraped), is what the
		// rule's for: absorbs; firing is the failure.
		for _, w := range wrong {
			if st, err := m.alertState(ctx, w.alert, w.election); err != nil || st == "firing" {
				t.Fatalf("%s for %s is %q (%v): it must not fire for this election", w.alert, w.election, st, err)
			}
		}
		if pendingAll {
			break
		}
		time.Sleep(promInterval)
	}
	for _, w := range ws {
		want := map[string]time.Duration{alertNoLeader: noLeaderFor, alertCandidatesAbsent: absentFor}[w.alert]
		if got := w.firing.Sub(w.pending); got < want-promInterval {
			t.Errorf("%s fired %s after it was pending, before its for: %s", w.alert, got, want)
		}
	}

	// Give the binding back and scale the Deployment up: both clear.
	t.Cleanup(takeNodeTurn())
	binding.ResourceVersion = ""
	if _, err := nc.client.RbacV1().RoleBindings(starved).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scale(stopped, 3)
	healed := time.Now()
	for _, w := range ws {
		q := fmt.Sprintf(`ALERTS{alertname=%q,election=%q}`, w.alert, w.election)
		at := m.waitQuery(t, q, nodeWaitPods, w.alert+" clears", func(s []sample) bool { return len(s) == 0 })
		t.Logf("%s for %s cleared %s after the binding came back and the Deployment was scaled up", w.alert, w.election, at.Sub(healed).Round(time.Second))
	}
	for _, ns := range []string{starved, stopped} {
		q := fmt.Sprintf(`sum by (election) (k8s_elector_is_leader{election=%q}) == 1`, election(ns))
		m.waitQuery(t, q, nodeWaitChange, "one elector of "+ns+" leads", func(s []sample) bool { return len(s) == 1 })
	}
}

// multipleLeadersFired reports at how many rule evaluations since from
// K8sElectorMultipleLeaders was pending and firing, for any election.
// Pending for a scrape or two is a handover seen by scrapes that overlap,
// as the rule's comment expects; firing takes a minute of it.
func (m *monitoring) multipleLeadersFired(t *testing.T, from time.Time) (pending, firing int) {
	t.Helper()
	window := fmt.Sprintf("%ds", int(time.Since(from).Seconds())+1)
	count := func(state string) int {
		q := fmt.Sprintf(`count_over_time(ALERTS{alertname=%q,alertstate=%q}[%s])`, alertMultipleLeaders, state, window)
		res, err := m.query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range res {
			n += int(s.Value)
		}
		return n
	}
	return count("pending"), count("firing")
}
