package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
)

// The images deploy/singleton's Dockerfile.example names: the application's
// base (here the program of internal/singleton) and the image it builds.
const (
	singletonBase  = "registry.example.com/my-singleton-base:1.0"
	singletonImage = "registry.example.com/my-singleton:1.0"
)

// buildSingletonImage builds the application image as deploy/singleton
// tells users to: its Dockerfile.example, with the local k8s-elector image
// as ELECTOR_IMAGE, on a base that holds internal/singleton as
// /app/my-singleton. Nothing runs inside either build, so buildah needs no
// container runtime. The image goes into the node's containerd.
func buildSingletonImage(t *testing.T, nc *nodeCluster) {
	t.Helper()
	root := controlplane.RepoRoot()
	ctxDir := t.TempDir()
	gobuild := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "my-singleton"), "./internal/singleton")
	gobuild.Dir = filepath.Join(root, "test", "e2e")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("building internal/singleton: %v\n%s", err, out)
	}
	base := "FROM scratch\nCOPY my-singleton /app/my-singleton\nUSER 65535:65535\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	buildah := func(args ...string) {
		t.Helper()
		cmd := exec.Command("buildah", args...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(root, "hack", "containers.conf"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	buildah("build", "--quiet", "--pull=never", "-t", singletonBase, "-f", filepath.Join(ctxDir, "Containerfile"), ctxDir)
	buildah("build", "--quiet", "--pull=never", "--build-arg", "ELECTOR_IMAGE="+nc.image, "-t", singletonImage,
		"-f", filepath.Join(root, "deploy", "singleton", "Dockerfile.example"), filepath.Join(root, "deploy", "singleton"))
	t.Cleanup(func() {
		_ = exec.Command("buildah", "rmi", singletonImage, singletonBase).Run()
	})
	if err := nc.ImportPodmanImage(singletonImage); err != nil {
		t.Fatal(err)
	}
}

// singletonEvent is one line of internal/singleton's shared log.
type singletonEvent struct {
	what, id string
	at       time.Time
}

func (e singletonEvent) String() string {
	return fmt.Sprintf("%s %s %s", e.what, e.id, e.at.Format("15:04:05.000000"))
}

// readSingletonLog reads the shared log of every copy of the program.
func readSingletonLog(dir string) ([]singletonEvent, error) {
	f, err := os.Open(filepath.Join(dir, "log"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []singletonEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return nil, fmt.Errorf("log line %q: want EVENT ID INSTANT", sc.Text())
		}
		at, err := time.Parse(time.RFC3339Nano, fields[2])
		if err != nil {
			return nil, fmt.Errorf("log line %q: %v", sc.Text(), err)
		}
		evs = append(evs, singletonEvent{what: fields[0], id: fields[1], at: at})
	}
	return evs, sc.Err()
}

// waitSingletonLog waits until the log satisfies done and returns it.
func waitSingletonLog(t *testing.T, dir string, timeout time.Duration, what string, done func([]singletonEvent) bool) []singletonEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := readSingletonLog(dir)
		if err != nil {
			t.Fatal(err)
		}
		if done(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s, the program's log has no %s: %v", timeout, what, evs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNodeSingleton applies deploy/singleton as it is, with the namespace
// changed, the image built by its Dockerfile.example (the program is
// internal/singleton, which shares a directory on the node with every copy
// of itself), and that directory mounted: the program runs only in the
// leader's Pod; after the leader's Pod is deleted, the old copy stops, and
// the new leader's copy starts only after it, without ever finding the
// old copy's flock held.
func TestNodeSingleton(t *testing.T) {
	nodeTest(t)
	// The program runs as UID 65535 and writes here. Made before the
	// namespace, so removed after it is gone.
	records := t.TempDir()
	if err := os.Chmod(records, 0o777); err != nil {
		t.Fatal(err)
	}
	nc := startNode(t)
	ctx := context.Background()
	ns := nc.namespace(t, "node-singleton")
	buildSingletonImage(t, nc)
	objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", "singleton"), ns)
	if err != nil {
		t.Fatal(err)
	}
	localImages(objs, nc.image)
	mounted := 0
	for _, u := range objs {
		for _, c := range podContainers(u) {
			if c["image"] != singletonImage {
				continue
			}
			mounts, _ := c["volumeMounts"].([]any)
			c["volumeMounts"] = append(mounts, map[string]any{"name": "records", "mountPath": "/records"})
			mounted++
		}
		if u.GetKind() == "Deployment" {
			// In place: kustomize's objects hold plain ints, which
			// unstructured's setters refuse to copy.
			v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "template", "spec")
			spec, _ := v.(map[string]any)
			vols, _ := spec["volumes"].([]any)
			spec["volumes"] = append(vols, map[string]any{"name": "records", "hostPath": map[string]any{"path": records, "type": "Directory"}})
		}
	}
	if mounted != 1 {
		t.Fatalf("deploy/singleton has %d containers with image %s, want 1", mounted, singletonImage)
	}
	nc.create(t, objs)

	begin := time.Now()
	leader := waitLeaderPod(t, nc, ns, 2, "", nodeWaitPods)
	t.Logf("2 Pods Ready, %s leads, %s after apply", leader.Name, time.Since(begin).Round(time.Millisecond))
	started := func(id string) func([]singletonEvent) bool {
		return func(evs []singletonEvent) bool {
			for _, e := range evs {
				if e.what == "start" && e.id == id {
					return true
				}
			}
			return false
		}
	}
	waitSingletonLog(t, records, nodeWaitChange, "start by "+leader.Name, started(leader.Name))
	// The standby's elector has read the lock (it is Ready) and follows: its
	// program has not run, and must not run while the leader's does.
	follower := otherPod(t, nc, ns, leader.Name)
	evs, err := readSingletonLog(records)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.id != leader.Name || e.what != "start" {
			t.Errorf("before any handover, the log has %s; want only the start of %s", e, leader.Name)
		}
	}
	t.Logf("the program runs in %s only; %s stands by", leader.Name, follower)

	deleted := time.Now()
	if err := nc.client.CoreV1().Pods(ns).Delete(ctx, leader.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the leader's Pod %s: %v", leader.Name, err)
	}
	// The old leader names its successor: the standby or the replacement
	// Pod, whichever it heard from last.
	startedElsewhere := func(evs []singletonEvent) bool {
		return slices.ContainsFunc(evs, func(e singletonEvent) bool { return e.what == "start" && e.id != leader.Name })
	}
	evs = waitSingletonLog(t, records, nodeWaitChange, "start by another Pod", startedElsewhere)
	next := waitLeaderPod(t, nc, ns, 2, leader.Name, nodeWaitChange)
	t.Logf("log: %v", evs)
	var stop, start time.Time
	for _, e := range evs {
		switch {
		case e.what == "overlap":
			t.Errorf("%s: a copy started while another held the lock", e)
		case e.what == "stop" && e.id == leader.Name:
			stop = e.at
		case e.what == "start" && e.id != leader.Name:
			start = e.at
			if e.id != next.Name {
				t.Errorf("the program started in %s, but %s leads", e.id, next.Name)
			}
		}
	}
	if stop.IsZero() {
		t.Fatalf("the old leader %s's program wrote no stop: it was not stopped by SIGTERM", leader.Name)
	}
	t.Logf("the old program stopped %s after the deletion; the new one started %s after that",
		stop.Sub(deleted).Round(time.Millisecond), start.Sub(stop).Round(time.Millisecond))
	if !start.After(stop) {
		t.Errorf("the new leader's program started at %s, before the old one stopped at %s", start.Format(time.RFC3339Nano), stop.Format(time.RFC3339Nano))
	}
	// The other Pod stands by: its program never runs.
	waitLeaderPod(t, nc, ns, 2, leader.Name, nodeWaitPods)
	evs, err = readSingletonLog(records)
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	for _, e := range evs {
		if e.what == "start" {
			starts++
		}
	}
	if starts != 2 {
		t.Errorf("the program started %d times, want 2 (the first leader, then %s): %v", starts, next.Name, evs)
	}
}

// otherPod returns the name of the one Ready Pod in ns that is not skip.
func otherPod(t *testing.T, nc *nodeCluster, ns, skip string) string {
	t.Helper()
	pods, err := readyPods(context.Background(), nc.client, ns)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods {
		if p.Name != skip {
			names = append(names, p.Name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("Ready Pods other than %s: %v, want 1", skip, names)
	}
	return names[0]
}
