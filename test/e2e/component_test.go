package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
)

// The sidecar Component's names, and the election its sample sets.
const (
	sidecarComponent = "components/sidecar"
	sidecarSample    = "components/sidecar-example"
	sidecarName      = "k8s-elector" // the init container
	sampleElection   = "example-app"
	tokenPath        = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// sidecarBuild is a built kustomization that uses the sidecar Component.
type sidecarBuild struct {
	objs        []*unstructured.Unstructured
	deployments []*appsv1.Deployment
	accounts    []*corev1.ServiceAccount
	roles       []*rbacv1.Role
	bindings    []*rbacv1.RoleBinding
}

func splitSidecarBuild(t *testing.T, objs []*unstructured.Unstructured) sidecarBuild {
	t.Helper()
	b := sidecarBuild{objs: objs}
	for _, u := range objs {
		var err error
		switch u.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d)
			b.deployments = append(b.deployments, d)
		case "ServiceAccount":
			sa := &corev1.ServiceAccount{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, sa)
			b.accounts = append(b.accounts, sa)
		case "Role":
			r := &rbacv1.Role{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, r)
			b.roles = append(b.roles, r)
		case "RoleBinding":
			rb := &rbacv1.RoleBinding{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, rb)
			b.bindings = append(b.bindings, rb)
		case "ConfigMap":
			t.Errorf("ConfigMap %s is in the output: the election's ConfigMap is local to the build", u.GetName())
		}
		if err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	return b
}

// dryRunDeployment has the API server admit d (dry run, strict field
// validation) and returns the object as the server would store it: defaulted,
// and without any field this server drops (restartPolicy on an init
// container, were native sidecars off).
func dryRunDeployment(t *testing.T, ns string, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	client, err := dynamic.NewForConfig(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Resource(appsv1.SchemeGroupVersion.WithResource("deployments")).Namespace(ns).Create(
		context.Background(), u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("dry-run create of Deployment %s: %v", u.GetName(), err)
	}
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// sidecarProblems lists what is wrong with the Pod template of a Deployment
// the Component patched, in election election run by ServiceAccount sa.
func sidecarProblems(spec corev1.PodSpec, election, sa string) []string {
	var problems []string
	var sidecar *corev1.Container
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == sidecarName {
			sidecar = &spec.InitContainers[i]
		}
	}
	for _, c := range spec.Containers {
		if c.Name == sidecarName {
			problems = append(problems, "the elector is a regular container, not an init container")
		}
	}
	if sidecar == nil {
		return append(problems, fmt.Sprintf("no init container %q", sidecarName))
	}
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		problems = append(problems, fmt.Sprintf("init container %s has restartPolicy %v, want Always (a native sidecar)", sidecarName, sidecar.RestartPolicy))
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		problems = append(problems, "the Pod does not set automountServiceAccountToken: false")
	}
	if spec.ServiceAccountName != sa {
		problems = append(problems, fmt.Sprintf("the Pod runs as ServiceAccount %q, want %q", spec.ServiceAccountName, sa))
	}
	// The volumes that carry a service-account token.
	tokenVolumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					tokenVolumes[v.Name] = true
				}
			}
		}
		if v.Secret != nil {
			tokenVolumes[v.Name] = true // a legacy token Secret, or anything else in its place
		}
	}
	hasToken := func(c corev1.Container) bool {
		for _, m := range c.VolumeMounts {
			if tokenVolumes[m.Name] || strings.HasPrefix(m.MountPath, tokenPath) {
				return true
			}
		}
		return false
	}
	if !slices.ContainsFunc(sidecar.VolumeMounts, func(m corev1.VolumeMount) bool {
		return tokenVolumes[m.Name] && m.MountPath == tokenPath && m.ReadOnly
	}) {
		problems = append(problems, fmt.Sprintf("the elector does not mount a token volume read-only at %s (mounts %+v)", tokenPath, sidecar.VolumeMounts))
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Name != sidecarName && hasToken(c) {
			problems = append(problems, fmt.Sprintf("container %s mounts a service-account token", c.Name))
		}
	}
	if want := "-election=" + election; !slices.Contains(sidecar.Args, want) {
		problems = append(problems, fmt.Sprintf("the elector's args %q do not hold %s", sidecar.Args, want))
	}
	env := map[string]string{}
	for _, e := range sidecar.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	for name, path := range map[string]string{"ELECTOR_NAMESPACE": "metadata.namespace", "ELECTOR_ID": "metadata.name", "ELECTOR_POD_NAME": "metadata.name"} {
		if env[name] != path {
			problems = append(problems, fmt.Sprintf("the elector's %s comes from %q, want the Downward API's %s", name, env[name], path))
		}
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
			problems = append(problems, fmt.Sprintf("the elector's %s probe is not GET %s", name, path))
		}
	}
	probe("startup", sidecar.StartupProbe, "/readyz")
	probe("readiness", sidecar.ReadinessProbe, "/readyz")
	probe("liveness", sidecar.LivenessProbe, "/healthz")
	sc := sidecar.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		problems = append(problems, fmt.Sprintf("the elector's securityContext %+v is not read-only, unprivileged, without capabilities", sc))
	}
	if sidecar.Resources.Limits.Memory().IsZero() || sidecar.Resources.Requests.Cpu().IsZero() {
		problems = append(problems, "the elector has no memory limit or CPU request")
	}
	return problems
}

