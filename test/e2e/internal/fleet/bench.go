package fleet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Helpers for the benchmark command (cmd/bench).

// BuildStripped compiles the package pkg (such as "./cmd/k8s-elector") of the
// module in dir the way a release is built: static (CGO_ENABLED=0),
// -trimpath, without symbols and DWARF (-ldflags=-s -w). It writes the binary
// to out.
func BuildStripped(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// BuildElectorStripped builds the k8s-elector binary of the repository at
// root, stripped as BuildStripped does, into dir and returns its path.
func BuildElectorStripped(root, dir string) (string, error) {
	bin := filepath.Join(dir, "k8s-elector")
	return bin, BuildStripped(root, "./cmd/k8s-elector", bin)
}

// HasFlag reports whether the usage that binary -h prints lists the flag
// name (without the dash).
func HasFlag(binary, name string) (bool, error) {
	cmd := exec.Command(binary, "-h")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		return false, fmt.Errorf("%s -h: %w", binary, err)
	}
	re := regexp.MustCompile(`(?m)^\s*-` + regexp.QuoteMeta(name) + `\b`)
	return re.Match(out), nil
}

// PID returns the process ID of the elector.
func (e *Elector) PID() int { return e.cmd.Process.Pid }

// Memory returns the elector's resident memory.
func (e *Elector) Memory() (ProcMemory, error) { return ReadProcMemory(e.PID()) }

// ProcMemory is the resident memory of a process, in bytes, from
// /proc/<pid>/status.
type ProcMemory struct {
	RSS  int64 // VmRSS: all resident pages, RssAnon + RssFile + RssShmem
	Anon int64 // RssAnon: anonymous pages (heap, stacks), private and not reclaimable without swap
	File int64 // RssFile: file-backed pages (the binary's text among them), shared and reclaimable
}

// ProcRSS returns the resident set size (VmRSS in /proc/<pid>/status) of a
// process in bytes.
func ProcRSS(pid int) (int64, error) {
	m, err := ReadProcMemory(pid)
	return m.RSS, err
}

// ReadProcMemory reads VmRSS, RssAnon and RssFile from /proc/<pid>/status.
func ReadProcMemory(pid int) (ProcMemory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMemory{}, err
	}
	var m ProcMemory
	fields := map[string]*int64{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	for line := range strings.Lines(string(b)) {
		for name, dst := range fields {
			rest, ok := strings.CutPrefix(line, name)
			if !ok {
				continue
			}
			f := strings.Fields(rest) // "12345 kB"
			if len(f) != 2 || f[1] != "kB" {
				return ProcMemory{}, fmt.Errorf("pid %d: unexpected %s line %q", pid, name, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return ProcMemory{}, fmt.Errorf("pid %d: %s: %w", pid, name, err)
			}
			*dst = kb << 10
			delete(fields, name)
		}
	}
	for name := range fields {
		return ProcMemory{}, fmt.Errorf("pid %d: no %s in /proc/%d/status", pid, strings.TrimSuffix(name, ":"), pid)
	}
	return m, nil
}

// WaitUp polls GET / every interval until it succeeds or ctx ends, and
// returns the status and the time of the first successful answer.
func (e *Elector) WaitUp(ctx context.Context, interval time.Duration) (Status, time.Time, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if e.Exited() {
			return Status{}, time.Time{}, fmt.Errorf("%s exited before it answered GET /:\n%s", e.ID, e.Logs())
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := e.Status(rctx)
		cancel()
		if err == nil {
			return s, time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return Status{}, time.Time{}, fmt.Errorf("%s did not answer GET /: %w (last error: %v)", e.ID, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Update is one status event of GET /watch with the time it arrived.
type Update struct {
	Status
	At time.Time
}

// watchClient has no overall timeout: a /watch stream lasts as long as its
// context.
var watchClient = &http.Client{}

// Watch streams the elector's status from GET /watch: the current status
// first, then one update per change of leadership. The channel is closed when
// ctx ends, the stream breaks or the process exits; updates are dropped only
// if the receiver lags by more than 64 of them.
func (e *Elector) Watch(ctx context.Context) (<-chan Update, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.Addr+"/watch", nil)
	if err != nil {
		return nil, err
	}
	resp, err := watchClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /watch on %s: %s", e.ID, resp.Status)
	}
	ch := make(chan Update, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
			if !ok {
				continue
			}
			u := Update{At: time.Now()}
			st, err := DecodeStatus(data)
			if err != nil {
				continue
			}
			u.Status = st
			select {
			case ch <- u:
			case <-ctx.Done():
				return
			default:
			}
		}
	}()
	return ch, nil
}
