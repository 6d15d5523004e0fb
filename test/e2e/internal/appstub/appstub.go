// Package appstub is the application side of k8s-elector's hooks, as the
// end-to-end suite plays it: a readiness endpoint whose answer a test flips
// and whose probes it records (-ready-url), a receiver that records every
// POST of the status (-notify-url), and a reader that reads status files
// every millisecond (-status-file).
package appstub

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	elector "github.com/k8s-elector/elector"
)

// Status is the status JSON as the elector's GET / serves it.
type Status = elector.Status

// Probe is one request of the elector to the readiness endpoint.
type Probe struct {
	At    time.Time // it arrived
	Ready bool      // it was answered 200; else 503
}

// ReadyApp is an application's readiness endpoint, GET /ready: 200 while
// ready, 503 while not. Every probe is recorded under the lock that Set
// takes, so a probe recorded after Set returned got the new answer.
type ReadyApp struct {
	srv *httptest.Server

	mu     sync.Mutex
	ready  bool
	probes []Probe
}

// NewReadyApp starts the endpoint, ready or not.
func NewReadyApp(ready bool) *ReadyApp {
	a := &ReadyApp{ready: ready}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		p := Probe{At: time.Now(), Ready: a.ready}
		a.probes = append(a.probes, p)
		a.mu.Unlock()
		if p.Ready {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	return a
}

// URL is the value for -ready-url.
func (a *ReadyApp) URL() string { return a.srv.URL + "/ready" }

// Set makes the endpoint answer ready or not from now on, and returns when
// it did.
func (a *ReadyApp) Set(ready bool) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready = ready
	return time.Now()
}

// Probes returns every probe so far, in the order they arrived.
func (a *ReadyApp) Probes() []Probe {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.probes)
}

// Close stops the endpoint.
func (a *ReadyApp) Close() { a.srv.Close() }
