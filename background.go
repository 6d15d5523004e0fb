package elector

import (
	"context"
	"sync"
	"time"
)

// flushTimeout bounds the background flush when Run gives it no deadline.
// Every return of Run today steps down first and sets one (the shutdown
// budget); this is the bound should a path forget.
const flushTimeout = time.Second

// backgroundWorker is work that Run hands off so that the election never
// waits for it: the Pod label, Events, and the status sinks.
type backgroundWorker interface {
	// run works until finish has been called and the work is done, or ctx
	// ends.
	run(ctx context.Context)
	// finish asks run to complete the work at hand and return.
	finish()
}

// startBackground runs the workers, each on a goroutine of its own, and returns the function that stops them: it calls finish on each,
// gives them until by (or flushTimeout, if by is zero) to complete, and waits
// for them to return. Their context is detached from ctx, which is cancelled
// by then: the standby label and the stopped-leading Events must still be
// sent.
func startBackground(ctx context.Context, bg []backgroundWorker) (stop func(by time.Time)) {
	if len(bg) == 0 {
		return func(time.Time) {} // a Group's election without Events has none
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, w := range bg {
		wg.Go(func() { w.run(ctx) })
	}
	return func(by time.Time) {
		for _, w := range bg {
			w.finish()
		}
		if by.IsZero() {
			by = time.Now().Add(flushTimeout)
		}
		deadline := time.AfterFunc(time.Until(by), cancel)
		wg.Wait()
		deadline.Stop()
		cancel()
	}
}
