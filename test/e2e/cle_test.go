package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// cleStrategy is the Lease strategy the test's coordinator writes: a
// third-party one (a qualified name), which the API server's own
// coordinated-election controller leaves alone.
const cleStrategy = "k8s-elector.io/e2e-coordinator"

// TestCoordinatedLeaderElection runs on a control plane of its own, started
// with the CoordinatedLeaderElection gate and coordination.k8s.io/v1beta1,
// so that the API server keeps a Lease's spec.strategy and
// spec.preferredHolder (without the gate it drops them). A coordinator sets
// the strategy: our leader's renewals keep it. It then names the other
// candidate as the preferred holder: our leader hands over to it, in one
// write, and the new leader's renewals keep both fields.
func TestCoordinatedLeaderElection(t *testing.T) {
	parallel(t)
	gated, err := controlplane.StartWith(map[string]string{
		"feature-gates":  "CoordinatedLeaderElection=true",
		"runtime-config": "coordination.k8s.io/v1beta1=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gated.Stop(); err != nil {
			t.Errorf("stopping the gated control plane: %v", err)
		}
	})
	client, err := gated.AdminClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := "cle"
	if err := createNamespace(ctx, client, ns); err != nil {
		t.Fatal(err)
	}
	election := "coordinated"
	cfg := fleet.Config{Binary: binary, Kubeconfig: gated.AdminKubeconfig, Election: election, Namespace: ns, LockType: "leases", TTL: ttl}
	a := startElector(t, cfg, "a")
	waitLeader(t, ttl+slack, a)
	b := startElector(t, cfg, "b")
	time.Sleep(2 * retry) // b has registered, and a's watch has it

	// The coordinator sets the strategy; a keeps it across renewals.
	patchLease(t, client, ns, election, fmt.Sprintf(`{"spec":{"strategy":%q}}`, cleStrategy))
	l := getLease(t, client, ns, election)
	if s := l.Spec.Strategy; s == nil || *s != cleStrategy {
		t.Fatalf("the gated API server kept strategy %v, want %s: is the gate on?", s, cleStrategy)
	}
	renewed := l.Spec.RenewTime.Time
	time.Sleep(3 * retry)
	l = getLease(t, client, ns, election)
	if !l.Spec.RenewTime.After(renewed) || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "a" {
		t.Fatalf("a did not renew in %s: %v", 3*retry, l.Spec)
	}
	if s := l.Spec.Strategy; s == nil || *s != cleStrategy {
		t.Errorf("after a's renewals the strategy is %v, want %s", s, cleStrategy)
	}

	// The coordinator prefers b: a hands over to it at its next renewal.
	at := time.Now()
	patchLease(t, client, ns, election, `{"spec":{"preferredHolder":"b"}}`)
	limit := retry + successorWindow + slack
	for ids := leaders(t, a, b); len(ids) != 1 || ids[0] != "b"; ids = leaders(t, a, b) {
		if len(ids) > 1 {
			t.Fatalf("%v both report is_leader", ids)
		}
		if time.Since(at) > limit {
			t.Fatalf("leaders %v %s after preferredHolder named b, want b", ids, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("b leads %s after preferredHolder named it", time.Since(at).Round(time.Millisecond))
	time.Sleep(3 * retry)
	l = getLease(t, client, ns, election)
	if h := l.Spec.HolderIdentity; h == nil || *h != "b" || !l.Spec.RenewTime.After(at) {
		t.Errorf("the lease after the handover: %+v, want b holding and renewing", l.Spec)
	}
	if s, p := l.Spec.Strategy, l.Spec.PreferredHolder; s == nil || *s != cleStrategy || p == nil || *p != "b" {
		t.Errorf("after b's renewals strategy %v and preferredHolder %v, want %s and b", s, p, cleStrategy)
	}
	if ids := leaders(t, a, b); len(ids) != 1 || ids[0] != "b" {
		t.Errorf("leaders %v, want b alone", ids)
	}
	if got := l.Spec.LeaseTransitions; got == nil || *got != 1 {
		t.Errorf("leaseTransitions %v after one handover, want 1", got)
	}
}

func getLease(t *testing.T, client kubernetes.Interface, ns, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := client.CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// patchLease merge-patches the Lease as a coordinator would: without a
// resourceVersion, so that it never conflicts with a renewal.
func patchLease(t *testing.T, client kubernetes.Interface, ns, name, patch string) {
	t.Helper()
	if _, err := client.CoordinationV1().Leases(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching the lease with %s: %v", patch, err)
	}
}
