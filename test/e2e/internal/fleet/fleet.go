// Package fleet runs k8s-elector processes and reads their status over HTTP,
// for the end-to-end suite and the demo.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/command"
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
// port. The port is free when picked, and another process may bind it before
// the elector does: an elector that exits for that is started again on
// another port, up to three times.
func Start(c Config, id string) (*Elector, error) {
	for attempt := 1; ; attempt++ {
		e, err := start(c, id)
		if err != nil || attempt == 3 || !e.lostPort() {
			return e, err
		}
	}
}

// lostPort waits until the elector accepts connections on its HTTP address
// or exits, for at most 10s, and reports whether it exited because the
// address was taken.
func (e *Elector) lostPort() bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		select {
		case <-e.done:
			return strings.Contains(e.log.String(), "address already in use")
		default:
		}
		if conn, err := net.DialTimeout("tcp", e.Addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return false
		}
	}
	return false
}

func start(c Config, id string) (*Elector, error) {
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

func freeAddr() (string, error) { return FreeAddr() }

// Ports that FreeAddr hands out: below Linux's ephemeral range (32768 and
// up by default), so that the kernel never gives one of them to another
// listener or to an outgoing connection between FreeAddr's check and the
// elector's bind. Each process walks the range from a random start, so that
// concurrent test processes seldom try the same port.
const (
	portBase  = 20000
	portRange = 12000
)

var nextPort = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(rand.Int64N(portRange))
	return &n
}()

// FreeAddr returns a loopback host:port that nothing listens on, for a
// process about to bind it.
func FreeAddr() (string, error) {
	for range portRange {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(portBase+int(nextPort.Add(1)%portRange)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr, nil
	}
	return "", errors.New("no free loopback port in 20000-31999")
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
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	return DecodeStatus(body)
}

// DecodeStatus decodes a body of GET / (or a line of GET /watch) as a
// client of the binary would, with what the parts beside the election
// report (the command's state) in Reports.
func DecodeStatus(body []byte) (Status, error) {
	var s Status
	if err := json.Unmarshal(body, &s); err != nil {
		return s, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return s, err
	}
	if raw, ok := fields["command"]; ok {
		s.Reports = map[string]json.RawMessage{"command": raw}
	}
	return s, nil
}

// Command is the state of the command that s reports; zero without one.
func Command(s Status) command.Status {
	var c command.Status
	_ = json.Unmarshal(s.Reports["command"], &c) // absent: the zero state
	return c
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
