package elector_test

import (
	"context"
	"net/http"
	"net/http/httptest"
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
