package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// badInput runs the real binary with flags it must refuse, against an API
// server that counts every request it gets.
type badInput struct {
	kubeconfig string
	env        []string // the environment without ELECTOR_ variables
	requests   *atomic.Int64
}

// newBadInput starts the counting API server and writes a kubeconfig named
// name for it.
func newBadInput(t *testing.T, name string) *badInput {
	t.Helper()
	b := &badInput{requests: new(atomic.Int64)}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(api.Close)
	var err error
	if b.kubeconfig, err = cp.WriteKubeconfig(name, &rest.Config{Host: api.URL}); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ELECTOR_") {
			b.env = append(b.env, kv)
		}
	}
	return b
}

// command returns the binary with args, in b's environment.
func (b *badInput) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = b.env
	return cmd
}

// refused runs the binary with args and checks that it exits 2 within 5s,
// with nothing on stdout and one line of error on stderr that contains want.
func (b *badInput) refused(t *testing.T, args []string, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := b.command(ctx, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	begin := time.Now()
	err := cmd.Run()
	took := time.Since(begin)
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("%v: %v", args, err)
	}
	if code != 2 {
		t.Errorf("exit code %d, want 2; stderr: %s", code, errOut.String())
	}
	if took > 5*time.Second {
		t.Errorf("took %s to exit", took)
	}
	if out.Len() > 0 {
		t.Errorf("stdout: %q, want nothing", out.String())
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		if !strings.HasPrefix(line, "Run k8s-elector -h") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "k8s-elector: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr: %q, want one line of error naming %q", errOut.String(), want)
	}
	t.Logf("%s", strings.Join(lines, " | "))
}

// untouched checks that no elector given bad input reached the API server.
func (b *badInput) untouched(t *testing.T) {
	t.Helper()
	if n := b.requests.Load(); n != 0 {
		t.Errorf("the API server got %d requests from electors given bad input, want none", n)
	}
}

// with returns base followed by args, without changing base.
func with(base []string, args ...string) []string { return append(slices.Clone(base), args...) }
