package elector

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// passControl decides when the current pass of client-go's LeaderElector
// ends early. Run starts one pass after another; a pass ends on its own when
// client-go gives up a term, or early when this type calls its stop: the watch
// showed a change the next pass acts on at once (a kick), the campaign saw
// another holder, or Resign asked. It is safe for concurrent use: the watch,
// the timers, Resign and the election goroutine all call it.
type passControl struct {
	id  string        // this candidate's ID
	ttl time.Duration // its lease duration

	mu        sync.Mutex
	stop      context.CancelFunc // ends the current pass; nil between passes
	following bool               // the current pass has not started a term
	writing   bool               // a write of the lock is in flight
	kickDue   bool               // end the pass as soon as the write in flight is done
	kick      *time.Timer        // a pending kick, see scheduleKick
	kickAt    time.Time          // when kick fires
	resignReq *resignRequest     // a pending Resign, taken by end
}

// resignRequest asks Run to step down.
type resignRequest struct {
	cooldown time.Duration
	done     chan error // buffered: Run never blocks on it
}

// begin notes that a following pass started, ended by stop.
func (p *passControl) begin(stop context.CancelFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stop, p.following = stop, true
	p.cancelKick()
}

// end notes that the pass ended, and returns the Resign it was ended for, if
// any.
func (p *passControl) end() *resignRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stop = nil
	p.cancelKick()
	req := p.resignReq
	p.resignReq = nil
	return req
}

// leading notes that the pass started a term: a kick must not end it now.
func (p *passControl) leading() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.following = false
}

// stopNow ends the current pass, if any.
func (p *passControl) stopNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		p.stop()
	}
}

// stopFollowing ends the current pass if it has not started a term: the
// candidacy gate closed.
func (p *passControl) stopFollowing() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil && p.following {
		p.stop()
	}
}

// resign asks the current pass to end for req, or returns the request
// already under way. ok is false if no pass runs.
func (p *passControl) resign(req *resignRequest) (_ *resignRequest, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stop == nil:
		return nil, false
	case p.resignReq != nil:
		return p.resignReq, true
	}
	p.resignReq = req
	p.stop()
	return req, true
}

// lockChanged ends the current pass when the watch shows a change that the
// next pass acts on at once: a candidate that is not leading tries to
// acquire a lock that was released or deleted (after a short random wait,
// see kickSpread), or held by another when that holder's lease runs out by
// this candidate's count; a leader whose lock was deleted or taken by another
// steps down. (The watch may lag: acting on an old change can only make a
// leader step down early, or a follower try a write that conflicts.)
func (p *passControl) lockChanged(rec resourcelock.LeaderElectionRecord, deleted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		return
	}
	holder := rec.HolderIdentity
	free := deleted || holder == ""
	if !free {
		// Somebody holds the lock again: a follower has nothing to try
		// before that lease runs out.
		p.cancelKick()
	}
	heldByAnother := holder != "" && holder != p.id && holder != "?"
	switch {
	case !p.following && (deleted || holder != "" && holder != p.id):
		p.stop()
	case p.following && deleted && heldByAnother:
		// Deleted while another held it: the tracked lock creates it only
		// once that lease (at most this candidate's TTL) has run out
		// since the deletion.
		p.scheduleKick(deletedWait(rec.LeaseDurationSeconds, p.ttl) + rand.N(kickSpread))
	case p.following && free:
		p.scheduleKick(rand.N(kickSpread))
	case p.following && heldByAnother:
		// The tracked lock hands the record over as free from the same
		// instant: the lease counted from this delivery, plus the drift
		// margin. Every follower tries at once; all but one conflict.
		lease := time.Duration(rec.LeaseDurationSeconds) * time.Second
		p.scheduleKick(lease + driftMargin(lease))
	}
}

// kickSpread bounds the random wait of a follower that saw the lock freed
// before it tries to take it. Every follower sees the release at about the
// same moment; the spread lets the first one's acquisition reach the others'
// watches before most of them have sent a write that can only conflict. It
// adds kickSpread/(followers+1) to a graceful failover on average.
const kickSpread = 50 * time.Millisecond

// scheduleKick ends the following pass after d, so that the next one tries
// to take the lock at once, unless the lock is taken or renewed meanwhile. If
// a write of the lock is in flight then, the pass ends when the write is
// done: ending it now could cut off an acquisition in flight, and the term
// it starts would end at once. A kick already pending stands if it comes no
// later. p.mu must be held.
func (p *passControl) scheduleKick(d time.Duration) {
	at := time.Now().Add(d)
	if p.kick != nil {
		if !p.kickAt.After(at) {
			return
		}
		p.kick.Stop()
	}
	p.kickAt = at
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.kick != t {
			return // cancelled
		}
		p.kick = nil
		switch {
		case !p.following || p.stop == nil:
			// The pass started a term, or ended: nothing to try.
		case p.writing:
			p.kickDue = true
		default:
			p.following = false
			p.stop()
		}
	})
	p.kick = t
}

// cancelKick drops a kick that is pending or due. p.mu must be held.
func (p *passControl) cancelKick() {
	if p.kick != nil {
		p.kick.Stop()
		p.kick = nil
	}
	p.kickDue = false
}

// lockWriting notes writes of the lock in flight, for the kicks.
func (p *passControl) lockWriting(inFlight bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writing = inFlight
	if !inFlight && p.kickDue {
		p.kickDue = false
		if p.following && p.stop != nil {
			p.following = false
			p.stop()
		}
	}
}
