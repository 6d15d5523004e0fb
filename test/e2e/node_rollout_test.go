package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
	"github.com/k8s-elector/elector/test/e2e/internal/node"
)

// exampleDeployment is the name of deploy/example's Deployment.
const exampleDeployment = "example-app"

// podRecorder records every elector of a namespace: it polls the GET / of
// each Pod from when the Pod has an IP, and keeps the last status the API
// server reported of each Pod, so that the exit code of a Pod's elector can
// be read after the Pod is gone.
type podRecorder struct {
	rec  *history.Recorder
	stop func()

	mu    sync.Mutex
	added map[string]bool
	last  map[string]*corev1.Pod // by Pod name, the last status seen
	gone  map[string]bool        // Pods the API server deleted
}

// recordPods starts a podRecorder on namespace ns; it stops when t ends.
func recordPods(t *testing.T, client kubernetes.Interface, ns string) *podRecorder {
	t.Helper()
	r := &podRecorder{rec: history.NewRecorder(), added: map[string]bool{}, last: map[string]*corev1.Pod{}, gone: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			r.mu.Lock()
			r.last[p.Name] = p
			if ev.Type == "DELETED" {
				r.gone[p.Name] = true
			}
			add := p.Status.PodIP != "" && !r.added[p.Name]
			if add {
				r.added[p.Name] = true
			}
			r.mu.Unlock()
			if add {
				pod := *p
				r.rec.Add(pod.Name, func(ctx context.Context) (fleet.Status, error) { return podStatus(ctx, pod) })
			}
		}
	}()
	r.stop = func() {
		w.Stop()
		cancel()
		<-done
		r.rec.Stop()
	}
	t.Cleanup(r.stop)
	return r
}

// exits returns, for every Pod that is gone, how its elector ended: "" for
// an exit 0, else what went wrong.
func (r *podRecorder) exits() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for name := range r.gone {
		p := r.last[name]
		var st *corev1.ContainerStatus
		for i, s := range p.Status.InitContainerStatuses {
			if s.Name == sidecarName {
				st = &p.Status.InitContainerStatuses[i]
			}
		}
		switch {
		case st == nil || st.State.Terminated == nil:
			out[name] = "no terminated state in the Pod's last status"
		case st.State.Terminated.ExitCode != 0:
			out[name] = fmt.Sprintf("exit %d (%s)", st.State.Terminated.ExitCode, st.State.Terminated.Reason)
		default:
			out[name] = ""
		}
	}
	return out
}

// leadership sums up the history between from and to: how often leadership
// moved to another elector (or another term), how long no elector claimed
// it, and the overlaps (instants with two leaders).
type leadership struct {
	changes    int
	leaderless time.Duration
	overlaps   []history.Overlap
}

func summarize(h history.History, from, to time.Time) leadership {
	var l leadership
	covered := from // the end of the leadership seen so far
	for _, run := range h.Runs() {
		if !run.To.After(from) || !run.From.Before(to) {
			continue
		}
		if run.From.After(from) {
			l.changes++
		}
		if run.From.After(covered) {
			l.leaderless += run.From.Sub(covered)
		}
		if run.To.After(covered) {
			covered = run.To
		}
	}
	if to.After(covered) {
		l.leaderless += to.Sub(covered)
	}
	for _, o := range h.Overlaps() {
		if o.To.After(from) && o.From.Before(to) {
			l.overlaps = append(l.overlaps, o)
		}
	}
	return l
}

// applyExample applies deploy/example to a new namespace of nc, with the
// local image and the rolling update of the issue made explicit, and waits
// until it has settled: 3 Pods Ready, one leading. It returns the namespace
// and the Service.
func applyExample(t *testing.T, nc *nodeCluster, name string) (ns, service string) {
	t.Helper()
	ns = nc.namespace(t, name)
	objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", "example"), ns)
	if err != nil {
		t.Fatal(err)
	}
	localImages(objs, nc.image)
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			// What the API server defaults to at 3 replicas, written out:
			// one Pod more at a time, never one less.
			if err := unstructured.SetNestedField(u.Object, map[string]any{
				"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxSurge": int64(1), "maxUnavailable": int64(0)},
			}, "spec", "strategy"); err != nil {
				t.Fatal(err)
			}
		}
	}
	nc.create(t, objs)
	service = kindName(objs, "Service")
	settled(t, nc, ns, service, 3, nodeWaitPods, "")
	return ns, service
}

