package elector

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/internal/serial"
)

// campaign owns the state of one Run: the term, and the leader as last
// reported. What the lock holds is the tracked lock's (current), and the
// view that Status reads is built from both in one place, publish. Only the
// goroutine running the election calls it.
//
// Its states: following (no term), leading (a term exists and has not
// expired or been taken over), stepping down (endTerm waits for the leader
// work), released (release wrote the lock free).
type campaign struct {
	id      string
	ctx     context.Context // Run's context, with the Elector's logger
	log     logr.Logger
	queue   *serial.Queue // runs the callbacks in order
	lock    *trackedLock
	pass    *passControl
	passCtx context.Context // the current pass's; its end ends a term that starts late
	views   *views
	metrics *metrics
	labels  *podLabeler    // nil without WithPodName
	events  *eventRecorder // nil without WithEvents
	lockRef corev1.ObjectReference

	onStarted   func(context.Context)
	onStopped   func()
	onNewLeader func(string)
	ahead       time.Duration // how long before validUntil a term ends: the command's fence

	leader string // the holder as last reported
	term   *term  // the current term, nil while following
	done   bool   // Run is returning: the last view is published
}

// observed implements lockObserver.
func (c *campaign) observed(rec resourcelock.LeaderElectionRecord) {
	c.see(rec.HolderIdentity, false)
}

// absent implements lockObserver: the lock object does not exist, so nobody
// leads.
func (c *campaign) absent() { c.see("", true) }

func (c *campaign) see(holder string, gone bool) {
	if t := c.term; t != nil && holder != c.id {
		// Someone else holds the lock, or nobody does: the term is over
		// now, whatever client-go's renew loop would conclude by its
		// deadline.
		if gone {
			c.log.Info("lock object deleted while leading")
		} else {
			c.log.Info("lock taken over while leading", "holder", holder)
		}
		t.cancel()
		c.pass.stopNow()
	}
	if holder != c.leader {
		c.leader = holder
		switch {
		case holder == "":
			c.log.Info("no leader: the lock is released or does not exist")
		case holder != c.id:
			c.log.Info("new leader observed", "leader", holder)
		}
		if f := c.onNewLeader; f != nil {
			c.queue.Push(func() { f(holder) })
		}
	}
	c.publish()
}

// wrote implements lockObserver. A successful write naming us starts a term,
// or extends the current one, to the lease duration after since: followers
// count the lease from when they observe the record change, which is later,
// so until then nobody else can acquire. A write that does not reach past
// now (since unknown, or long past) leaves the term as it is, and so does one
// that lands after its pass or Run was ended.
func (c *campaign) wrote(rec resourcelock.LeaderElectionRecord, since time.Time) {
	if rec.HolderIdentity != c.id {
		return
	}
	if c.ctx.Err() != nil || c.passCtx.Err() != nil {
		// A renewal that was in flight when Run or the pass was ended: the
		// term ends with the pass.
		return
	}
	lease := time.Duration(rec.LeaseDurationSeconds) * time.Second
	validUntil := since.Add(lease - driftMargin(lease))
	if since.IsZero() || !time.Now().Before(validUntil.Add(-c.ahead)) {
		c.log.V(1).Info("renewal gives no lease: it came too late, or followers cannot tell it from a record of unknown age", "renewTime", rec.RenewTime)
		return
	}
	if t := c.term; t != nil && t.ctx.Err() != nil {
		// The term ran out (a pause, or renewals slower than the lease)
		// although the lock is still ours: end it and start a new one, so
		// that leader work that stopped is started again; once that work
		// has returned, so as not to hold up the renewal.
		select {
		case <-t.done:
		default:
			c.publish()
			return
		}
		c.endTerm()
	}
	if t := c.term; t != nil {
		if validUntil.After(t.validUntil) {
			t.extend(since, lease, validUntil)
			c.log.V(2).Info("renewed", "validUntil", validUntil)
		}
		c.publish()
		return
	}
	c.pass.leading()
	_, uid, _ := c.lock.current()
	t := &term{lease: lease, ahead: c.ahead, done: make(chan struct{}), lock: c.lockRef}
	t.lock.UID = uid
	t.token = Term{LockUID: string(uid), LeaderTransitions: rec.LeaderTransitions, t: t}
	t.ctx, t.cancel = context.WithCancel(context.WithValue(c.ctx, termKey{}, t))
	t.expire = time.AfterFunc(time.Hour, t.cancel) // set by extend
	t.extend(since, lease, validUntil)
	c.term = t
	c.metrics.transitions.Inc()
	c.log.Info("became leader", "leaderTransitions", rec.LeaderTransitions)
	c.publish()
	c.labels.set(PodLabelLeader)
	c.events.term(true, t.lock)
	f := c.onStarted
	c.queue.Push(func() {
		defer close(t.done)
		// A term that ended before its callback got to run never started.
		if f == nil || t.ctx.Err() != nil {
			return
		}
		t.started = true
		f(t.ctx)
	})
}

