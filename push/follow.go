package push

import (
	"context"
	"time"

	"github.com/go-logr/logr"

	"github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/internal/backoff"
)

// Follow delivers e's Status at every change that Observe reports: the
// current status at once, then each change of leadership, and once more
// when Run returns. It calls Observe at once, so call it before Run: it
// follows the Run that starts next (or the one running now) and ends with
// it; wait never returns until such a Run has returned. A failed delivery
// is retried with backoff, from 0.5s doubling up to the retry period (at
// least 0.5s, at most 30s), always with the latest status; a POST is
// bounded by the request timeout of e, max(RenewDeadline/2, 1s). It never
// delays the election.
//
// ctx gives only its values: the deliveries go on after it is cancelled,
// until Run returns, so that the status that says not-leader goes out. Once
// Run has returned, the last delivery has until
// ShutdownBudget-RenewDeadline (1s) from then, and is given up after. wait
// blocks until Follow's goroutines have ended.
func (s *Sink) Follow(ctx context.Context, e *elector.Elector, log logr.Logger) (wait func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t := e.Timings()
	changes := e.Observe(ctx)
	f := &follower{
		sink: s, status: e.Status, log: log.WithName(s.name),
		limit: backoff.Limit(t.RetryPeriod), timeout: t.RequestTimeout,
	}
	kicks := make(chan struct{}, 1)
	delivered, relayed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(delivered)
		f.run(ctx, kicks)
	}()
	go func() {
		defer close(relayed)
		relay(changes, kicks)
		// Run returned: the last delivery has until the end of the
		// shutdown budget, which the release of the lock has had.
		by := time.NewTimer(t.ShutdownBudget - t.RenewDeadline)
		defer by.Stop()
		select {
		case <-by.C:
			cancel()
		case <-delivered:
		}
	}()
	return func() {
		<-delivered
		<-relayed
		cancel()
	}
}

// relay turns each status from changes into a kick, a kick not yet taken
// standing for any number, and closes kicks when changes are closed. It
// keeps reading while a delivery is under way, so that the end of Run is
// seen at once.
func relay(changes <-chan elector.Status, kicks chan<- struct{}) {
	for range changes {
		select {
		case kicks <- struct{}{}:
		default:
		}
	}
	close(kicks)
}

// follower delivers with its Sink what status returns, at every kick.
type follower struct {
	sink    *Sink
	status  func() elector.Status
	limit   time.Duration // longest wait between retries
	timeout time.Duration // bounds each delivery
	log     logr.Logger
}

// run delivers at every kick, and once more when the kicks end (Run
// returned), until that last delivery is done or ctx ends.
func (f *follower) run(ctx context.Context, kicks <-chan struct{}) {
	var delay time.Duration
	var lastErr string
	pending := false
	for {
		if !pending {
			if kicks == nil {
				return
			}
			select {
			case _, ok := <-kicks:
				// A change, or the end of Run: the last status goes out
				// too.
				pending = true
				if !ok {
					kicks = nil // a closed channel would not wait
				}
				continue
			case <-ctx.Done():
				return
			}
		}
		err := f.send(ctx)
		if err == nil {
			pending, delay = false, 0
			if lastErr != "" {
				lastErr = ""
				f.log.Info("delivering the status succeeds again", "to", f.sink.what)
			}
			continue
		}
		if ctx.Err() != nil {
			f.log.Error(err, "gave up delivering the status on shutdown", "to", f.sink.what)
			return
		}
		delay = backoff.Next(delay, f.limit)
		if err.Error() != lastErr {
			lastErr = err.Error()
			f.log.Error(err, "cannot deliver the status; retrying", "to", f.sink.what, "retryIn", delay)
		} else {
			f.log.V(1).Info("delivering the status failed again", "to", f.sink.what, "err", err.Error(), "retryIn", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case _, ok := <-kicks: // a newer status: try it at once
			if !ok {
				kicks = nil
			}
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// send makes one delivery, bounded by the timeout.
func (f *follower) send(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return f.sink.send(ctx, f.status)
}
