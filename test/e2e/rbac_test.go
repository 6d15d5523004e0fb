package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// readManifest decodes one of the shipped manifests in deploy/base into obj.
func readManifest(t *testing.T, name string, obj any) {
	t.Helper()
	path := filepath.Join(controlplane.RepoRoot(), "deploy", "base", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestShippedRoleIsEnoughAndNeeded runs an elector as the shipped
// ServiceAccount: without the shipped Role it may not touch the lock and
// says so; once the Role and RoleBinding are applied, the same process leads.
func TestShippedRoleIsEnoughAndNeeded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)

	var sa corev1.ServiceAccount
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	readManifest(t, "serviceaccount.yaml", &sa)
	readManifest(t, "role.yaml", &role)
	readManifest(t, "rolebinding.yaml", &binding)
	// What `kustomize edit set namespace` does for an overlay.
	for i := range binding.Subjects {
		binding.Subjects[i].Namespace = ns
	}
	// The election the Role is scoped to.
	election := role.Rules[0].ResourceNames[0]

	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the shipped ServiceAccount: %v", err)
	}
	expiry := int64(3600)
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", sa.Name, err)
	}
	kubeconfig, err := cp.WriteKubeconfig(ns+"-sa", &rest.Config{
		Host: cp.Admin.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cp.Admin.CAData},
		BearerToken: tok.Status.Token,
	})
	if err != nil {
		t.Fatal(err)
	}

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

	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the shipped Role: %v", err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the shipped RoleBinding: %v", err)
	}
	waitLeader(t, ttl+slack, e)
	if got := holder(t, ns, "leases", election); got != e.ID {
		t.Fatalf("the lease records holder %q, want %q", got, e.ID)
	}
	// Renewals (update) are allowed too: leadership holds past a TTL.
	time.Sleep(ttl + retry)
	if s, err := e.Status(ctx); err != nil || !s.IsLeader {
		t.Fatalf("after a TTL with the shipped Role, status = %+v, %v; want is_leader", s, err)
	}
}
