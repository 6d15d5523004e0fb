package elector

import (
	"context"
	"time"
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
