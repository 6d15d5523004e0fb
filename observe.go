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

// observe feeds ch with the statuses of candidate id in vs, from the view
// from on, as Observe says, and closes it at the end. It follows every view
// published since from, so that it cannot miss a Run that started and
// returned before it first looked.
func observe(ctx context.Context, from *view, id string, ch chan Status) {
	defer close(ch)
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var last statusKey
	first, ran := true, false
	v := from
	for {
		// The latest view, noting whether a Run ran on the way there.
		for latest := false; !latest; {
			select {
			case <-v.changed:
				ran = ran || v.running
				v = v.next
			default:
				latest = true
			}
		}
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