// rolledOut waits until the Deployment's rollout is complete, as kubectl
// rollout status decides it, and no Pod of the old ReplicaSets is left.
func rolledOut(ctx context.Context, client kubernetes.Interface, ns string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, exampleDeployment, metav1.GetOptions{})
		if err == nil && d.Status.ObservedGeneration >= d.Generation && d.Spec.Replicas != nil {
			want := *d.Spec.Replicas
			if d.Status.UpdatedReplicas == want && d.Status.Replicas == want && d.Status.AvailableReplicas == want {
				pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err == nil && int32(len(pods.Items)) == want {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the rollout of %s did not complete within %s", exampleDeployment, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestNodeRollout restarts deploy/example's Deployment 5 times, as kubectl
// rollout restart does (maxSurge 1, maxUnavailable 0), and reports for each
// rollout the changes of leadership, the time without a leader and the
// instants with two leaders, from every Pod's own GET / polled every 15 ms:
// there must be no instant with two leaders, a leader once each rollout is
// done, and every elector that stopped must have exited 0.
func TestNodeRollout(t *testing.T) {
	nodeTest(t)
	nc := startNode(t)
	ctx := context.Background()
	mon := startMonitoring(t, nc)
	ns, service := applyExample(t, nc, "node-rollout")
	pods := recordPods(t, nc.client, ns)
	election := ns + "/k8s-elector"
	mon.waitQuery(t, fmt.Sprintf(`count(k8s_elector_is_leader{election=%q}) == 3`, election), nodeWaitChange,
		"Prometheus scrapes the 3 electors", func(s []sample) bool { return len(s) == 1 })
	begin := time.Now()

	type rollout struct {
		from, to time.Time
	}
	var rollouts []rollout
	for i := 1; i <= 5; i++ {
		from := time.Now()
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, from.Format(time.RFC3339Nano))
		if _, err := nc.client.AppsV1().Deployments(ns).Patch(ctx, exampleDeployment, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("rollout %d: restarting %s: %v", i, exampleDeployment, err)
		}
		if err := rolledOut(ctx, nc.client, ns, nodeWaitPods); err != nil {
			t.Fatalf("rollout %d: %v", i, err)
		}
		settled(t, nc, ns, service, 3, nodeWaitChange, "")
		rollouts = append(rollouts, rollout{from, time.Now()})
	}
	h := pods.rec.Stop()

	var table strings.Builder
	fmt.Fprintf(&table, "| rollout | took | leadership changes | time without a leader | instants with two leaders |\n|---|--:|--:|--:|--:|\n")
	for i, r := range rollouts {
		l := summarize(h, r.from, r.to)
		fmt.Fprintf(&table, "| %d | %s | %d | %s | %d |\n", i+1, r.to.Sub(r.from).Round(time.Millisecond), l.changes, l.leaderless.Round(time.Millisecond), len(l.overlaps))
		for _, o := range l.overlaps {
			t.Errorf("rollout %d: %s", i+1, o)
		}
		if l.changes == 0 {
			t.Errorf("rollout %d: leadership never moved, though every Pod was replaced", i+1)
		}
	}
	t.Logf("5 rollouts of %s (3 replicas, maxSurge 1, maxUnavailable 0), from every Pod's GET / every %s:\n%s",
		exampleDeployment, history.DefaultInterval, table.String())
	for _, bad := range h.BadClaims() {
		t.Error(bad)
	}
	exits := pods.exits()
	if len(exits) < 15 {
		t.Errorf("%d Pods were replaced, want at least 15 (5 rollouts of 3)", len(exits))
	}
	for name, problem := range exits {
		if problem != "" {
			t.Errorf("the elector of %s: %s, want exit 0", name, problem)
		}
	}

	// deploy/monitoring's K8sElectorMultipleLeaders never fired through the
	// rollouts, as Prometheus saw them from its scrapes every second.
	pending, firing := mon.multipleLeadersFired(t, begin)
	t.Logf("Prometheus, scraping every %s through the rollouts: %s pending at %d evaluations, firing at %d",
		promInterval, alertMultipleLeaders, pending, firing)
	if firing > 0 {
		t.Errorf("%s fired through the rollouts (%d evaluations)", alertMultipleLeaders, firing)
	}
}

// evict asks the Eviction API to evict the Pod, as kubectl drain does; it
// returns the API's error (429 TooManyRequests while the disruption
// budget forbids it).
func evict(ctx context.Context, client kubernetes.Interface, ns, pod string) error {
	return client.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns},
	})
}

