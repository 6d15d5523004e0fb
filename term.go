package elector

import (
	"context"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// driftMargin is how much earlier than the lease duration a leader considers
// its lease over, and how much later a follower on the watch tries to take
// it. Followers measure the lease duration on their own clocks; the margin
// covers a follower whose clock runs up to 2% faster than the leader's.
func driftMargin(lease time.Duration) time.Duration { return lease / 50 }

// term is one period of leadership. The campaign owns it; the started-leading
// callback reads validUntil through Term.
type term struct {
	ctx        context.Context
	cancel     context.CancelFunc
	expire     *time.Timer               // cancels ctx at validUntil - ahead
	ahead      time.Duration             // the stop grace and drift margin (options.ahead), else 0
	renewed    time.Time                 // what the lease counts from: see lockObserver.wrote
	lease      time.Duration             // lease duration of that write
	validUntil time.Time                 // renewed + lease - drift margin; monotonic
	until      atomic.Pointer[time.Time] // validUntil, for Term
	token      Term                      // the term's fencing token
	done       chan struct{}             // closed when the started-leading callback is over
	started    bool                      // the callback ran; read only after done is closed
	lock       corev1.ObjectReference    // the lock object the term holds, for Events
}

// extend moves the end of the term to validUntil, less ahead.
func (t *term) extend(renewed time.Time, lease time.Duration, validUntil time.Time) {
	t.renewed, t.lease, t.validUntil = renewed, lease, validUntil
	t.until.Store(&validUntil)
	t.expire.Reset(time.Until(t.endsAt()))
}

// endsAt is when the term ends unless the leader renews.
func (t *term) endsAt() time.Time { return t.validUntil.Add(-t.ahead) }

// Term is one term of leadership as its leader work sees it: the fencing
// token of that term, and how long it is valid. Get it from the context
// that the started-leading callback is given, with TermFromContext.
type Term struct {
	// LockUID and LeaderTransitions are the term's fencing token (see
	// Status). They do not change during a term.
	LockUID           string
	LeaderTransitions int

	t *term
}

// ValidUntil returns when the term ends unless the leader renews: the
// ValidUntil that Status reports while this term lasts. It moves on with
// every renewal that followers can see, and is zero once the term has
// ended. It is safe to call from any goroutine.
func (t Term) ValidUntil() time.Time {
	if t.t == nil || t.t.ctx.Err() != nil {
		return time.Time{}
	}
	if u := t.t.until.Load(); u != nil {
		return *u
	}
	return time.Time{}
}

type termKey struct{}

// TermFromContext returns the term that the context of a started-leading
// callback belongs to (WithOnStartedLeading), and false for any other
// context. Unlike Status, it never reports another term's token: pass
// LockUID and LeaderTransitions with every write that must be fenced.
func TermFromContext(ctx context.Context) (Term, bool) {
	t, ok := ctx.Value(termKey{}).(*term)
	if !ok {
		return Term{}, false
	}
	return t.token, true
}
