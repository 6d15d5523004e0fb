package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
)

// serviceAccountToken returns a token for the ServiceAccount sa in ns from
// the TokenRequest API, valid for an hour.
func serviceAccountToken(t *testing.T, ns, sa string) string {
	t.Helper()
	expiry := int64(3600)
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tok.Status.Token
}

// serviceAccountKubeconfig writes a kubeconfig named name that reaches the
// API server as the ServiceAccount sa in ns.
func serviceAccountKubeconfig(t *testing.T, ns, sa, name string) string {
	t.Helper()
	kubeconfig, err := cp.WriteKubeconfig(name, &rest.Config{
		Host: cp.Admin.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cp.Admin.CAData},
		BearerToken: serviceAccountToken(t, ns, sa),
	})
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// buildManifests builds a kustomization under deploy/ for namespace ns.
func buildManifests(t *testing.T, dir, ns string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", dir), ns)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func applyManifests(t *testing.T, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	a, err := manifests.NewApplier(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Create(context.Background(), objs, dryRun); err != nil {
		t.Fatal(err)
	}
}

// TestManifestsAreAccepted has the API server validate and admit every
// shipped manifest (kubectl apply -k --dry-run=server), strictly: an unknown
// or misspelt field fails.
func TestManifestsAreAccepted(t *testing.T) {
	parallel(t)
	ns := newNamespace(t)
	for _, dir := range []string{"base", "example", "flowschema", "singleton"} {
		t.Run(dir, func(t *testing.T) {
			objs := buildManifests(t, dir, ns)
			if len(objs) == 0 {
				t.Fatalf("deploy/%s builds no objects", dir)
			}
			applyManifests(t, objs, true)
		})
	}
}

// TestShippedRoleIsEnoughAndNeeded runs an elector as the shipped
// ServiceAccount: without the shipped Role it may not touch the lock and
// says so; once the Role and RoleBinding are applied, the same process leads.
func TestShippedRoleIsEnoughAndNeeded(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	ns := newNamespace(t)

	// deploy/base, split into the ServiceAccount and its permissions.
	var account, grants []*unstructured.Unstructured
	var role rbacv1.Role
	for _, u := range buildManifests(t, "base", ns) {
		switch u.GetKind() {
		case "ServiceAccount":
			account = append(account, u)
		case "Role":
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
				t.Fatal(err)
			}
			grants = append(grants, u)
		default:
			grants = append(grants, u)
		}
	}
	if len(account) != 1 || role.Name == "" {
		t.Fatalf("deploy/base must hold one ServiceAccount and a Role")
	}
	// The election the Role is scoped to.
	election := role.Rules[0].ResourceNames[0]
	applyManifests(t, account, false)
	sa := account[0].GetName()
	kubeconfig := serviceAccountKubeconfig(t, ns, sa, ns+"-sa")

	e := startElector(t, fleet.Config{
		Binary: binary, Kubeconfig: kubeconfig, Election: election,
		Namespace: ns, LockType: "leases", TTL: ttl,
	}, "restricted")

	// Without the Role: a clear error naming the verb and the resource, and
	// no leadership, over several retry periods.
	want := `cannot get resource \"leases\" in API group \"coordination.k8s.io\"`
	deadline := time.Now().Add(ttl + slack)
	for !strings.Contains(e.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying %s within %s", want, ttl+slack)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(e.Logs(), "forbidden") {
		t.Errorf("the error does not say forbidden")
	}
	for range 3 * int(ttl/retry) {
		s, err := e.Status(ctx)
		if err == nil && s.IsLeader {
			t.Fatal("an elector without permission reports is_leader")
		}
		time.Sleep(retry / 3)
	}
	// It must not hot-loop: the same error repeated is logged at debug only.
	if n := strings.Count(e.Logs(), want); n > 2 {
		t.Errorf("the forbidden error was logged %d times at the default level; want it once until it changes", n)
	}

	applyManifests(t, grants, false)
	waitLeader(t, ttl+slack, e)
	if got := holder(t, ns, "leases", election); got != e.ID {
		t.Fatalf("the lease records holder %q, want %q", got, e.ID)
	}
	// With -events on (the default), the shipped Role lets it record Events.
	waitEvent(t, ns, "Lease", election, "LeaderElected")
	// Renewals (update) are allowed too: leadership holds past a TTL.
	time.Sleep(ttl + retry)
	if s, err := e.Status(ctx); err != nil || !s.IsLeader {
		t.Fatalf("after a TTL with the shipped Role, status = %+v, %v; want is_leader", s, err)
	}

	// The Role removed mid-run: the leader cannot renew, steps down within
	// the renew deadline (by its valid-until at the latest), says why, and
	// does not hot-loop.
	logsBefore := len(e.Logs())
	if err := admin.RbacV1().RoleBindings(ns).Delete(ctx, binding(grants), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	for {
		s, err := e.Status(ctx)
		if err == nil && !s.IsLeader {
			break
		}
		if time.Since(removed) > ttl+slack {
			t.Fatalf("still leading %s after its Role was removed", ttl+slack)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * retry) // retries with the Role gone
	after := e.Logs()[logsBefore:]
	if !strings.Contains(after, "forbidden") {
		t.Errorf("no forbidden error logged after the Role was removed:\n%s", after)
	}
	if n := strings.Count(after, `"level":"error"`); n > 6 {
		t.Errorf("%d error lines in %s after the Role was removed; want a few, not one per attempt:\n%s", n, time.Since(removed), after)
	}
}

// binding returns the name of the RoleBinding among objs.
func binding(objs []*unstructured.Unstructured) string {
	for _, u := range objs {
		if u.GetKind() == "RoleBinding" {
			return u.GetName()
		}
	}
	return ""
}
