package elector

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// A Group's requests in flight never exceed the limit; a request waiting
// for a slot gives up, unsent, when its context ends.
func TestRequestLimitBoundsRequestsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limit := newRequestLimit(2)
		var inFlight, most, sent atomic.Int32
		release := make(chan struct{})
		request := func() {
			sent.Add(1)
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			inFlight.Add(-1)
		}
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if err := limit.do(t.Context(), request); err != nil {
					t.Errorf("do: %v", err)
				}
			})
		}
		synctest.Wait()
		if got := sent.Load(); got != 2 {
			t.Fatalf("%d requests sent with 2 slots, want 2", got)
		}

		// One more waits, and its context ends.
		ctx, cancel := context.WithCancel(t.Context())
		waited := make(chan error)
		go func() { waited <- limit.do(ctx, func() { t.Error("a request sent after its context ended") }) }()
		synctest.Wait()
		cancel()
		if err := <-waited; !errors.Is(err, context.Canceled) {
			t.Errorf("do with its context ended = %v, want context.Canceled", err)
		}

		close(release)
		wg.Wait()
		if got, m := sent.Load(), most.Load(); got != 5 || m != 2 {
			t.Errorf("%d requests sent, at most %d at once; want 5, at most 2", got, m)
		}
	})
}

// Without a limit (a single Elector), a request runs on the caller's
// goroutine.
func TestNoRequestLimit(t *testing.T) {
	var limit *requestLimit
	ran := false
	if err := limit.do(context.Background(), func() { ran = true }); err != nil || !ran {
		t.Errorf("do = %v, ran %v; want nil, true", err, ran)
	}
}
