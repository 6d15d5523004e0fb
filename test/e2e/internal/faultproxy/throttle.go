package faultproxy

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"

	"k8s.io/client-go/rest"
)

// Throttler is an HTTPS proxy in front of the API server that can answer
// every request with 429 Too Many Requests, as API Priority and Fairness
// does when it sheds load. It terminates TLS, so it forwards as the
// upstream config's user: clients connect to it without credentials.
type Throttler struct {
	srv      *httptest.Server
	throttle atomic.Bool
	answered atomic.Int64 // requests answered with 429
}

// NewThrottler starts a Throttler forwarding to the cluster of upstream.
func NewThrottler(upstream *rest.Config) (*Throttler, error) {
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, err
	}
	rt, err := rest.TransportFor(upstream)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = rt
	rp.FlushInterval = -1 // watches stream
	t := &Throttler{}
	t.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.throttle.Load() {
			t.answered.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure",`+
				`"message":"too many requests, please try again later","reason":"TooManyRequests","code":429}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.srv.EnableHTTP2 = true
	t.srv.StartTLS()
	return t, nil
}

// Config returns a client config for the Throttler.
func (t *Throttler) Config() *rest.Config {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: t.srv.Certificate().Raw})
	return &rest.Config{Host: t.srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

// Throttle sets whether every request is answered with 429.
func (t *Throttler) Throttle(on bool) { t.throttle.Store(on) }

// Answered429 returns how many requests were answered with 429.
func (t *Throttler) Answered429() int64 { return t.answered.Load() }

// Close stops the Throttler and closes its connections.
func (t *Throttler) Close() { t.srv.Close() }
