package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// imageEnv names the image the suite runs: `make e2e` (and so `make test`
// and CI) builds it and always sets it, to $(IMAGE):$(TAG)-<host arch>.
const imageEnv = "E2E_IMAGE"

// saDir is where a Pod's service-account token, CA and namespace are
// mounted, and where client-go's in-cluster configuration reads them.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// TestImage runs the image as a Pod would run it, with podman: in-cluster
// configuration (KUBERNETES_SERVICE_HOST and _PORT, a ServiceAccount token
// from the TokenRequest API bound by deploy/base's Role, the API server's
// CA and the namespace mounted read-only at saDir), a read-only root
// filesystem, UID 65532, no capabilities. Three containers elect one leader;
// podman stop of the leader releases the lock, the container exits 0, and
// another leads within a second. A container whose token lacks the Role says
// it is forbidden, once, and never leads.
//
// Without E2E_IMAGE the test skips; `make e2e` always sets it. With it set, a
// missing or broken podman fails the test.
func TestImage(t *testing.T) {
	image := os.Getenv(imageEnv)
	if image == "" {
		t.Skipf("%s is not set; `make e2e` (and `make test`, which CI runs) builds the image and sets it", imageEnv)
	}
	pm := newPodman(t, image)
	ctx := context.Background()

	// The container dials the API server as in-cluster clients do, by IP:
	// its serving certificate must be valid for that address.
	apiURL, err := url.Parse(cp.Admin.Host)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(apiURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	checkServingCert(t, apiURL.Host, host, cp.Admin.CAData)

	// deploy/base in one namespace (the electors), only its ServiceAccount
	// in another (the one without the Role).
	granted, bare := newNamespace(t), newNamespace(t)
	objs := buildManifests(t, "base", granted)
	applyManifests(t, objs, false)
	election, sa := roleElection(t, objs), kindName(objs, "ServiceAccount")
	for _, u := range buildManifests(t, "base", bare) {
		if u.GetKind() == "ServiceAccount" {
			applyManifests(t, []*unstructured.Unstructured{u}, false)
		}
	}
	env := []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port}
	grantedDir := serviceAccountDir(t, granted, sa)

	var electors []*fleet.Elector
	byID := map[string]*container{}
	for i := range 3 {
		c := pm.run(t, fmt.Sprintf("image-%d", i), granted, election, grantedDir, env)
		electors = append(electors, c.Elector)
		byID[c.ID] = c
	}
	leader, took := waitLeader(t, ttl+slack, electors...)
	t.Logf("%s leads, %s after all three answered", leader.ID, took.Round(time.Millisecond))
	waitAgree(t, maxRetry+slack, leader, electors...)
	if got := holder(t, granted, "leases", election); got != leader.ID {
		t.Fatalf("the lease records holder %q, want %q", got, leader.ID)
	}
	for _, e := range electors {
		c := byID[e.ID]
		if code := getCode(t, e, "/readyz"); code != http.StatusOK {
			t.Errorf("GET /readyz on %s: %d, want 200", e.ID, code)
		}
		c.checkConfined(t)
	}

	// podman stop: SIGTERM to the leader, which releases the lock.
	old := byID[leader.ID]
	stopped := make(chan error, 1)
	begin := time.Now()
	go func() { stopped <- pm.command("stop", "--time", "10", old.name).Run() }()
	next, took := waitLeader(t, ttl, without(electors, leader)...)
	t.Logf("%s leads %s after podman stop of %s", next.ID, took.Round(time.Millisecond), leader.ID)
	if took > time.Second {
		t.Errorf("after podman stop, %s led only after %s; want within a second", next.ID, took)
	}
	code, err := old.wait(15 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("podman stop %s: %v", old.name, err)
	}
	t.Logf("%s exited %d, %s after podman stop", leader.ID, code, time.Since(begin).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("%s exited %d after podman stop, want 0", leader.ID, code)
	}
	logs := old.Logs()
	if stackTrace.MatchString(logs) {
		t.Errorf("%s printed a stack trace on SIGTERM:\n%s", leader.ID, logs)
	}
	if !strings.Contains(logs, "released lock") {
		t.Errorf("%s did not log that it released the lock:\n%s", leader.ID, logs)
	}
	if got := holder(t, granted, "leases", election); got != next.ID {
		t.Errorf("the lease records holder %q, want %q", got, next.ID)
	}

	// A token without the Role: forbidden, said once, never the leader.
	c := pm.run(t, "image-forbidden", bare, election, serviceAccountDir(t, bare, sa), env)
	started := time.Now()
	want := `cannot get resource \"leases\" in API group \"coordination.k8s.io\"`
	deadline := time.Now().Add(ttl + slack)
	for !strings.Contains(c.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying %s within %s:\n%s", want, ttl+slack, c.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 3 * int(ttl/retry) {
		s, err := c.Status(ctx)
		if err == nil && s.IsLeader {
			t.Fatal("a container without the Role reports is_leader")
		}
		time.Sleep(retry / 3)
	}
	s, err := c.Status(ctx)
	if err != nil || s.IsLeader {
		t.Errorf("the container without the Role: status %+v, %v; want is_leader false", s, err)
	}
	logs = c.Logs()
	if !strings.Contains(logs, "forbidden") {
		t.Errorf("the error does not say forbidden:\n%s", logs)
	}
	running := time.Since(started).Round(time.Second)
	// The lock's error (the candidate Lease's is another, logged once too).
	lockErr := `leases.coordination.k8s.io \"` + election + `\" is forbidden`
	if n := strings.Count(logs, lockErr); n != 1 {
		t.Errorf("the forbidden error was logged %d times in %s of retries; want once:\n%s", n, running, logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, want) {
			t.Logf("%s, in %s of retries, logged once: %s", c.ID, running, line)
		}
	}
}

