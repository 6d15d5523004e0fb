package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// handoverCmd runs `k8s-elector handover` with args and returns its exit
// code, stdout and stderr.
func handoverCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, append([]string{"handover"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String())
}

// lockOnlyKubeconfig returns a kubeconfig of a ServiceAccount that may get
// and update the election's Lease and nothing else.
func lockOnlyKubeconfig(t *testing.T, ns, election string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "operator"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "handover"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
			ResourceNames: []string{election}, Verbs: []string{"get", "update"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "handover"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "handover"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "operator", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return serviceAccountKubeconfig(t, ns, "operator", ns+"-operator")
}

// TestHandoverCommand runs `k8s-elector handover` from outside the fleet,
// with RBAC on the lock object only: to a named candidate, and to the best
// one, it exits 0 once the new leader leads and prints it; to an unknown
// candidate, to an unready one, to the leader itself, or with a timeout too
// short, it exits 1 with one line, and leadership stays; bad input exits 2
// before anything touches the cluster; two racing requests end with one
// leader, one of them honoured.
func TestHandoverCommand(t *testing.T) {
	parallel(t)
	ns := newNamespace(t)
	election := "handover"
	cfg := fleet.Config{Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: election, Namespace: ns, LockType: "leases", TTL: ttl}
	a := startElector(t, cfg, "a")
	waitLeader(t, ttl+slack, a)
	b := startElector(t, cfg, "b")
	unready := cfg
	unready.Extra = []string{"-ready-url=http://127.0.0.1:1/never"}
	u := startElector(t, unready, "u")
	c := startElector(t, cfg, "c")
	all := []*fleet.Elector{a, b, u, c}
	time.Sleep(2 * retry) // every candidate has registered
	kubeconfig := lockOnlyKubeconfig(t, ns, election)
	base := []string{"-election=" + election, "-namespace=" + ns, "-kubeconfig=" + kubeconfig, "-timeout=" + (3 * ttl).String()}

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"an unknown candidate", []string{"-to=zz"}, 1, "no candidate zz"},
		{"an unready candidate", []string{"-to=u"}, 1, "candidate u is not ready"},
		{"the leader itself", []string{"-to=a"}, 1, "a leads election"},
		{"a timeout too short", []string{"-to=b", "-timeout=1ns"}, 1, "timed out after 1ns"},
	} {
		code, out, errOut := handoverCmd(t, append(base, tc.args...)...)
		t.Logf("handover to %s: exit %d, %q", tc.name, code, errOut)
		if code != tc.code || !strings.Contains(errOut, tc.stderr) || strings.Count(errOut, "\n") > 0 || out != "" {
			t.Errorf("handover to %s: exit %d, stdout %q, stderr %q; want exit %d and one line saying %q", tc.name, code, out, errOut, tc.code, tc.stderr)
		}
		if ids := leaders(t, all...); len(ids) != 1 || ids[0] != "a" {
			t.Fatalf("after handover to %s: leaders %v, want a", tc.name, ids)
		}
	}
	for _, bad := range [][]string{{"-to=x\ty"}, {"-election="}, {"-timeout=-1s"}, {"-lock-type=secrets"}} {
		code, _, errOut := handoverCmd(t, append(append([]string{}, base...), bad...)...)
		if code != 2 {
			t.Errorf("handover %v: exit %d (%q), want 2", bad, code, errOut)
		}
	}

	begin := time.Now()
	code, out, errOut := handoverCmd(t, append(base, "-to=b")...)
	t.Logf("handover to b: exit %d, %q, %q, %s", code, out, errOut, time.Since(begin).Round(time.Millisecond))
	if code != 0 || out != "b" {
		t.Fatalf("handover to b: exit %d, stdout %q, stderr %q; want 0 and b", code, out, errOut)
	}
	if got := holder(t, ns, "leases", election); got != "b" {
		t.Fatalf("the lease names %q after the handover to b", got)
	}
	code, out, errOut = handoverCmd(t, base...)
	t.Logf("handover to the best: exit %d, %q, %q", code, out, errOut)
	if code != 0 || (out != "a" && out != "c") {
		t.Fatalf("handover to the best: exit %d, stdout %q, stderr %q; want 0 and a ready candidate", code, out, errOut)
	}

	// Two requests at once, to a and b, once their cooldowns (a TTL after
	// they handed over, in which they are not ready) have passed.
	time.Sleep(ttl + 2*retry)
	type result struct {
		code     int
		out, err string
	}
	results := make(chan result, 2)
	for _, to := range []string{"a", "b"} {
		go func() {
			code, out, errOut := handoverCmd(t, append(base, "-to="+to)...)
			results <- result{code, out, errOut}
		}()
	}
	r1, r2 := <-results, <-results
	t.Logf("racing handovers: %+v, %+v", r1, r2)
	next, _ := waitLeader(t, ttl+slack, all...)
	// Requests that overlap (both read the same leader) are honoured once:
	// the other is refused. A command that starts late on a busy machine
	// reads the new leader, and its request to that one is honoured in
	// turn: then both succeed, each naming its own candidate, the later
	// one leading.
	if r1.code == 0 && r2.code == 0 && r1.out != r2.out && (r1.out == next.ID || r2.out == next.ID) {
		t.Logf("the two requests did not overlap: both were honoured, one after the other; %s leads", next.ID)
		return
	}
	honoured := 0
	for _, r := range []result{r1, r2} {
		switch {
		case r.code == 0 && r.out == next.ID:
			honoured++
		case r.code == 1 && r.out == "":
		default:
			t.Errorf("a racing handover: exit %d, %q, %q; want 0 naming %s, or 1", r.code, r.out, r.err, next.ID)
		}
	}
	if honoured != 1 {
		t.Errorf("%d of the racing handovers were honoured, want 1", honoured)
	}
}

// leaders returns the IDs of the electors that say they lead.
func leaders(t *testing.T, electors ...*fleet.Elector) []string {
	t.Helper()
	var ids []string
	for _, e := range electors {
		if s, err := e.Status(context.Background()); err == nil && s.IsLeader {
			ids = append(ids, e.ID)
		}
	}
	return ids
}
