package elector

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// gate decides whether this candidate campaigns (WithCandidacyGate): it
// checks the application every retry period, and owns the answer. The
// election loop asks it (open) before every acquisition, so a follower whose
// check fails stops campaigning at once; a leader steps down after failures
// consecutive failed checks, and campaigns again once a check passes. Until
// the first check passes, the candidate does not campaign; it follows the
// election all the same.
type gate struct {
	check    func(context.Context) error
	failures int
	period   time.Duration
	timeout  time.Duration
	inbox    *inbox
	views    *views
	metrics  *metrics

	mu sync.Mutex
	ok bool // this candidate campaigns
}

// newGate returns the gate that calls check every period, each call
// bounded by timeout, and steps a leader down after failures in a row.
func newGate(check func(context.Context) error, failures int, period, timeout time.Duration, in *inbox, vs *views, m *metrics) *gate {
	vs.update(func(v *view) { v.candidate = candidacyOf(false) })
	return &gate{check: check, failures: failures, period: period, timeout: timeout, inbox: in, views: vs, metrics: m}
}

// open reports whether this candidate campaigns.
func (g *gate) open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ok
}

// set records the gate's answer, publishes it, and wakes the loop.
func (g *gate) set(ok bool) {
	g.mu.Lock()
	changed := g.ok != ok
	g.ok = ok
	g.mu.Unlock()
	if changed {
		g.views.update(func(v *view) { v.candidate = candidacyOf(ok) })
		g.inbox.poke()
	}
}

// run checks every period until ctx ends. A check that ignores its context
// does not hold run up: run returns when ctx ends, and the check's
// goroutine ends when the check returns.
func (g *gate) run(ctx context.Context, log logr.Logger) {
	log = log.WithName("gate")
	t := time.NewTimer(0)
	defer t.Stop()
	var failed int
	var lastErr string
	answer := make(chan error, 1)
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		go func() {
			cctx, cancel := context.WithTimeout(ctx, g.timeout)
			defer cancel()
			answer <- g.check(cctx)
		}()
		var err error
		select {
		case err = <-answer:
		case <-ctx.Done():
			return
		}
		t.Reset(g.period)
		if err == nil {
			g.metrics.gateChecked(true)
			if failed > 0 || lastErr != "" {
				log.Info("the application is ready: campaigning")
			}
			failed, lastErr = 0, ""
			g.set(true)
			continue
		}
		g.metrics.gateChecked(false)
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
			g.inbox.ask(&resignRequest{done: make(chan error, 1)})
			continue
		}
		g.set(false)
	}
}
