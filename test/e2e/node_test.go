package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
	"github.com/k8s-elector/elector/test/e2e/internal/node"
)

// The node tests run k8s-elector in real Pods on a one-node cluster
// (internal/node): a kubelet with containerd, the controllers and the
// scheduler. The tests share it, each in namespaces of its own that it
// deletes, waiting until they are gone, when it ends. TestMain starts it
// as the suite starts when the node tests are selected (startNodeEarly),
// so that TestNodeTokenRotation's Deployment sees its token rotate while
// the other tests run, and stops it, with every process it started, after
// the last test. A missing prerequisite (root, the packages of `make
// node`, the image of `make image` in E2E_IMAGE) fails the test; it never
// skips.

const (
	shippedImage   = "ghcr.io/k8s-elector/k8s-elector:latest"
	statusLabel    = "k8s-elector/status"
	electorPort    = "4040"
	nodeWaitPods   = 3 * time.Minute
	nodeWaitChange = time.Minute
)

// nodeCluster is a started one-node cluster and the image its Pods run.
type nodeCluster struct {
	*node.Cluster
	client kubernetes.Interface
	image  string
	// rotation is TestNodeTokenRotation's Deployment, started with the
	// cluster: a token rotation takes most of 10 minutes to see.
	rotation *tokenRotation
}

// The cluster the node tests share: started by the first, stopped by
// TestMain (stopNode).
var (
	nodeOnce   sync.Once
	sharedNode *nodeCluster
	nodeErr    error
)

// startNode returns the node tests' one-node cluster, with the k8s-elector
// image imported, and starts it if no test has yet. If t fails, the
// cluster's logs are printed when it ends.
func startNode(t *testing.T) *nodeCluster {
	t.Helper()
	nodeOnce.Do(func() { sharedNode, nodeErr = newNodeCluster() })
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	nc := sharedNode
	t.Cleanup(func() {
		if t.Failed() {
			for name, n := range map[string]int{"kubelet": 40, "containerd": 15, "kube-controller-manager": 15} {
				t.Logf("%s log, last lines:\n%s", name, nc.Log(name, n))
			}
		}
	})
	return nc
}

// newNodeCluster starts the cluster and TestNodeTokenRotation's Deployment.
func newNodeCluster() (*nodeCluster, error) {
	image := os.Getenv(imageEnv)
	if image == "" {
		return nil, fmt.Errorf("%s is not set: the node tests run the image that `make image` builds; run them with `make e2e E2E_FLAGS='-run ^TestNode'`", imageEnv)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	begin := time.Now()
	c, err := node.Start(node.Options{Images: []string{image}, Logf: logf})
	if err != nil {
		return nil, fmt.Errorf("starting the node: %w", err)
	}
	logf("one-node cluster started in %s", time.Since(begin).Round(time.Millisecond))
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		_ = c.Stop()
		return nil, err
	}
	nc := &nodeCluster{Cluster: c, client: client, image: image}
	nc.rotation = startTokenRotation(nc)
	return nc, nil
}

// startNodeEarly starts the cluster in the background if the tests that
// -test.run and -test.skip select include TestNodeTokenRotation; startNode
// waits for it.
func startNodeEarly() {
	matches := func(flagName string) bool {
		top, _, _ := strings.Cut(flag.Lookup(flagName).Value.String(), "/")
		re, err := regexp.Compile(top)
		return err == nil && re.MatchString("TestNodeTokenRotation")
	}
	if run := flag.Lookup("test.run").Value.String(); run != "" && !matches("test.run") {
		return
	}
	if skip := flag.Lookup("test.skip").Value.String(); skip != "" && matches("test.skip") {
		return
	}
	go nodeOnce.Do(func() { sharedNode, nodeErr = newNodeCluster() })
}

// stopNode stops the node tests' cluster, if it was started, once it has
// finished starting.
func stopNode() error {
	nodeOnce.Do(func() {}) // waits for a start in progress
	if sharedNode == nil {
		return nil
	}
	begin := time.Now()
	err := sharedNode.Stop()
	fmt.Fprintf(os.Stderr, "one-node cluster stopped in %s\n", time.Since(begin).Round(time.Millisecond))
	return err
}