// podman runs the image's containers, each named after the test process so
// that a leftover is easy to find, and removed when the test ends.
type podman struct {
	image string
	env   []string
}

func newPodman(t *testing.T, image string) *podman {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("%s is set but podman is not on PATH (%v): make e2e installs it with hack/install-podman.sh", imageEnv, err)
	}
	env := os.Environ()
	if os.Getenv("CONTAINERS_CONF") == "" {
		// What the Makefile exports: runc, cgroupfs, no default ulimits.
		env = append(env, "CONTAINERS_CONF="+filepath.Join(controlplane.RepoRoot(), "hack", "containers.conf"))
	}
	pm := &podman{image: image, env: env}
	if out, err := pm.command("image", "exists", image).CombinedOutput(); err != nil {
		t.Fatalf("%s=%s: no such image in podman's store (%v %s): make image builds it", imageEnv, image, err, out)
	}
	return pm
}

// command is podman with the runtime and cgroup manager that work here.
func (pm *podman) command(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}, args...)...)
	cmd.Env = pm.env
	return cmd
}

// container is one running container of the image; its Elector (ID and
// address only) answers the suite's status polls.
type container struct {
	*fleet.Elector
	pm     *podman
	name   string
	cmd    *exec.Cmd
	log    *fleet.SyncBuffer
	done   chan struct{}
	waited error
}

// run starts a container of an elector with identity id in election of ns,
// with the service-account files in dir, serving HTTP on a free loopback
// port of the host's network.
func (pm *podman) run(t *testing.T, id, ns, election, dir string, env []string) *container {
	t.Helper()
	addr := freeLoopback(t)
	c := &container{
		Elector: &fleet.Elector{ID: id, Addr: addr},
		pm:      pm,
		name:    fmt.Sprintf("k8s-elector-e2e-%d-%s", os.Getpid(), id),
		log:     &fleet.SyncBuffer{},
		done:    make(chan struct{}),
	}
	args := []string{"run", "--rm", "--name", c.name, "--pull=never",
		"--network=host", "--read-only", "--user=65532",
		"--cap-drop=all", "--security-opt=no-new-privileges",
		"--volume=" + dir + ":" + saDir + ":ro"}
	for _, kv := range env {
		args = append(args, "--env="+kv)
	}
	args = append(args, pm.image,
		"-election="+election, "-id="+id, "-http="+addr,
		"-namespace="+ns, "-ttl="+ttl.String())
	c.cmd = pm.command(args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("podman run %s: %v", c.name, err)
	}
	go func() {
		c.waited = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = pm.command("rm", "--force", "--time", "0", c.name).Run()
			<-c.done
		}
		if t.Failed() {
			t.Logf("log of container %s:\n%s", c.name, c.Logs())
		}
	})
	// Wait for it to answer (or exit), so that a container that cannot
	// start fails here with its output.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("container %s exited before it answered (%v):\n%s", c.name, c.waited, c.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s does not answer on %s after 30s: %v\n%s", c.name, addr, err, c.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns what the container has written so far.
