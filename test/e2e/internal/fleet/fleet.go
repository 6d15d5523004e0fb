// Package fleet runs k8s-elector processes and reads their status over HTTP,
// for the end-to-end suite and the demo.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	elector "github.com/k8s-elector/elector"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Build compiles the k8s-elector binary from the repository at root into dir
// and returns its path.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "k8s-elector")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/k8s-elector")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building k8s-elector: %w\n%s", err, out)
	}
	return bin, nil
}

// Status is the body of GET /: the library's own type, decoded as a client
// of the binary would.
type Status = elector.Status

// Elector is one running k8s-elector process.
type Elector struct {
	ID   string
	Addr string // host:port of its HTTP API

	cmd    *exec.Cmd
	log    *SyncBuffer
	done   chan struct{}
	waited error
}

// Config describes how to start an elector.
type Config struct {
	Binary     string
	Kubeconfig string
	Election   string
	Namespace  string
	LockType   string
	TTL        time.Duration
	Extra      []string  // more flags
	Wrap       []string  // a command and its arguments that run the binary, such as taskset -c 1; nil runs it directly
	Log        io.Writer // also receives the process's stderr, if set
	// Command is the command, and its arguments, that the elector runs
	// while it leads: given after --. Nil runs none.
	Command []string
	// Stdin is the process's standard input; nil is /dev/null.
	Stdin io.Reader
}

// Start starts an elector with identity id, serving HTTP on a free loopback
// port.
func Start(c Config, id string) (*Elector, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{
		"-election=" + c.Election, "-id=" + id, "-http=" + addr,
		"-kubeconfig=" + c.Kubeconfig, "-namespace=" + c.Namespace,
		"-lock-type=" + c.LockType, "-ttl=" + c.TTL.String(),
	}
	args = append(args, c.Extra...)
	if c.Command != nil {
		args = append(append(args, "--"), c.Command...)
	}
	e := &Elector{ID: id, Addr: addr, log: &SyncBuffer{}, done: make(chan struct{})}
	if len(c.Wrap) > 0 {
		args = append(append(slices.Clone(c.Wrap[1:]), c.Binary), args...)
		e.cmd = exec.Command(c.Wrap[0], args...)
	} else {
		e.cmd = exec.Command(c.Binary, args...)
	}
	e.cmd.Stdin = c.Stdin
	e.cmd.Stdout = e.log
	e.cmd.Stderr = e.log
	if c.Log != nil {
		e.cmd.Stderr = io.MultiWriter(e.log, c.Log)
	}
	// The process dies with the test or demo that started it, however that ends.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Variables from the environment must not change the flags given here.
	e.cmd.Env = cleanEnv()
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", id, err)
	}
	go func() {
		e.waited = e.cmd.Wait()
		close(e.done)
	}()
	return e, nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !bytes.HasPrefix([]byte(kv), []byte("ELECTOR_")) {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// Status fetches GET / from the elector.
func (e *Elector) Status(ctx context.Context) (Status, error) {
	var s Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.Addr+"/", nil)
	if err != nil {
		return s, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET / on %s: %s", e.ID, resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// Signal sends sig to the process.
func (e *Elector) Signal(sig os.Signal) error { return e.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited.
func (e *Elector) Exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Wait waits up to limit for the process to exit and returns its exit code.
func (e *Elector) Wait(limit time.Duration) (int, error) {
	select {
	case <-e.done:
	case <-time.After(limit):
		return -1, fmt.Errorf("%s did not exit within %s", e.ID, limit)
	}
	var exit *exec.ExitError
	if errors.As(e.waited, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, e.waited
}

// Kill kills the process, if it still runs, and waits for it.
func (e *Elector) Kill() {
	if !e.Exited() {
		_ = e.cmd.Process.Kill()
	}
	<-e.done
}

// Logs returns what the process has written so far.
func (e *Elector) Logs() string { return e.log.String() }

// SyncBuffer collects a process's output while it runs; it is safe for
// concurrent use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
