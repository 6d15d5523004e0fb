package elector

import (
	"context"
	"time"

	"github.com/go-logr/logr"

	"github.com/k8s-elector/elector/internal/serial"
)

// workers are the goroutines of one Run besides its own. Each is started
// with its stop, and stop ends them in the reverse order of their start,
// waiting for each: the one stop pattern of Run.
type workers struct{ stops []func() }

// start runs f on a goroutine of its own until it is stopped. With
// withRun, f's context ends with ctx; otherwise it ends only when f is
// stopped, so that f can finish its work after Run's context is cancelled.
// ask, if not nil, asks f to return, before its context is cancelled.
func (w *workers) start(ctx context.Context, withRun bool, f func(context.Context), ask func()) {
	if !withRun {
		ctx = context.WithoutCancel(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	w.stops = append(w.stops, func() {
		if ask != nil {
			ask()
		}
		cancel()
		<-done
	})
}

// stop stops every worker, the last started first.
func (w *workers) stop() {
	for i := len(w.stops) - 1; i >= 0; i-- {
		w.stops[i]()
	}
	w.stops = nil
}

// background starts the work that Run hands off so that the election never
// waits for it (Events), and returns where Run puts the time by which that
// work must be done when it stops (zero: flushTimeout from then).
func (w *workers) background(ctx context.Context, bg []backgroundWorker) *time.Time {
	by := new(time.Time)
	stop := startBackground(ctx, bg)
	w.stops = append(w.stops, func() { stop(*by) })
	return by
}

// newLoop builds the election loop of one Run and the parts it drives; it
// starts nothing.
func (e *Elector) newLoop(log logr.Logger) (*loop, []backgroundWorker, []func(context.Context)) {
	o := &e.o
	l := &loop{
		id: o.id, o: o, log: log, queue: serial.New(), views: e.views, metrics: e.metrics,
		inbox: e.inbox, gate: e.gate,
		lockRef:   lockRef(o.lockType, o.namespace, e.election),
		onStarted: o.onStarted, onStopped: o.onStopped, onNewLeader: o.onNewLeader,
		ahead: o.ahead(),
	}
	var watches *lockWatches
	if o.watch {
		l.changed = make(chan struct{}, 1)
		watches = &lockWatches{clientset: e.client, changed: func() {
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}}
	}
	l.rec = &observed{
		lock: newObjectLock(o.lockType, o.namespace, e.election, o.id, e.client, watches),
		kind: lockTypeOf(o.lockType).kind, id: o.id, ttl: o.ttl, timeout: o.requestTimeout(),
		log: log, metrics: e.metrics,
	}
	var bg []backgroundWorker
	if o.events {
		l.events = newEventRecorder(e.client, o, log)
		bg = append(bg, l.events)
	}
	var runs []func(context.Context)
	if watches != nil {
		runs = watches.runs
	}
	return l, bg, runs
}

// logJoining logs the start of a Run.
func (e *Elector) logJoining(log logr.Logger) {
	if lockTypeOf(e.o.lockType).deprecated {
		log.Info("the endpoints lock type is deprecated: Kubernetes deprecated v1 Endpoints in 1.33; migrate to leases")
	}
	log.Info("joining election", "lockType", e.o.lockType, "ttl", e.o.ttl,
		"renewDeadline", e.o.renewDeadline, "retryPeriod", e.o.retryPeriod)
}
