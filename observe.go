package elector

import (
	"context"
	"time"
)

// Observe returns a channel that receives this Elector's Status: the current
// one at once, then one at each change of what the status says about
// leadership (IsLeader, Leader, or the fencing token LockUID and
// LeaderTransitions), including IsLeader turning false when ValidUntil
// passes. Renewals that change none of these are not sent. A receiver that
// falls behind finds the latest status, never a queue of stale ones.
//
// The channel is closed when ctx ends, or when a Run that was running when
// Observe was called, or started since, returns. Observe owns the goroutine
// that feeds the channel, and it exits then. GET /watch is built on it.
func (e *Elector) Observe(ctx context.Context) <-chan Status {
	ch := make(chan Status, 1)
	go e.observe(ctx, ch)
	return ch
}

// statusKey is what Observe compares: a change of any other field (the
// renewal times, valid_until, the timestamp) is not a change of leadership.
type statusKey struct {
	isLeader    bool
	leader      string
	uid         string
	transitions int
}

func keyOf(s Status) statusKey {
	return statusKey{s.IsLeader, s.Leader, s.LockUID, s.LeaderTransitions}
}

func (e *Elector) observe(ctx context.Context, ch chan Status) {
	defer close(ch)
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var last statusKey
	first, ran := true, false
	for {
		v := e.views.load()
		s := v.status(e.o.id, time.Now())
		if k := keyOf(s); first || k != last {
			first, last = false, k
			// The latest wins: replace a status the receiver has not taken.
			select {
			case ch <- s:
			default:
				select {
				case <-ch:
				default:
				}
				ch <- s
			}
		}
		if v.running {
			ran = true
		} else if ran {
			return // Run returned
		}
		expiry.Stop()
		if s.IsLeader {
			expiry.Reset(time.Until(v.endsAt))
		}
		select {
		case <-v.changed:
		case <-expiry.C:
		case <-ctx.Done():
			return
		}
	}
}
