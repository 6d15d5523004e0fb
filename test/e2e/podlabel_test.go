package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// waitEvent waits for an Event with reason on the object kind/name.
func waitEvent(t *testing.T, ns, kind, name, reason string) {
	t.Helper()
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "reason": reason}.String()
	deadline := time.Now().Add(ttl + slack)
	for {
		list, err := admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatalf("listing events: %v", err)
		}
		if len(list.Items) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event on %s %s/%s within %s", reason, kind, ns, name, ttl+slack)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPodLabelFollowsLeadership runs two electors with -pod-name against
// Pods (never scheduled: there is no kubelet here, but the objects are
// real) and checks the labels, the untouched other labels, and the Events.
func TestPodLabelFollowsLeadership(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pods := []string{"app-a", "app-b"}
	for _, name := range pods {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "example"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}},
		}
		if name == "app-b" {
			pod.Labels = nil // a Pod without labels must work too
		}
		if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fleet.Config{Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: "labelled", Namespace: ns, LockType: "leases", TTL: ttl}
	var electors []*fleet.Elector
	for _, name := range pods {
		c := cfg
		c.Extra = []string{"-pod-name=" + name}
		electors = append(electors, startElector(t, c, name))
	}
	leader, _ := waitLeader(t, ttl, electors...)
	follower := without(electors, leader)[0]

	label := func(pod string) string {
		p, err := admin.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod == "app-a" && p.Labels["app"] != "example" {
			t.Errorf("pod %s lost its label app=example: %v", pod, p.Labels)
		}
		return p.Labels["k8s-elector/status"]
	}
	waitLabels := func(want map[string]string) {
		t.Helper()
		deadline := time.Now().Add(ttl + slack)
		for {
			ok := true
			for pod, v := range want {
				ok = ok && label(pod) == v
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod labels: %s=%q %s=%q, want %v", pods[0], label(pods[0]), pods[1], label(pods[1]), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitLabels(map[string]string{leader.ID: "leader", follower.ID: "standby"})
	waitEvent(t, ns, "Lease", "labelled", "LeaderElected")
	waitEvent(t, ns, "Pod", leader.ID, "LeaderElected")

	// A graceful stop labels the old leader standby; the other takes over.
	if err := leader.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, ttl, follower)
	waitLabels(map[string]string{leader.ID: "standby", follower.ID: "leader"})
	waitEvent(t, ns, "Pod", leader.ID, "StoppedLeading")
}
