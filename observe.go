package elector

import (
	"context"
	"time"
)

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

// observe feeds ch with the statuses of candidate id in vs, as Observe
// says, and closes it at the end.
func observe(ctx context.Context, vs *views, id string, ch chan Status) {
	defer close(ch)
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var last statusKey
	first, ran := true, false
	for {
		v := vs.load()
		s := v.status(id, time.Now())
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