// endTerm ends the current term, if any: it reports not-leader, cancels the
// term's context, waits for the started-leading callback and queues
// stopped-leading. It reports whether there was a term.
func (c *campaign) endTerm() bool {
	t := c.term
	if t == nil {
		return false
	}
	c.term = nil
	t.expire.Stop()
	t.cancel()
	c.publish()
	c.labels.set(PodLabelStandby)
	<-t.done
	c.log.Info("stopped leading")
	c.events.term(false, t.lock)
	if f := c.onStopped; f != nil && t.started {
		c.queue.Push(f)
	}
	return true
}

// release blanks the holder of the lock so that a follower can take over
// without waiting out the TTL. The tracked lock refuses the write unless the
// record it last read or wrote names us, and the write is conditioned on that
// record's resourceVersion, so a release never clears another holder's lock.
func (c *campaign) release(ctx context.Context, deadline time.Time) {
	// Run's context is cancelled by now: detach from it so the request can be
	// sent, and bound it so that shutdown cannot hang on an unreachable API
	// server.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	for range 2 {
		rec, _, _ := c.lock.current()
		now := metav1.NewTime(time.Now())
		err := c.lock.Update(ctx, resourcelock.LeaderElectionRecord{
			LeaseDurationSeconds: 1,
			AcquireTime:          now,
			RenewTime:            now,
			LeaderTransitions:    rec.LeaderTransitions,
		})
		switch {
		case err == nil:
			c.log.Info("released lock")
			return
		case errors.Is(err, errNotHolder):
			c.log.Info("not releasing: another candidate holds the lock", "holder", c.leader)
			return
		case apierrors.IsConflict(err):
			// Someone wrote since our last renewal: read again and decide
			// on what the lock holds now.
			if _, _, err := c.lock.Get(ctx); err != nil {
				return // logged by the tracked lock
			}
		default:
			c.log.Info("could not release the lock; followers take over when the TTL runs out", "err", err.Error())
			return
		}
	}
}

// publish builds the view from the tracked lock's record and the term, and
// publishes it if it shows something new. Leading is derived, not kept: a
// term exists, it has not ended, and the record names us; so a view never
// reports is_leader with another holder.
func (c *campaign) publish() {
	rec, uid, known := c.lock.current()
	v := view{
		known:       known,
		running:     !c.done,
		leader:      rec.HolderIdentity,
		uid:         uid,
		transitions: rec.LeaderTransitions,
		acquireTime: rec.AcquireTime.Time,
		renewTime:   rec.RenewTime.Time,
	}
	if t := c.term; t != nil && t.ctx.Err() == nil && rec.HolderIdentity == c.id {
		v.leading, v.validUntil, v.endsAt = true, t.validUntil, t.endsAt()
		v.renewed, v.lease = t.renewed, t.lease
	}
	c.views.publish(v)
}