// TestNodeEviction evicts the leader's Pod through the Eviction API under a
// PodDisruptionBudget (maxUnavailable 1), then drains the node (cordon, and
// evict every Pod, retrying as kubectl drain does). It checks what users
// see: the evicted leader hands over at once, its elector exits 0, and a
// drain of the only node evicts as many Pods as the budget allows, then is
// refused (429) while the replacements cannot be scheduled, with one of
// the remaining Pods leading throughout; after an uncordon the Deployment
// is whole again, with one leader.
func TestNodeEviction(t *testing.T) {
	nodeTest(t)
	nc := startNode(t)
	ctx := context.Background()
	ns, service := applyExample(t, nc, "node-eviction")
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: exampleDeployment},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &one,
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": exampleDeployment}},
		},
	}
	if _, err := nc.client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The disruption controller must have counted the healthy Pods before
	// an eviction can pass.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(nodeWaitChange)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, nodeWaitChange)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("the PodDisruptionBudget allows one disruption", func() bool {
		p, err := nc.client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdb.Name, metav1.GetOptions{})
		return err == nil && p.Status.DisruptionsAllowed == 1 && p.Status.CurrentHealthy == 3
	})
	pods := recordPods(t, nc.client, ns)
	leader := settled(t, nc, ns, service, 3, nodeWaitChange, "")

	// 1. Evict the leader.
	evicted := time.Now()
	if err := evict(ctx, nc.client, ns, leader.Name); err != nil {
		t.Fatalf("evicting the leader's Pod %s: %v", leader.Name, err)
	}
	next := settled(t, nc, ns, service, 2, nodeWaitChange, leader.Name)
	t.Logf("evicted the leader %s: %s leads and alone in the EndpointSlice %s later", leader.Name, next.Name, time.Since(evicted).Round(time.Millisecond))
	waitFor("the evicted Pod is gone", func() bool {
		_, err := nc.client.CoreV1().Pods(ns).Get(ctx, leader.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	l := summarize(pods.rec.Snapshot(), evicted, time.Now())
	t.Logf("eviction of the leader: %d leadership changes, %s without a leader, %d instants with two leaders", l.changes, l.leaderless.Round(time.Millisecond), len(l.overlaps))
	settled(t, nc, ns, service, 3, nodeWaitPods, "")
	waitFor("the PodDisruptionBudget allows one disruption again", func() bool {
		p, err := nc.client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdb.Name, metav1.GetOptions{})
		return err == nil && p.Status.DisruptionsAllowed == 1
	})

	// 2. Drain the node: cordon it, then evict every Pod, each retried
	// while the budget refuses it, for as long as kubectl drain would be
	// given here.
	drained := time.Now()
	cordon := func(on bool) {
		t.Helper()
		patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
		if _, err := nc.client.CoreV1().Nodes().Patch(ctx, node.NodeName, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("cordon=%t: %v", on, err)
		}
	}
	cordon(true)
	t.Cleanup(func() { cordon(false) }) // the next node test needs the node
	list, err := nc.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const drainFor = 20 * time.Second
	var evictedNames, refused []string
	for _, p := range list.Items {
		deadline := time.Now().Add(drainFor)
		for {
			err := evict(ctx, nc.client, ns, p.Name)
			if err == nil {
				evictedNames = append(evictedNames, p.Name)
				break
			}
			if !apierrors.IsTooManyRequests(err) {
				t.Fatalf("evicting %s: %v, want success or 429", p.Name, err)
			}
			if time.Now().After(deadline) {
				refused = append(refused, p.Name)
				break
			}
			time.Sleep(time.Second)
		}
		if len(refused) > 0 {
			break // as kubectl drain with a timeout: the rest would wait the same
		}
	}
	t.Logf("drain of the only node: evicted %v; refused with 429 for %s: %s, its replacement Pending on the cordoned node",
		evictedNames, drainFor, strings.Join(refused, ", "))
	if len(evictedNames) != 1 || len(refused) != 1 {
		t.Errorf("the drain evicted %v and was refused for %v: want one eviction, then a refusal while the replacement cannot be scheduled", evictedNames, refused)
	}
	remaining := waitLeaderPod(t, nc, ns, 2, evictedNames[0], nodeWaitChange)
	t.Logf("during the drain, %s leads", remaining.Name)

	// 3. Uncordon: the replacement is scheduled and the Deployment whole.
	cordon(false)
	final := settled(t, nc, ns, service, 3, nodeWaitPods, "")
	l = summarize(pods.rec.Snapshot(), drained, time.Now())
	t.Logf("drain and uncordon: %d leadership changes, %s without a leader, %d instants with two leaders; %s leads at the end",
		l.changes, l.leaderless.Round(time.Millisecond), len(l.overlaps), final.Name)

	h := pods.rec.Stop()
	for _, o := range h.Overlaps() {
		t.Error(o)
	}
	for _, bad := range h.BadClaims() {
		t.Error(bad)
	}
	for name, problem := range pods.exits() {
		if problem != "" {
			t.Errorf("the elector of %s: %s, want exit 0", name, problem)
		}
	}
}