// namespace creates a namespace on the node's cluster, and deletes it when
// t ends, waiting until it is gone with its Pods, so that the next test
// finds the node as quiet as this one did.
func (nc *nodeCluster) namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := createNamespace(ctx, nc.client, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nc.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
			return
		}
		deadline := time.Now().Add(nodeWaitPods)
		for {
			_, err := nc.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("namespace %s not gone within %s of its deletion (%v)", name, nodeWaitPods, err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	return name
}

// create creates objs on the cluster, as kubectl create would.
func (nc *nodeCluster) create(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	a, err := manifests.NewApplier(nc.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Create(context.Background(), objs, false); err != nil {
		t.Fatal(err)
	}
}

// createNamespace creates a namespace.
func createNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// localImages points every container of every Deployment at images that
// are already in containerd: the shipped elector image at the local one,
// and nothing is pulled (imagePullPolicy: Never).
func localImages(objs []*unstructured.Unstructured, image string) {
	for _, u := range objs {
		for _, c := range podContainers(u) {
			if c["image"] == shippedImage {
				c["image"] = image
			}
			c["imagePullPolicy"] = "Never"
		}
	}
}

// podContainers returns the init containers and containers of a
// Deployment's Pod template, to change in place (kustomize's objects hold
// plain ints, which the copying helpers of unstructured refuse).
func podContainers(u *unstructured.Unstructured) []map[string]any {
	if u.GetKind() != "Deployment" {
		return nil
	}
	var cs []map[string]any
	for _, field := range []string{"initContainers", "containers"} {
		v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "template", "spec", field)
		list, _ := v.([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				cs = append(cs, m)
			}
		}
	}
	return cs
}

// readyPods returns the namespace's Ready Pods that are not being deleted.
func readyPods(ctx context.Context, client kubernetes.Interface, ns string) ([]corev1.Pod, error) {
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var ready []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = append(ready, p)
			}
		}
	}
	return ready, nil
}

// podStatus asks the elector in pod for its status, at the Pod's IP.
func podStatus(ctx context.Context, pod corev1.Pod) (fleet.Status, error) {
	var st fleet.Status
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(pod.Status.PodIP, electorPort)+"/", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(body, &st)
}