func (c *container) Logs() string { return c.log.String() }

// wait waits up to limit for the container to exit and returns its exit
// code, which podman run passes on.
func (c *container) wait(limit time.Duration) (int, error) {
	select {
	case <-c.done:
	case <-time.After(limit):
		return -1, fmt.Errorf("container %s did not exit within %s", c.name, limit)
	}
	var exit *exec.ExitError
	if errors.As(c.waited, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, c.waited
}

// checkConfined checks, from the host's /proc, that the container's process
// runs as UID and GID 65532 on a read-only root filesystem.
func (c *container) checkConfined(t *testing.T) {
	t.Helper()
	out, err := c.pm.command("inspect", "--format", "{{.State.Pid}}", c.name).Output()
	if err != nil {
		t.Errorf("podman inspect %s: %v", c.name, err)
		return
	}
	pid := strings.TrimSpace(string(out))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Errorf("%s: %v", c.name, err)
		return
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			for _, id := range f[1:] {
				if id != "65532" {
					t.Errorf("%s runs with %s, want 65532 for all", c.name, line)
					break
				}
			}
		}
	}
	mounts, err := os.Open("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Errorf("%s: %v", c.name, err)
		return
	}
	defer mounts.Close()
	root := ""
	sc := bufio.NewScanner(mounts)
	for sc.Scan() {
		// mount-id parent-id major:minor root mount-point options ...
		if f := strings.Fields(sc.Text()); len(f) > 5 && f[4] == "/" {
			root = f[5]
		}
	}
	if !strings.HasPrefix(root, "ro,") && root != "ro" {
		t.Errorf("%s: the root filesystem is mounted %q, want read-only", c.name, root)
	}
}

// serviceAccountDir writes what the kubelet mounts at saDir for sa in ns:
// a token from the TokenRequest API, the API server's CA and the namespace.
// The files are world-readable, as the kubelet makes them by default, so
// that UID 65532 can read them.
func serviceAccountDir(t *testing.T, ns, sa string) string {
	t.Helper()
	token := serviceAccountToken(t, ns, sa)
	dir := filepath.Join(t.TempDir(), ns)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"token": []byte(token), "ca.crt": cp.Admin.CAData, "namespace": []byte(ns),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkServingCert fails the test unless the API server at addr presents a
// certificate that ca signed for host.
func checkServingCert(t *testing.T, addr, host string, ca []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("the control plane's CA is not PEM")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: host})
	if err != nil {
		t.Fatalf("the API server's serving certificate is not valid for %s, which in-cluster clients dial: %v", host, err)
	}
	_ = conn.Close()
}

// roleElection returns the election deploy/base's Role is scoped to.
func roleElection(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() != "Role" {
			continue
		}
		var role rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
			t.Fatal(err)
		}
		if len(role.Rules) > 0 && len(role.Rules[0].ResourceNames) > 0 {
			return role.Rules[0].ResourceNames[0]
		}
	}
	t.Fatal("deploy/base has no Role scoped to an election")
	return ""
}

// kindName returns the name of the object of kind among objs.
func kindName(objs []*unstructured.Unstructured, kind string) string {
	for _, u := range objs {
		if u.GetKind() == kind {
			return u.GetName()
		}
	}
	return ""
}

