package elector

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// gate decides whether this candidate campaigns (WithCandidacyGate): it
// checks the application every retry period, and owns the answer. A
// follower whose check fails stops campaigning at once; a leader steps down
// after failures consecutive failed checks, and campaigns again once a check
// passes.
type gate struct {
	check    func(context.Context) error
	failures int
	period   time.Duration
	timeout  time.Duration
	pass     *passControl
	views    *views
	metrics  *metrics

	mu      sync.Mutex
	known   bool          // a check has answered
	ok      bool          // this candidate campaigns
	changed chan struct{} // closed and replaced when known or ok change
}

// newGate returns the gate that calls check every period, each call
// bounded by timeout, and steps a leader down after failures in a row.
func newGate(check func(context.Context) error, failures int, period, timeout time.Duration, pass *passControl, vs *views, m *metrics) *gate {
	return &gate{
		check: check, failures: failures, period: period, timeout: timeout,
		pass: pass, views: vs, metrics: m,
		changed: make(chan struct{}),
	}
}

// state returns whether a check has answered, whether this candidate
// campaigns, and a channel closed when either changes.
func (g *gate) state() (known, ok bool, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.known, g.ok, g.changed
}

// set records the gate's answer and publishes it.
func (g *gate) set(ok bool) {
	g.mu.Lock()
	if g.known && g.ok == ok {
		g.mu.Unlock()
		return
	}
	g.known, g.ok = true, ok
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
	g.views.update(func(v *view) { v.candidate = candidacyOf(ok) })
}

// run checks every period until ctx ends.
func (g *gate) run(ctx context.Context, log logr.Logger) {
	log = log.WithName("gate")
	t := time.NewTimer(0)
	defer t.Stop()
	var failed int
	var lastErr string
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		cctx, cancel := context.WithTimeout(ctx, g.timeout)
		err := g.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		t.Reset(g.period)
		if err == nil {
			g.metrics.gateChecks.WithLabelValues("ready").Inc()
			if failed > 0 || lastErr != "" {
				log.Info("the application is ready: campaigning")
			}
			failed, lastErr = 0, ""
			g.set(true)
			continue
		}
		g.metrics.gateChecks.WithLabelValues("not_ready").Inc()
		failed++
		if err.Error() != lastErr {
			lastErr = err.Error()
			if g.views.load().leadingAt(time.Now()) {
				log.Info("the application is not ready", "err", lastErr, "failures", failed, "stepDownAt", g.failures)
			} else {
				log.Info("the application is not ready: not campaigning", "err", lastErr)
			}
		} else {
			log.V(1).Info("the application is still not ready", "err", lastErr, "failures", failed)
		}
		if g.views.load().leadingAt(time.Now()) {
			if failed < g.failures {
				continue
			}
			log.Info("the application failed its checks: stepping down", "failures", failed)
			g.set(false)
			g.pass.resign(&resignRequest{done: make(chan error, 1)})
			continue
		}
		g.set(false)
		g.pass.stopFollowing()
	}
}

// candidacyOf is a view's candidacy: with a gate, 1 while campaigning and
// 2 while not; 0 without a gate.
func candidacyOf(ok bool) uint8 {
	if ok {
		return 1
	}
	return 2
}

// awaitCandidacy blocks while the gate keeps this candidate out, reading
// the lock every retry period meanwhile (the watch serves the reads without
// a request) so that Status keeps following the election. It returns false
// if ctx ends first.
func (g *gate) awaitCandidacy(ctx context.Context, read func(context.Context)) bool {
	for {
		known, ok, changed := g.state()
		if known && ok {
			return true
		}
		if known {
			read(ctx)
		}
		t := time.NewTimer(g.period)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// httpReady is a check that GETs u and passes on a 2xx answer (a 3xx
// fails: no redirect is followed).
func httpReady(u *url.URL, timeout time.Duration) func(context.Context) error {
	client := localClient(timeout)
	target := u.String()
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		return localDo(client, req)
	}
}
