package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"
)

// loadResult is the outcome of loadGET.
type loadResult struct {
	RPS           float64
	P50, P99, Max time.Duration
}

// pinning says where the elector under load and the load generator run.
type pinning struct {
	elector []string // command prefix for the elector, nil for none
	gen     []string // command prefix for the load generator's process, nil to load from this process
}

// newPinning pins the elector to CPU 1 and the load generator to CPU 0 when
// the machine has two CPUs or more and taskset(1) is installed.
func newPinning() pinning {
	taskset, err := exec.LookPath("taskset")
	if err != nil || numCPU() < 2 {
		return pinning{}
	}
	return pinning{elector: []string{taskset, "-c", "1"}, gen: []string{taskset, "-c", "0"}}
}

func (p pinning) String() string {
	if p.gen == nil {
		return "not pinned: the load generator shares the CPUs with the elector"
	}
	return "the elector is pinned to CPU 1 (so GOMAXPROCS=1) and the load generator, a process of its own, to CPU 0"
}

// load runs loadGET against addr, in a pinned process of its own if p says
// so.
func (p pinning) load(ctx context.Context, addr string, conns int, d time.Duration) (loadResult, error) {
	if p.gen == nil {
		return loadGET(ctx, addr, conns, d)
	}
	self, err := os.Executable()
	if err != nil {
		return loadResult{}, err
	}
	args := append(slices.Clone(p.gen[1:]), self, loadgenCommand,
		"-addr="+addr, "-conns="+strconv.Itoa(conns), "-for="+d.String())
	cmd := exec.CommandContext(ctx, p.gen[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("load generator: %w", err)
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return loadResult{}, fmt.Errorf("load generator output %q: %w", out, err)
	}
	return r, nil
}

// loadgenCommand is the hidden first argument that makes the bench binary a
// load generator: it runs loadGET and prints the result as JSON.
const loadgenCommand = "loadgen"

func loadgen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(loadgenCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port of the elector")
	conns := fs.Int("conns", 1, "keep-alive connections")
	d := fs.Duration("for", 5*time.Second, "measured load time, after a 0.5 s warm-up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := loadGET(ctx, *addr, *conns, *d)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// loadGET sends GET / to addr on conns keep-alive connections, one request at
// a time on each, for d after a warm-up, and measures each request on the
// client. It speaks just enough HTTP/1.1 to do that, so that the client costs
// little CPU next to the server it measures; every answer must be a 200 with
// a Content-Length body.
func loadGET(ctx context.Context, addr string, conns int, d time.Duration) (loadResult, error) {
	var (
		mu     sync.Mutex
		all    []time.Duration
		errs   []error
		wg     sync.WaitGroup
		warmup = 500 * time.Millisecond
	)
	begin := time.Now()
	measureFrom, end := begin.Add(warmup), begin.Add(warmup+d)
	req := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: k8s-elector-bench\r\n\r\n")
	for range conns {
		wg.Go(func() {
			lat, err := loadConn(ctx, addr, req, measureFrom, end)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return loadResult{}, fmt.Errorf("GET / on %s: %w", addr, err)
	}
	if len(all) == 0 {
		return loadResult{}, fmt.Errorf("GET / on %s: no request completed", addr)
	}
	return summarize(all, d), ctx.Err()
}

// summarize returns the throughput and latencies of the requests measured
// over d, whose latencies are all; it sorts all, which must not be empty.
func summarize(all []time.Duration, d time.Duration) loadResult {
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return loadResult{RPS: float64(len(all)) / d.Seconds(), P50: q(0.50), P99: q(0.99), Max: all[len(all)-1]}
}

// loadConn sends req on one connection until end and returns the latencies
// of the requests sent from measureFrom on.
func loadConn(ctx context.Context, addr string, req []byte, measureFrom, end time.Time) ([]time.Duration, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 4096)
	lat := make([]time.Duration, 0, 1<<16)
	for ctx.Err() == nil {
		t := time.Now()
		if t.After(end) {
			break
		}
		_ = conn.SetDeadline(t.Add(5 * time.Second))
		if _, err := conn.Write(req); err != nil {
			return lat, err
		}
		if err := readResponse(br); err != nil {
			return lat, err
		}
		if !t.Before(measureFrom) {
			lat = append(lat, time.Since(t))
		}
	}
	return lat, nil
}

// readResponse reads one response and checks that it is a 200.
func readResponse(br *bufio.Reader) error {
	status, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("answer %q, want HTTP/1.1 200", bytes.TrimSpace(status))
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return fmt.Errorf("bad Content-Length %q", bytes.TrimSpace(v))
			}
		}
	}
	if length < 0 {
		return errors.New("answer without Content-Length")
	}
	_, err = br.Discard(length)
	return err
}