// rbacProblems lists what is wrong with the Component's RBAC for election
// and ServiceAccount sa in namespace ns.
func rbacProblems(b sidecarBuild, election, sa, ns string) []string {
	var problems []string
	if len(b.accounts) != 1 || b.accounts[0].Name != sa {
		return append(problems, fmt.Sprintf("want one ServiceAccount %s, got %d", sa, len(b.accounts)))
	}
	if a := b.accounts[0].AutomountServiceAccountToken; a == nil || *a {
		problems = append(problems, "the ServiceAccount does not set automountServiceAccountToken: false")
	}
	if len(b.roles) != 1 || len(b.bindings) != 1 {
		return append(problems, fmt.Sprintf("want one Role and one RoleBinding, got %d and %d", len(b.roles), len(b.bindings)))
	}
	role, rb := b.roles[0], b.bindings[0]
	// Every rule on leases that is not create names the election, and only it.
	var named bool
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "leases") {
			continue
		}
		if slices.Equal(r.Verbs, []string{"create"}) {
			continue // RBAC cannot scope create by name
		}
		if slices.Equal(r.Verbs, []string{"get", "update", "delete", "list", "watch"}) && len(r.ResourceNames) == 0 {
			continue // the candidate registry's Leases: RBAC cannot scope them by name or label
		}
		if !slices.Equal(r.ResourceNames, []string{election}) {
			problems = append(problems, fmt.Sprintf("the Role's rule on leases (%v) names %q, want [%s]", r.Verbs, r.ResourceNames, election))
			continue
		}
		if slices.Contains(r.Verbs, "get") && slices.Contains(r.Verbs, "update") {
			named = true
		}
	}
	if !named {
		problems = append(problems, fmt.Sprintf("no rule of the Role grants get and update on Lease %s", election))
	}
	for _, r := range role.Rules {
		if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.Resources, "secrets") {
			problems = append(problems, fmt.Sprintf("the Role grants more than the election needs: %+v", r))
		}
	}
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name {
		problems = append(problems, fmt.Sprintf("the RoleBinding refers to %s %s, want Role %s", rb.RoleRef.Kind, rb.RoleRef.Name, role.Name))
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa || rb.Subjects[0].Namespace != ns {
		problems = append(problems, fmt.Sprintf("the RoleBinding binds %+v, want ServiceAccount %s/%s", rb.Subjects, ns, sa))
	}
	return problems
}

func reportProblems(t *testing.T, what string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
}

// TestSidecarComponent builds the sidecar Component's sample, has the API
// server admit it strictly, and checks the Pod template the server would
// store: the elector is a native sidecar with the only service-account
// token, and the RBAC names the sample's election.
func TestSidecarComponent(t *testing.T) {
	parallel(t)
	ns := newNamespace(t)
	objs := buildManifests(t, sidecarSample, ns)
	b := splitSidecarBuild(t, objs)
	if len(b.deployments) != 1 || len(b.accounts) != 1 {
		t.Fatalf("the sample builds %d Deployments and %d ServiceAccounts, want one of each", len(b.deployments), len(b.accounts))
	}
	sa := b.accounts[0].Name
	// What kustomize built, then what the API server admits of it.
	reportProblems(t, "built", sidecarProblems(b.deployments[0].Spec.Template.Spec, sampleElection, sa))
	applyManifests(t, objs, true)
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			d := dryRunDeployment(t, ns, u)
			reportProblems(t, "admitted", sidecarProblems(d.Spec.Template.Spec, sampleElection, sa))
		}
	}
	reportProblems(t, "RBAC", rbacProblems(b, sampleElection, sa, ns))
}

