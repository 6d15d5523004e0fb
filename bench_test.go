package elector_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	elector "github.com/k8s-elector/elector"
)

// benchElector returns an Elector on a fake clientset that leads its
// election, so that GET / answers a leader's full status; Run stops when the
// benchmark ends.
func benchElector(b *testing.B) *elector.Elector {
	b.Helper()
	e, err := elector.New("bench", elector.WithClient(fake.NewClientset()), elector.WithID("a"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !e.Status().IsLeader; {
		if time.Now().After(deadline) {
			b.Fatalf("not leading after 10s: %+v", e.Status())
		}
		time.Sleep(time.Millisecond)
	}
	return e
}

// discardWriter is a ResponseWriter that keeps nothing but its header map, so
// that the benchmark counts the handler's allocations, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func (w *discardWriter) reset() {
	clear(w.h)
	w.code = 0
}

// BenchmarkServeStatus measures GET / on the Elector's handler: a snapshot of
// the status, encoded as JSON.
func BenchmarkServeStatus(b *testing.B) {
	e := benchElector(b)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		e.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatalf("GET / answered %d, want 200", w.code)
		}
	}
}

// BenchmarkServeStatusParallel is BenchmarkServeStatus from GOMAXPROCS
// goroutines at once: the request path must not contend on shared locks.
func BenchmarkServeStatusParallel(b *testing.B) {
	e := benchElector(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// The mux records the matched pattern in the request: one each.
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			w.reset()
			e.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				b.Errorf("GET / answered %d, want 200", w.code)
				return
			}
		}
	})
}

// BenchmarkGETRootLoopback measures GET / through net/http's server on a
// loopback keep-alive connection, with a minimal HTTP/1.1 client, so that the
// allocations reported are nearly all the server's.
func BenchmarkGETRootLoopback(b *testing.B) {
	e := benchElector(b)
	srv := httptest.NewServer(e)
	b.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	br := bufio.NewReader(conn)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		length := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if _, err := br.Discard(length); err != nil || length <= 0 {
			b.Fatalf("reading a body of %d bytes: %v", length, err)
		}
	}
}