// freeLoopback returns a free port on 127.0.0.1 as host:port, from the
// range the kernel does not hand out (fleet.FreeAddr); the container binds
// it moments later.
func freeLoopback(t *testing.T) string {
	t.Helper()
	addr, err := fleet.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// getCode returns the status code of GET path on e.
func getCode(t *testing.T, e *fleet.Elector, path string) int {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + e.Addr + path)
	if err != nil {
		t.Errorf("GET %s on %s: %v", path, e.ID, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestImageDockerfile parses the Dockerfile as BuildKit does (docker buildx),
// so that the path podman and buildah do not take, --target compiled, is
// checked too; and checks the build context .dockerignore leaves.
func TestImageDockerfile(t *testing.T) {
	parallel(t)
	root := controlplane.RepoRoot()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("BuildKit does not parse the Dockerfile: %v", err)
	}
	for _, w := range ast.Warnings {
		t.Errorf("BuildKit warns: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, _ []parser.Range) {
		t.Errorf("BuildKit's check %s: %s", rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		t.Fatalf("BuildKit does not parse the Dockerfile's instructions: %v", err)
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	if got := args["BASE"]; got != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("ARG BASE defaults to %q, want distroless/static:nonroot", got)
	}

	// Each stage's dependencies: its base, if a stage, and COPY --from.
	byName := map[string]instructions.Stage{}
	deps := map[string][]string{}
	copies := map[string][]string{} // stage: the context paths it copies
	for _, s := range stages {
		byName[s.Name] = s
		if _, ok := byName[s.BaseName]; ok {
			deps[s.Name] = append(deps[s.Name], s.BaseName)
		}
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok {
				if cp.From != "" {
					deps[s.Name] = append(deps[s.Name], cp.From)
				} else {
					copies[s.Name] = append(copies[s.Name], cp.SourcePaths...)
				}
			}
		}
	}
	var closure func(string, map[string]bool) map[string]bool
	closure = func(name string, seen map[string]bool) map[string]bool {
		if !seen[name] {
			seen[name] = true
			for _, d := range deps[name] {
				closure(d, seen)
			}
		}
		return seen
	}
	last := stages[len(stages)-1].Name
	if last != "image" {
		t.Fatalf("the last stage, the default target, is %q, want image", last)
	}
	if closure("image", map[string]bool{})["build"] {
		t.Errorf("the default target depends on the build stage: building it would need the Go image")
	}
	if !closure("compiled", map[string]bool{})["build"] {
		t.Errorf("--target compiled does not use the build stage")
	}
	for _, name := range []string{"image", "compiled"} {
		if !closure(name, map[string]bool{})["runtime"] {
			t.Errorf("stage %s is not built on the runtime stage (labels, user, entrypoint)", name)
		}
	}
	if got := strings.Join(copies["image"], " "); got != "bin/linux_${TARGETARCH}/k8s-elector" {
		t.Errorf("the default target copies %q, want bin/linux_${TARGETARCH}/k8s-elector", got)
	}
	if byName["build"].Platform != "$BUILDPLATFORM" {
		t.Errorf("the build stage runs on %q, want $BUILDPLATFORM (cross-compile, no emulation)", byName["build"].Platform)
	}

	// The context: both targets' inputs, and nothing else that matters.
	ig, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer ig.Close()
	patterns, err := ignorefile.ReadAll(ig)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"bin/linux_amd64/k8s-elector": true, "bin/linux_arm64/k8s-elector": true,
		"go.mod": true, "go.sum": true, "elector.go": true, "cmd/k8s-elector/main.go": true,
		"internal/record/record.go": true,
		"bin/k8s-elector":           false, "elector_test.go": false, "internal/record/testdata/x": false,
		"test/e2e/go.mod": false, "README.md": false, ".git/HEAD": false, "deploy/base/role.yaml": false,
	} {
		excluded, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatal(err)
		}
		if excluded == want {
			t.Errorf(".dockerignore: %s in the context = %v, want %v", path, !excluded, want)
		}
	}
}
