package e2e

import (
	"context"
	"net"
	"net/url"
	"os/exec"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	elector "github.com/k8s-elector/elector"
)

// cutOff drops, on the node, every packet from the Pod's IP to the API
// server, open connections included: a partition between that elector and
// the API server that leaves the kubelet, and so the Pod's deletion,
// working. The returned function heals it; it is also called when t ends.
func cutOff(t *testing.T, nc *nodeCluster, podIP string) (heal func()) {
	t.Helper()
	u, err := url.Parse(nc.Admin.Host)
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	rule := []string{"INPUT", "-s", podIP, "-p", "tcp", "--dport", port, "-j", "DROP"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables -I %v: %v: %s", rule, err, out)
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		if out, err := exec.Command("iptables", append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
			t.Errorf("iptables -D %v: %v: %s", rule, err, out)
		}
	}
	t.Cleanup(heal)
	return heal
}

// TestNodeCutOffLeaderDeleted deletes the leader's Pod while its elector is
// cut off from the API server: the elector cannot release, so the Pod ends
// within its terminationGracePeriodSeconds, its elector exits 0 on its own
// rather than being killed, and no other Pod leads before the old leader's
// lease has run out. How long the elector took to exit is logged against
// the shutdown budget plus the Pod label's second (the sizing
// docs/guarantees.md gives).
func TestNodeCutOffLeaderDeleted(t *testing.T) {
	nodeTest(t)
	nc := startNode(t)
	ctx := context.Background()
	ns, service := applyExample(t, nc, "node-cutoff")
	leader := settled(t, nc, ns, service, 3, nodeWaitChange, "")
	timings := elector.DefaultTimings(0)

	leaseWatch, err := nc.client.CoordinationV1().Leases(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=k8s-elector"})
	if err != nil {
		t.Fatal(err)
	}
	defer leaseWatch.Stop()
	podWatch, err := nc.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + leader.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer podWatch.Stop()

	cutOff(t, nc, leader.Status.PodIP)
	cut := time.Now()
	deleted := cut
	if err := nc.client.CoreV1().Pods(ns).Delete(ctx, leader.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the leader's Pod %s: %v", leader.Name, err)
	}

	// The old leader's last renewal as the API server has it, and the
	// arrival of the next holder; the Pod's last status until it is gone.
	var lastRenew time.Time // the old holder's last renew time, from the Lease (one host: one clock)
	var next *coordinationv1.Lease
	var nextAt time.Time
	var last *corev1.Pod
	var gone time.Time
	timeout := time.After(2 * timings.TTL)
	for next == nil || gone.IsZero() {
		select {
		case ev, ok := <-leaseWatch.ResultChan():
			if !ok {
				t.Fatal("the Lease watch ended")
			}
			l, isLease := ev.Object.(*coordinationv1.Lease)
			if !isLease {
				continue
			}
			switch h := ptrString(l.Spec.HolderIdentity); {
			case h == leader.Name && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(lastRenew):
				lastRenew = l.Spec.RenewTime.Time
			case h != "" && next == nil:
				next, nextAt = l, time.Now()
			}
		case ev, ok := <-resultChan(podWatch):
			if !ok {
				t.Fatal("the Pod watch ended")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod {
				last = p
			}
			if ev.Type == watch.Deleted {
				gone = time.Now()
				podWatch.Stop()
				podWatch = nil
			}
		case <-timeout:
			t.Fatalf("within %s of deleting %s: Pod gone %v, next holder %v", 2*timings.TTL, leader.Name, !gone.IsZero(), next != nil)
		}
	}
	if lastRenew.IsZero() {
		t.Fatal("the Lease watch showed no record of the old leader")
	}
	grace := time.Duration(*leader.Spec.TerminationGracePeriodSeconds) * time.Second
	t.Logf("%s cut off and deleted: Pod gone %s later (terminationGracePeriodSeconds %s); %s led %s after the cut, %s after the old leader's last renewal",
		leader.Name, gone.Sub(deleted).Round(time.Millisecond), grace, ptrString(next.Spec.HolderIdentity),
		nextAt.Sub(cut).Round(time.Millisecond), nextAt.Sub(lastRenew).Round(time.Millisecond))
	if took := gone.Sub(deleted); took > grace {
		t.Errorf("the cut-off leader's Pod took %s to end, want within its terminationGracePeriodSeconds (%s)", took, grace)
	}
	if early := nextAt.Sub(lastRenew); early < timings.TTL {
		t.Errorf("%s led %s after the old leader's last renewal, before its lease of %s ran out", ptrString(next.Spec.HolderIdentity), early, timings.TTL)
	}
	// The elector ended on its own, not by the kubelet's SIGKILL at the end
	// of the grace period. How long it took, from the deletion (the
	// application stops first), is logged: see the note.
	budget := timings.ShutdownBudget + time.Second
	for _, s := range last.Status.InitContainerStatuses {
		if s.Name != sidecarName {
			continue
		}
		switch term := s.State.Terminated; {
		case term == nil:
			t.Errorf("the last status of %s has no terminated elector", leader.Name)
		case term.ExitCode != 0:
			t.Errorf("the cut-off elector exited %d (%s), want 0: it must end on its own within the budget", term.ExitCode, term.Reason)
		default:
			// The kubelet's clock is this host's: the test's own.
			took := term.FinishedAt.Sub(deleted.Truncate(time.Second))
			t.Logf("the elector exited 0, %s after the deletion by the kubelet's whole-second clock (its budget: %s, after the application)", took, budget)
		}
	}
}