// TestSidecarComponentSelectsDeployments uses the Component from a
// kustomization of its own: every Deployment gets the sidecar but one
// annotated k8s-elector/sidecar: "false"; the election's name reaches the
// Role and the flag; and without the election's ConfigMap the build fails.
func TestSidecarComponentSelectsDeployments(t *testing.T) {
	parallel(t)
	ns := newNamespace(t)
	dir := t.TempDir()
	component, err := filepath.Rel(dir, filepath.Join(controlplane.RepoRoot(), "deploy", sidecarComponent))
	if err != nil {
		t.Fatal(err)
	}
	deployment := func(name, annotations string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  annotations: {%[2]s}
spec:
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      initContainers:
        - name: migrate
          image: registry.k8s.io/pause:3.10
      containers:
        - name: app
          image: registry.k8s.io/pause:3.10
`, name, annotations)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", deployment("a", ""))
	write("b.yaml", deployment("b", `"k8s-elector/sidecar": "true"`))
	write("c.yaml", deployment("c", `"k8s-elector/sidecar": "false"`))
	kustomization := fmt.Sprintf(`resources: [a.yaml, b.yaml, c.yaml]
components: [%s]
`, component)
	generator := `configMapGenerator:
  - name: k8s-elector-election
    literals: [election=my-app.v2]
    options:
      annotations: {config.kubernetes.io/local-config: "true"}
`
	write("kustomization.yaml", kustomization+generator)
	objs, err := manifests.Build(dir, ns)
	if err != nil {
		t.Fatal(err)
	}
	b := splitSidecarBuild(t, objs)
	if len(b.deployments) != 3 || len(b.accounts) != 1 {
		t.Fatalf("built %d Deployments and %d ServiceAccounts, want 3 and 1", len(b.deployments), len(b.accounts))
	}
	sa := b.accounts[0].Name
	for _, d := range b.deployments {
		spec := d.Spec.Template.Spec
		switch d.Name {
		case "a", "b":
			reportProblems(t, "Deployment "+d.Name, sidecarProblems(spec, "my-app.v2", sa))
			// The sidecar comes first, so it runs while the Deployment's
			// own init containers do, and they can ask it who leads.
			if names := containerNames(spec.InitContainers); !slices.Equal(names, []string{sidecarName, "migrate"}) {
				t.Errorf("Deployment %s has init containers %q, want [%s migrate]", d.Name, names, sidecarName)
			}
		case "c":
			if names := containerNames(spec.InitContainers); !slices.Equal(names, []string{"migrate"}) {
				t.Errorf("Deployment c, annotated k8s-elector/sidecar: \"false\", has init containers %q", names)
			}
			if spec.ServiceAccountName != "" || len(spec.Volumes) != 0 {
				t.Errorf("Deployment c, annotated k8s-elector/sidecar: \"false\", was patched: ServiceAccount %q, %d volumes", spec.ServiceAccountName, len(spec.Volumes))
			}
		}
	}
	reportProblems(t, "RBAC", rbacProblems(b, "my-app.v2", sa, ns))
	applyManifests(t, objs, true)

	// Without the election's name the build fails, naming the ConfigMap.
	write("kustomization.yaml", kustomization)
	if _, err := manifests.Build(dir, ns); err == nil || !strings.Contains(err.Error(), "k8s-elector-election") {
		t.Errorf("building without the ConfigMap k8s-elector-election: err = %v, want an error naming it", err)
	}
}

func containerNames(cs []corev1.Container) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// TestSidecarComponentRoleIsEnough runs the real binary as the Component's
// ServiceAccount, with the Component's Role and RoleBinding applied, the way
// the sidecar runs in the sample's Pod: the election and flags from the
// Pod template, its own Pod named by -pod-name. It leads, records the Event
// and labels its Pod; the Role is all it needs.
func TestSidecarComponentRoleIsEnough(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	ns := newNamespace(t)
	b := splitSidecarBuild(t, buildManifests(t, sidecarSample, ns))
	var others []*unstructured.Unstructured
	for _, u := range b.objs {
		if u.GetKind() != "Deployment" {
			others = append(others, u)
		}
	}
	applyManifests(t, others, false)
	if len(b.deployments) != 1 {
		t.Fatalf("the sample builds %d Deployments", len(b.deployments))
	}
	// A Pod of the sample's template: no kubelet runs it, but the elector
	// can label it.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "example-app-0", Namespace: ns, Labels: b.deployments[0].Spec.Template.Labels},
		Spec:       b.deployments[0].Spec.Template.Spec,
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, c := range pod.Spec.InitContainers {
		if c.Name == sidecarName {
			args = c.Args
		}
	}
	election, ok := strings.CutPrefix(args[0], "-election=")
	if !ok {
		t.Fatalf("the sidecar's first argument is %q, want -election=", args[0])
	}

	sa := pod.Spec.ServiceAccountName
	kubeconfig := serviceAccountKubeconfig(t, ns, sa, ns+"-sidecar")
	e := startElector(t, fleet.Config{
		Binary: binary, Kubeconfig: kubeconfig, Election: election,
		Namespace: ns, LockType: "leases", TTL: ttl,
		Extra: []string{"-pod-name=" + pod.Name},
	}, pod.Name)
	waitLeader(t, ttl+slack, e)
	waitEvent(t, ns, "Lease", election, "LeaderElected")
	deadline := time.Now().Add(ttl + slack)
	for {
		var labels map[string]string
		p, err := admin.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil {
			labels = p.Labels
		}
		if labels["k8s-elector/status"] == "leader" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pod %s not labelled k8s-elector/status=leader within %s (labels %v, %v)", pod.Name, ttl+slack, labels, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(e.Logs(), "forbidden") {
		t.Errorf("the elector was refused something with the Component's Role:\n%s", e.Logs())
	}
}
