package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
)

// TestNodeForbidden applies deploy/example without its RoleBinding, so that
// the electors run with the real projected ServiceAccount token of a
// ServiceAccount that may do nothing: over two TTLs, no Pod leads, the lock
// is never written, and each elector logs "forbidden" once, not at every
// retry. (TestNodeExample is the other half: deploy/base's Role is enough.)
func TestNodeForbidden(t *testing.T) {
	nodeTest(t)
	nc := startNode(t)
	ctx := context.Background()
	ns := nc.namespace(t, "node-no-role") // not "forbidden": the log lines name it
	objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", "example"), ns)
	if err != nil {
		t.Fatal(err)
	}
	localImages(objs, nc.image)
	var kept []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() != "RoleBinding" {
			kept = append(kept, u)
		}
	}
	if len(kept) == len(objs) {
		t.Fatal("deploy/example has no RoleBinding to leave out")
	}
	nc.create(t, kept)

	// Wait until the three electors answer, then watch them for two TTLs.
	deadline := time.Now().Add(nodeWaitPods)
	var pods []string
	for len(pods) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d electors answered within %s, want 3", len(pods), nodeWaitPods)
		}
		time.Sleep(500 * time.Millisecond)
		list, err := nc.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if _, err := podStatus(ctx, p); err == nil && p.Status.PodIP != "" {
				pods = append(pods, p.Name)
			}
		}
	}
	ttl := elector.DefaultTimings(0).TTL
	until := time.Now().Add(2 * ttl)
	for time.Now().Before(until) {
		list, err := nc.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			st, err := podStatus(ctx, p)
			if err == nil && (st.IsLeader || st.Leader != "") {
				t.Fatalf("%s answered is_leader=%v leader=%q without permission to the lock", p.Name, st.IsLeader, st.Leader)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := nc.client.CoordinationV1().Leases(ns).Get(ctx, "k8s-elector", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Lease: %v, want it never created", err)
	}

	// Each elector's log, as the kubelet keeps it, says forbidden once.
	list, err := nc.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		logs, _ := filepath.Glob(filepath.Join(nc.Dir(), "pod-logs", ns+"_"+p.Name+"_*", sidecarName, "*.log"))
		if len(logs) == 0 {
			t.Errorf("no log of %s's elector under %s", p.Name, filepath.Join(nc.Dir(), "pod-logs"))
			continue
		}
		// One line per cause (the lock, the Pod label), each
		// once, not once per retry.
		causes := map[string]int{}
		var lines []string
		for _, f := range logs {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				if strings.Contains(line, "forbidden") {
					causes[logMsg(line)]++
					lines = append(lines, line)
				}
			}
		}
		if len(causes) == 0 {
			t.Errorf("%s's elector never logged forbidden over %s", p.Name, 2*ttl)
		}
		for msg, n := range causes {
			if n > 1 {
				t.Errorf("%s's elector logged %q %d times over %s, want once", p.Name, msg, n, 2*ttl)
			}
		}
		t.Logf("%s's elector, forbidden:\n%s", p.Name, strings.Join(lines, "\n"))
	}
}

// logMsg returns the "msg" of a JSON log line as the kubelet keeps it
// (time, stream, tag, then the line), or the line if it has none.
func logMsg(line string) string {
	_, rest, ok := strings.Cut(line, `"msg":"`)
	if !ok {
		return line
	}
	msg, _, _ := strings.Cut(rest, `"`)
	return msg
}