// settled waits until want Pods are Ready and exactly one of their
// electors leads, every Pod's label says so, and the Service's
// EndpointSlices name only the leader's Pod; it returns the leader's Pod.
// A Pod named in skip (the old leader) counts neither way.
func settled(t *testing.T, nc *nodeCluster, ns, service string, want int, timeout time.Duration, skip string) corev1.Pod {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var problem string
	for {
		leader, p := settledOnce(ctx, nc, ns, service, want, skip)
		if p == "" {
			return leader
		}
		if p != problem {
			t.Logf("waiting: %s", p)
			problem = p
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s: %s", timeout, problem)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settledOnce checks settled's conditions once and says what is missing.
func settledOnce(ctx context.Context, nc *nodeCluster, ns, service string, want int, skip string) (corev1.Pod, string) {
	pods, err := readyPods(ctx, nc.client, ns)
	if err != nil {
		return corev1.Pod{}, err.Error()
	}
	pods = slices.DeleteFunc(pods, func(p corev1.Pod) bool { return p.Name == skip })
	if len(pods) < want {
		return corev1.Pod{}, fmt.Sprintf("%d of %d Pods Ready", len(pods), want)
	}
	var leaders []corev1.Pod
	for _, p := range pods {
		st, err := podStatus(ctx, p)
		if err != nil {
			return corev1.Pod{}, fmt.Sprintf("status of %s: %v", p.Name, err)
		}
		label := p.Labels[statusLabel]
		if st.IsLeader {
			leaders = append(leaders, p)
			if label != "leader" {
				return corev1.Pod{}, fmt.Sprintf("%s leads but is labelled %s=%q", p.Name, statusLabel, label)
			}
		} else if label != "standby" {
			return corev1.Pod{}, fmt.Sprintf("%s follows but is labelled %s=%q", p.Name, statusLabel, label)
		}
	}
	if len(leaders) != 1 {
		return corev1.Pod{}, fmt.Sprintf("%d leaders among %d Ready Pods", len(leaders), len(pods))
	}
	named, err := endpointPods(ctx, nc.client, ns, service)
	if err != nil {
		return corev1.Pod{}, err.Error()
	}
	if !slices.Equal(named, []string{leaders[0].Name}) {
		return corev1.Pod{}, fmt.Sprintf("the EndpointSlices of %s name %v, want only the leader %s", service, named, leaders[0].Name)
	}
	return leaders[0], ""
}

// endpointPods returns the names of the Pods that the Service's
// EndpointSlices list, sorted.
func endpointPods(ctx context.Context, client kubernetes.Interface, ns, service string) ([]string, error) {
	list, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + service,
	})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			if ep.TargetRef != nil {
				names = append(names, ep.TargetRef.Name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// TestNodeExample applies deploy/example as it is, with only the namespace
// changed and the image pointed at the local one: 3 Pods become Ready and
// exactly one leads, its Pod carries the label, and the Service's
// EndpointSlice names only it; after the leader's Pod is deleted, the
// EndpointSlice names the new leader.
func TestNodeExample(t *testing.T) {
	nodeTest(t)
	nc := startNode(t)
	ctx := context.Background()
	ns := nc.namespace(t, "node-example")
	objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", "example"), ns)
	if err != nil {
		t.Fatal(err)
	}
	localImages(objs, nc.image)
	nc.create(t, objs)
	service := kindName(objs, "Service")
	begin := time.Now()
	leader := settled(t, nc, ns, service, 3, nodeWaitPods, "")
	t.Logf("3 Pods Ready, %s leads, labelled, and alone in the EndpointSlice, %s after apply", leader.Name, time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	if err := nc.client.CoreV1().Pods(ns).Delete(ctx, leader.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the leader's Pod %s: %v", leader.Name, err)
	}
	next := settled(t, nc, ns, service, 2, nodeWaitChange, leader.Name)
	t.Logf("after deleting %s: %s leads and alone in the EndpointSlice, %s later", leader.Name, next.Name, time.Since(begin).Round(time.Millisecond))
	if next.Name == leader.Name {
		t.Fatalf("the deleted Pod %s still leads", leader.Name)
	}
}

// sidecarDeployment is the test's own application: a Deployment with an
// application container (the pause binary, which writes the instant it was
// told to stop), to which the sidecar Component adds the elector.
const sidecarDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: node-app
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: node-app
  template:
    metadata:
      labels:
        app.kubernetes.io/name: node-app
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: app
          image: ` + node.PauseImage + `
          args: ["-stop-file=/stops/app"]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: stops
              mountPath: /stops
      volumes:
        - name: stops
          emptyDir: {}
`

const sidecarKustomization = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
components:
  - {{component}}
configMapGenerator:
  - name: k8s-elector-election
    literals:
      - election=node-app
    options:
      annotations:
        config.kubernetes.io/local-config: "true"
`

// TestNodeSidecar adds the sidecar Component to a Deployment with an
// application container: the elector runs as a native sidecar, and when the
// leader's Pod is deleted, the application stops before the elector (each
// writes the instant it stops to a shared emptyDir: the application when it
// gets SIGTERM, the elector its status file, is_leader false, before it
// releases), the elector exits 0, and another Pod leads within 1s of the
// release.
func TestNodeSidecar(t *testing.T) {
	nodeTest(t)
	nc := startNode(t)
	ctx := context.Background()
	ns := nc.namespace(t, "node-sidecar")
	dir := t.TempDir()
	component := filepath.Join(controlplane.RepoRoot(), "deploy", "components", "sidecar")
	if err := os.WriteFile(filepath.Join(dir, "deployment.yaml"), []byte(sidecarDeployment), 0o644); err != nil {
		t.Fatal(err)
	}
	// kustomize takes a component by a relative path only.
	rel, err := filepath.Rel(dir, component)
	if err != nil {
		t.Fatal(err)
	}
	kust := strings.ReplaceAll(sidecarKustomization, "{{component}}", rel)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Build(dir, ns)
	if err != nil {
		t.Fatal(err)
	}
	localImages(objs, nc.image)
	// The elector keeps its status file in the shared emptyDir.
	sidecars := 0
	for _, u := range objs {
		for _, m := range podContainers(u) {
			if m["name"] != sidecarName {
				continue
			}
			sidecars++
			if m["restartPolicy"] != "Always" {
				t.Fatalf("the Component's %s container has restartPolicy %v, want Always (a native sidecar)", sidecarName, m["restartPolicy"])
			}
			args, _ := m["args"].([]any)
			mounts, _ := m["volumeMounts"].([]any)
			m["args"] = append(args, "-status-file=/stops/elector.json")
			m["volumeMounts"] = append(mounts, map[string]any{"name": "stops", "mountPath": "/stops"})
		}
	}
	if sidecars != 1 {
		t.Fatalf("the build has %d %s containers, want 1", sidecars, sidecarName)
	}
	nc.create(t, objs)

	begin := time.Now()
	leader := waitLeaderPod(t, nc, ns, 3, "", nodeWaitPods)
	t.Logf("3 Pods Ready, %s leads, %s after apply", leader.Name, time.Since(begin).Round(time.Millisecond))
	if !slices.ContainsFunc(leader.Status.InitContainerStatuses, func(s corev1.ContainerStatus) bool {
		return s.Name == sidecarName && s.Started != nil && *s.Started
	}) {
		t.Errorf("the elector of %s is not a started init container: %+v", leader.Name, leader.Status.InitContainerStatuses)
	}
	lease, err := nc.client.CoordinationV1().Leases(ns).Get(ctx, "node-app", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the election's Lease: %v", err)
	}
	if got := ptrString(lease.Spec.HolderIdentity); got != leader.Name {
		t.Fatalf("Lease holder %q, want the leading Pod %s", got, leader.Name)
	}

	// Follow the old leader's Pod to its end (its last status has the
	// containers' exit codes), the Lease to its next holder, and the stop
	// records in the Pod's emptyDir on the node.
	podWatch, err := nc.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + leader.Name, ResourceVersion: leader.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer podWatch.Stop()
	leaseWatch, err := nc.client.CoordinationV1().Leases(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=node-app", ResourceVersion: lease.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer leaseWatch.Stop()
	stops := filepath.Join(nc.Dir(), "kubelet", "pods", string(leader.UID), "volumes", "kubernetes.io~empty-dir", "stops")
	rec := make(chan stopRecords, 1)
	done := make(chan struct{})
	defer close(done)
	go func() { rec <- readStops(stops, done) }()

	deleted := time.Now()
	if err := nc.client.CoreV1().Pods(ns).Delete(ctx, leader.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the leader's Pod %s: %v", leader.Name, err)
	}
	var last *corev1.Pod
	var next *coordinationv1.Lease
	timeout := time.After(nodeWaitChange)
	for podWatch != nil || next == nil {
		select {
		case ev, ok := <-resultChan(podWatch):
			if !ok {
				t.Fatal("the Pod watch ended")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod {
				last = p
			}
			if ev.Type == watch.Deleted {
				podWatch.Stop()
				podWatch = nil
			}
		case ev, ok := <-leaseWatch.ResultChan():
			if !ok {
				t.Fatal("the Lease watch ended")
			}
			if l, isLease := ev.Object.(*coordinationv1.Lease); isLease && next == nil {
				if h := ptrString(l.Spec.HolderIdentity); h != "" && h != leader.Name {
					next = l
				}
			}
		case <-timeout:
			t.Fatalf("within %s of deleting %s: Pod gone %v, next Lease holder %v", nodeWaitChange, leader.Name, podWatch == nil, next != nil)
		}
	}
	t.Logf("%s gone %s after its deletion; %s holds the Lease", leader.Name, time.Since(deleted).Round(time.Millisecond), ptrString(next.Spec.HolderIdentity))

	// The elector exited 0.
	var elector *corev1.ContainerStatus
	for i, s := range last.Status.InitContainerStatuses {
		if s.Name == sidecarName {
			elector = &last.Status.InitContainerStatuses[i]
		}
	}
	switch {
	case elector == nil || elector.State.Terminated == nil:
		t.Errorf("the last status of %s has no terminated %s: %+v", leader.Name, sidecarName, last.Status.InitContainerStatuses)
	case elector.State.Terminated.ExitCode != 0:
		t.Errorf("the elector of %s exited %d (%s), want 0", leader.Name, elector.State.Terminated.ExitCode, elector.State.Terminated.Reason)
	default:
		t.Logf("the elector of %s exited 0", leader.Name)
	}

	// The application stopped before the elector released, and another
	// Pod led within 1s of the release.
	var r stopRecords
	select {
	case r = <-rec:
	case <-time.After(5 * time.Second):
		t.Fatal("the stop records were not read")
	}
	if r.err != nil {
		t.Fatalf("reading the stop records in %s: %v", stops, r.err)
	}
	if r.app.IsZero() || r.release.IsZero() {
		t.Fatalf("stop records: application %v, elector's release %v: want both", r.app, r.release)
	}
	t.Logf("application stopped %s after the deletion; elector released %s after the application stopped",
		r.app.Sub(deleted).Round(time.Millisecond), r.release.Sub(r.app).Round(time.Millisecond))
	if !r.app.Before(r.release) {
		t.Errorf("the application stopped at %s, not before the elector released at %s", r.app.Format(time.RFC3339Nano), r.release.Format(time.RFC3339Nano))
	}
	if next.Spec.AcquireTime == nil {
		t.Fatalf("the new Lease holder %s has no acquire time", ptrString(next.Spec.HolderIdentity))
	}
	handover := next.Spec.AcquireTime.Sub(r.release)
	t.Logf("%s acquired the Lease %s after %s released it", ptrString(next.Spec.HolderIdentity), handover.Round(time.Millisecond), leader.Name)
	if handover > time.Second {
		t.Errorf("%s led %s after the release, want within 1s", ptrString(next.Spec.HolderIdentity), handover)
	}
	waitLeaderPod(t, nc, ns, 2, leader.Name, nodeWaitChange)
}

// waitLeaderPod waits until want Pods (not counting skip) are Ready and
// exactly one of their electors leads, and returns its Pod.
func waitLeaderPod(t *testing.T, nc *nodeCluster, ns string, want int, skip string, timeout time.Duration) corev1.Pod {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var problem string
	for {
		pods, err := readyPods(ctx, nc.client, ns)
		pods = slices.DeleteFunc(pods, func(p corev1.Pod) bool { return p.Name == skip })
		var leaders []corev1.Pod
		p := ""
		switch {
		case err != nil:
			p = err.Error()
		case len(pods) < want:
			p = fmt.Sprintf("%d of %d Pods Ready", len(pods), want)
		default:
			for _, pod := range pods {
				st, err := podStatus(ctx, pod)
				if err != nil {
					p = fmt.Sprintf("status of %s: %v", pod.Name, err)
					break
				}
				if st.IsLeader {
					leaders = append(leaders, pod)
				}
			}
			if p == "" && len(leaders) != 1 {
				p = fmt.Sprintf("%d leaders among %d Ready Pods", len(leaders), len(pods))
			}
		}
		if p == "" {
			return leaders[0]
		}
		if p != problem {
			t.Logf("waiting: %s", p)
			problem = p
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single leader within %s: %s", timeout, problem)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopRecords are what a Pod's containers wrote to the shared emptyDir as
// they stopped: the application the instant it got SIGTERM, the elector
// its status file, rewritten with is_leader false before it releases (the
// file's modification time).
type stopRecords struct {
	app, release time.Time
	err          error
}

// readStops polls dir (the emptyDir on the node) until both records are
// there, or done: the kubelet removes the directory soon after the Pod.
func readStops(dir string, done <-chan struct{}) stopRecords {
	var r stopRecords
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.app.IsZero() {
			// The pause binary writes the file in place: an empty read
			// comes between its creation and the write.
			if b, err := os.ReadFile(filepath.Join(dir, "app")); err == nil && strings.TrimSpace(string(b)) != "" {
				if r.app, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err != nil {
					r.err = fmt.Errorf("the application's stop record %q: %w", b, err)
					return r
				}
			}
		}
		if r.release.IsZero() {
			path := filepath.Join(dir, "elector.json")
			if b, err := os.ReadFile(path); err == nil {
				var st fleet.Status
				if json.Unmarshal(b, &st) == nil && !st.IsLeader {
					if fi, err := os.Stat(path); err == nil {
						r.release = fi.ModTime()
					}
				}
			}
		}
		if !r.app.IsZero() && !r.release.IsZero() {
			return r
		}
		select {
		case <-done:
			return r
		case <-tick.C:
		}
	}
}

// resultChan is w's channel, or nil (never ready) once w is done.
func resultChan(w watch.Interface) <-chan watch.Event {
	if w == nil {
		return nil
	}
	return w.ResultChan()
}
