package elector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/internal/serial"
)

// loop is one Run's election: it owns the record as last seen, the term
// and the timers, and decides every read and write of the lock, one turn at
// a time (its driver never runs two at once). The watch, the candidacy gate
// and Resign are inputs to it (changed, inbox); nothing else reaches into
// its state.
//
// Its states follow from the record and the term:
//   - following: the record is not ours. It reads the lock every retry
//     period (served by the watch without a request when it has one), and
//     tries to acquire when the lock is free, or when the lease it saw runs
//     out by its own clock: with the watch, at that instant.
//   - leading: the record is ours and a term lasts. It renews every renew
//     interval; a renewal that fails is retried every retry period until
//     the renew deadline, when the term ends. Polling, it reads the lock
//     every retry period between renewals.
//   - holding: the record is ours but no term lasts (a renewal that gave no
//     lease followers can see, or a term that ran out): it renews as a
//     leader does, and the next renewal that gives a lease starts a term.
//   - stepping down: the term ends, the leader work returns, and the lock is
//     released if it is still ours.
type loop struct {
	id       string
	o        *options
	rec      *observed
	log      logr.Logger
	queue    *serial.Queue // runs the callbacks in order
	views    *views
	metrics  *metrics
	inbox    *inbox
	gate     *gate          // nil without a candidacy gate
	events   *eventRecorder // nil without WithEvents
	registry *registry      // the candidates, to name a successor
	lockRef  corev1.ObjectReference
	ahead    time.Duration // how long before validUntil a term ends: options.ahead
	changed  chan struct{} // the watch showed a change; nil without the watch
	driver   *driver       // runs the loop's turns; every input wakes it
	timer    *time.Timer   // wakes the driver at next

	onStarted   func(context.Context)
	onStopped   func()
	onNewLeader func(string)

	leader     string    // the holder as last reported
	term       *term     // the current term, nil while not leading
	next       time.Time // when to read or write next
	renewSince time.Time // when the first of the failing renewals was sent; zero after a success
	renewAt    time.Time // when the next renewal is due after a successful write
	notBefore  time.Time // no acquisition before then: a resignation's cooldown
	spread     time.Duration
	spreadFor  time.Time // the change spread was drawn for
	flushBy    time.Time // set at shutdown: when the background work must be done
	done       bool      // Run is returning: the last view is published
	// The handover requests on the lock object (handover.go): the last one
	// taken, the one to act on, and the refusal the next write records.
	answered string
	request  *handoverRequest
	answer   []handoverRefusal
}

// kickSpread bounds the random wait of a follower that saw the lock freed
// before it tries to take it. Every follower sees the release at about the
// same moment; the spread lets the first one's acquisition reach the others'
// watches before most of them have sent a write that can only conflict. It
// adds kickSpread/(followers+1) to a graceful failover on average.
const kickSpread = 50 * time.Millisecond

// passOverSpread bounds the random wait of a follower that passes over a
// successor which has not taken the lock by the end of its window: half of
// kickSpread, so that another candidate leads by the window's end plus
// 25ms and a write, within the 50ms the handover promises.
const passOverSpread = kickSpread / 2

// drive starts the election, which runs until ctx ends, steps down, and
// then calls finished; drive returns at once. The loop has no goroutine of
// its own: its driver runs its turns on a goroutine while an input is due
// (drive.go).
func (l *loop) drive(ctx context.Context, finished func()) {
	l.publish()
	l.timer = time.AfterFunc(time.Hour, l.driver.wake) // set at each turn's end
	stopWake := context.AfterFunc(ctx, l.driver.wake)
	l.inbox.notify(l.driver.wake)
	l.driver.start(func() bool {
		if !l.turn(ctx) {
			return false
		}
		l.timer.Stop()
		stopWake()
		l.inbox.notify(nil)
		finished()
		return true
	})
}

// closed is a closed channel: a step that is due.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// turn takes the loop's inputs one at a time, as a loop around a select
// would, until none is due; then it sets the timer for the next step and
// returns false. Once ctx has ended, it steps down and returns true.
func (l *loop) turn(ctx context.Context) (finished bool) {
	for {
		var ended, due <-chan struct{}
		if l.term != nil {
			ended = l.term.ctx.Done()
		}
		if !time.Now().Before(l.next) {
			due = closed
		}
		select {
		case <-ctx.Done():
		case <-l.changed:
			l.read(ctx)
		case <-ended:
			if ctx.Err() == nil {
				l.endTerm()
			}
		case <-l.inbox.wake:
			if !l.rec.ours() {
				l.next = time.Now() // the gate may have opened
			}
			l.registry.kick()
		case <-due:
			l.attempt(ctx)
		default:
			l.timer.Reset(time.Until(l.next))
			return false
		}
		if ctx.Err() != nil {
			l.log.Info("stopping")
			l.stepDown(ctx, l.o.releaseOnCancel, true, l.inbox.handOffTo())
			return true
		}
		if req := l.inbox.take(); req != nil {
			l.resign(ctx, req)
		}
		if req := l.request; req != nil {
			l.request = nil
			l.handover(ctx, *req)
		}
	}
}

// read takes what the lock holds now, from the watch's cache when it has
// it, and acts on it.
func (l *loop) read(ctx context.Context) {
	if err := l.rec.read(ctx); err != nil {
		l.publish()
		return
	}
	l.saw()
	if !l.rec.ours() {
		l.schedule(time.Now(), false)
	}
}

// attempt is the loop's timed step: a renewal while the record is ours,
// else a read and, when the lock is free or its lease ran out, an
// acquisition.
func (l *loop) attempt(ctx context.Context) {
	if l.rec.ours() {
		if l.term == nil && l.gate != nil && !l.gate.open() {
			// Holding the lock without a term while the application is
			// not ready: let a ready candidate have it.
			l.stepDown(ctx, true, false, "")
			l.schedule(time.Now(), false)
			return
		}
		if now := time.Now(); now.Before(l.renewAt) {
			l.check(ctx, now) // polling between renewals
			return
		}
		l.renew(ctx)
		if l.term == nil || !l.rec.ours() {
			return
		}
		rec, _, _ := l.rec.record()
		if p := rec.PreferredHolder; p != "" && p != l.id && l.registry.refuse(p, time.Now()) == "" {
			// Coordinated Leader Election's coordinator prefers another
			// candidate, which is ready: hand over to it, as it asks.
			l.log.Info("the Lease's preferred holder is another candidate: handing over", "successor", p)
			l.stepDown(ctx, true, false, p)
			l.schedule(time.Now(), false)
		} else if to := l.registry.preemptor(time.Now(), l.o.ttl); to != "" {
			// Availability first: only a candidate that has been ready
			// for a TTL, with a higher priority, takes over, gracefully.
			l.log.Info("a candidate with a higher priority is ready: handing over", "successor", to)
			l.stepDown(ctx, true, false, to)
			l.schedule(time.Now(), false)
		}
		return
	}
	if err := l.rec.read(ctx); err != nil {
		l.publish()
		l.schedule(time.Now(), true)
		return
	}
	l.saw()
	if l.rec.ours() {
		l.renew(ctx) // our own write, whose answer was lost
		return
	}
	now := time.Now()
	at, ok := l.acquireAt(now)
	if !ok || now.Before(at) {
		l.schedule(now, false)
		return
	}
	if l.write(ctx, l.claim(now)) {
		l.renewed(time.Now())
		return
	}
	l.schedule(time.Now(), true)
}

// renewed schedules the next step after a successful write naming us: the
// renewal, a renew interval later. Polling, the leader also reads the lock
// every retry period until then, so that it sees another's write as soon as
// a leader that renews every retry period would.
func (l *loop) renewed(now time.Time) {
	l.renewAt = now.Add(l.o.renewInterval)
	l.next = l.renewAt
	if read := now.Add(l.o.retryPeriod); !l.o.watch && read.Before(l.next) {
		l.next = read
	}
}

// check is a polling leader's read between renewals: it acts on what the
// lock holds, and reads again a retry period later or renews.
func (l *loop) check(ctx context.Context, now time.Time) {
	if l.rec.read(ctx) != nil {
		l.publish()
	} else {
		l.saw()
	}
	if !l.rec.ours() {
		l.schedule(time.Now(), false)
		return
	}
	if l.next = time.Now().Add(l.o.retryPeriod); l.renewAt.Before(l.next) {
		l.next = l.renewAt
	}
}

// acquireAt returns when this candidate may try to take the lock, and false
// if it may not at all now.
func (l *loop) acquireAt(now time.Time) (time.Time, bool) {
	if l.gate != nil && !l.gate.open() || !l.rec.gone && l.rec.rec == nil {
		return time.Time{}, false // the gate is closed, or nothing was read
	}
	if now.Before(l.notBefore) {
		return l.notBefore, true // a resignation's cooldown, handed the lock or not
	}
	r := l.rec
	if !r.gone && r.rec.HolderIdentity == "" && r.successor == l.id {
		return r.lastChange, true // handed to us: take it now, without a spread
	}
	var at time.Time
	switch {
	case r.gone:
		at = r.createAt()
	case r.rec.HolderIdentity == "" && r.successor != "":
		at = r.lastChange.Add(successorWindow) // the successor's window
	case r.rec.HolderIdentity == "":
		at = r.lastChange
	case l.o.watch:
		at = r.expiry()
	default:
		// Polling keeps client-go's rule: the lease runs from when this
		// candidate saw the record change, with no margin of its own.
		at = r.lastChange.Add(time.Duration(r.rec.LeaseDurationSeconds) * time.Second)
	}
	if l.o.watch && r.freed {
		// Every follower saw it freed at about the same moment.
		freeSince := r.lastChange
		if r.gone {
			freeSince = r.goneSince
		}
		if !l.spreadFor.Equal(freeSince) {
			bound := kickSpread
			if !r.gone && r.successor != "" {
				bound = passOverSpread
			}
			l.spread, l.spreadFor = rand.N(bound), freeSince
		}
		at = at.Add(l.spread)
	}
	return at, true
}

// schedule sets the next step of a candidate whose record is not ours: at
// the next retry (jittered as client-go's), or, with the watch, when the
// lock can be taken if that comes first. An attempt that just failed waits
// for the retry.
func (l *loop) schedule(now time.Time, failed bool) {
	retry := l.o.retryPeriod
	l.next = now.Add(retry + time.Duration(rand.Float64()*jitterFactor*float64(retry)))
	if !l.o.watch {
		return
	}
	if at, ok := l.acquireAt(now); ok && at.Before(l.next) && !(failed && !at.After(now)) {
		l.next = at
	}
}

// claim is the record of an acquisition: a new holder, so one more
// transition. Every write keeps the Lease's strategy and preferred holder,
// which a coordinator of Coordinated Leader Election (KEP-4355) sets, as
// they were: an Elector never erases them.
func (l *loop) claim(now time.Time) resourcelock.LeaderElectionRecord {
	rec, _, _ := l.rec.record()
	t := metav1.NewTime(now)
	transitions := rec.LeaderTransitions + 1
	if l.rec.gone || l.rec.rec == nil {
		transitions = 0
	}
	return resourcelock.LeaderElectionRecord{
		HolderIdentity:       l.id,
		LeaseDurationSeconds: int(l.o.ttl / time.Second),
		AcquireTime:          t,
		RenewTime:            t,
		LeaderTransitions:    transitions,
		Strategy:             rec.Strategy,
		PreferredHolder:      rec.PreferredHolder,
	}
}

// renew writes our record again with a new renew time.
func (l *loop) renew(ctx context.Context) {
	old, _, _ := l.rec.record()
	sent := time.Now()
	rec := resourcelock.LeaderElectionRecord{
		HolderIdentity:       l.id,
		LeaseDurationSeconds: int(l.o.ttl / time.Second),
		AcquireTime:          old.AcquireTime,
		RenewTime:            metav1.NewTime(sent),
		LeaderTransitions:    old.LeaderTransitions,
		Strategy:             old.Strategy,
		PreferredHolder:      old.PreferredHolder,
	}
	if l.write(ctx, rec) {
		l.renewSince = time.Time{}
		l.renewed(time.Now())
		return
	}
	if !l.rec.ours() {
		l.schedule(time.Now(), true)
		return
	}
	if l.renewSince.IsZero() {
		l.renewSince = sent
	}
	l.next = time.Now().Add(l.o.retryPeriod)
	if l.term != nil && !l.next.Before(l.renewSince.Add(l.o.renewDeadline)) {
		l.log.Info("could not renew the lease within the renew deadline: stepping down", "renewDeadline", l.o.renewDeadline)
		l.endTerm()
	}
}

// write sends rec and acts on the outcome: a write naming us starts or
// extends a term; a lost race reads the lock again from the API server.
func (l *loop) write(ctx context.Context, rec resourcelock.LeaderElectionRecord) bool {
	since, err := l.send(ctx, rec, extras{refused: l.answer})
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
			// Someone wrote since our last read: decide on what the lock
			// holds now.
			if l.rec.read(ctx) == nil {
				l.saw()
			}
		}
		l.publish()
		return false
	}
	l.answer = nil
	l.saw()
	if rec.HolderIdentity == l.id {
		l.wrote(ctx, rec, since)
	}
	return true
}

// send writes rec to the lock, with x, bounded by the request timeout, and
// hands the outcome to the record as last seen: a write passes from here to
// the lock kind, and from there to the client.
func (l *loop) send(ctx context.Context, rec resourcelock.LeaderElectionRecord, x extras) (since time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.rec.timeout)
	defer cancel()
	verb, op, do := l.rec.writer(rec, x)
	if err := ctx.Err(); err != nil {
		// A client may send a request even with a cancelled context.
		return time.Time{}, fmt.Errorf("%s %s %s: %w", verb, l.rec.kind, l.rec.lock.describe(), err)
	}
	sent := time.Now()
	r, err := do(ctx, rec)
	return l.rec.wrote(verb, op, rec, sent, r, err)
}

// saw acts on the record as last seen: a term ends as soon as the record is
// not ours, and a change of holder is reported.
func (l *loop) saw() {
	rec, _, _ := l.rec.record()
	if t := l.term; t != nil && !l.rec.ours() {
		switch {
		case l.rec.gone:
			l.log.Info("lock object deleted while leading")
		case rec.HolderIdentity == l.id:
			l.log.Info("lock renewed by another process with this candidate's ID while leading: stepping down")
		default:
			l.log.Info("lock taken over while leading", "holder", rec.HolderIdentity)
		}
		l.endTerm()
	}
	if req, ok := parseRequest(l.rec.request); ok && l.term != nil && l.rec.ours() && req.ID != l.answered {
		l.answered, l.request = req.ID, &req
	}
	if holder := rec.HolderIdentity; holder != l.leader {
		l.leader = holder
		switch {
		case holder == "":
			l.log.Info("no leader: the lock is released or does not exist")
		case holder != l.id:
			l.log.Info("new leader observed", "leader", holder)
		}
		if f := l.onNewLeader; f != nil {
			l.queue.Push(func() { f(holder) })
		}
	}
	l.publish()
}

// wrote starts a term, or extends the current one, after a successful write
// naming us: to the lease duration after since, the send time of the first
// write that gave followers what they now compare. A write that does not
// reach past now (since unknown, or long past), or that lands after Run was
// cancelled, leaves the term as it is.
func (l *loop) wrote(ctx context.Context, rec resourcelock.LeaderElectionRecord, since time.Time) {
	if ctx.Err() != nil {
		return // a write in flight when Run was cancelled: no new term
	}
	lease := time.Duration(rec.LeaseDurationSeconds) * time.Second
	validUntil := since.Add(lease - driftMargin(lease))
	if since.IsZero() || !time.Now().Before(validUntil.Add(-l.ahead)) {
		l.log.V(1).Info("renewal gives no lease: it came too late, or followers cannot tell it from a record of unknown age", "renewTime", rec.RenewTime)
		return
	}
	if t := l.term; t != nil && t.ctx.Err() != nil {
		l.endTerm() // it ran out although the lock is still ours
	}
	if t := l.term; t != nil {
		if validUntil.After(t.validUntil) {
			t.extend(since, lease, validUntil)
			l.log.V(2).Info("renewed", "validUntil", validUntil)
		}
		l.publish()
		return
	}
	_, uid, _ := l.rec.record()
	t := &term{lease: lease, ahead: l.ahead, done: make(chan struct{}), lock: l.lockRef}
	t.lock.UID = uid
	t.token = Term{LockUID: string(uid), LeaderTransitions: rec.LeaderTransitions, t: t}
	t.ctx, t.cancel = context.WithCancel(context.WithValue(ctx, termKey{}, t))
	context.AfterFunc(t.ctx, l.driver.wake)        // the term's end is an input
	t.expire = time.AfterFunc(time.Hour, t.cancel) // set by extend
	t.extend(since, lease, validUntil)
	l.term = t
	l.registry.lead(true)
	if g := l.o.group; g != nil {
		g.termChanged()
	}
	l.metrics.started()
	l.log.Info("became leader", "leaderTransitions", rec.LeaderTransitions)
	l.publish()
	l.events.term(true, t.lock)
	f := l.onStarted
	l.queue.Push(func() {
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
// term's context, waits for the started-leading callback, queues
// stopped-leading and records the term's end as an Event.
func (l *loop) endTerm() {
	if lock, ended := l.closeTerm(); ended {
		l.events.term(false, lock)
	}
}

// closeTerm is endTerm without the Event: it returns the lock object the
// Event is about, and whether a term ended.
func (l *loop) closeTerm() (lock corev1.ObjectReference, ended bool) {
	t := l.term
	if t == nil {
		return lock, false
	}
	l.term = nil
	l.registry.lead(false)
	if g := l.o.group; g != nil {
		g.termChanged()
	}
	t.expire.Stop()
	t.cancel()
	l.publish()
	<-t.done
	l.log.Info("stopped leading")
	if f := l.onStopped; f != nil && t.started {
		l.queue.Push(f)
	}
	return t.lock, true
}

// resign steps down for req, handing the lock to its successor if it names
// one, and stays out of the election for its cooldown, following it
// meanwhile.
func (l *loop) resign(ctx context.Context, req *resignRequest) {
	if l.term == nil && !l.rec.ours() {
		req.done <- ErrNotLeader
		return
	}
	l.stepDown(ctx, true, false, req.to)
	req.done <- nil
	now := time.Now()
	l.notBefore = now.Add(req.cooldown)
	l.registry.stayOut(l.notBefore)
	if req.cooldown > 0 {
		l.log.Info("resigned; staying out of the election", "cooldown", req.cooldown)
	}
	l.schedule(now, false)
}

// handover acts on a handover request while leading: a release naming the
// successor (the one asked for, or the best) and a cooldown of a TTL, as
// ResignTo; or, when that cannot be, a renewal that records the refusal.
func (l *loop) handover(ctx context.Context, req handoverRequest) {
	if l.term == nil || !l.rec.ours() {
		return
	}
	now := time.Now()
	to, reason := req.To, ""
	switch {
	case to == l.id:
		reason = fmt.Sprintf("%s leads already", to)
	case to == "":
		if to = l.registry.successor(now); to == "" {
			reason = "no other candidate is ready"
		}
	default:
		reason = l.registry.refuse(to, now)
	}
	if reason != "" {
		l.log.Info("refusing a handover request", "to", req.To, "reason", reason)
		l.answer = append(l.answer, handoverRefusal{ID: req.ID, Reason: reason})
		l.renew(ctx)
		return
	}
	l.log.Info("handing over on request", "successor", to)
	l.stepDown(ctx, true, false, to)
	l.notBefore = time.Now().Add(l.o.ttl)
	l.registry.stayOut(l.notBefore)
	l.schedule(time.Now(), false)
}

// stepDown ends the term and, if release and the record is still ours,
// releases the lock, naming successor if it is not empty: after the release
// delay, and once the WithBeforeRelease function has run. At shutdown, the
// release and the background work that follows share the shutdown budget.
func (l *loop) stepDown(ctx context.Context, release, shutdown bool, successor string) {
	if release && successor == "" && l.term != nil {
		// Chosen while the term's view of the candidates lasts.
		successor = l.registry.successor(time.Now())
	}
	// The Event of the term's end is posted after the release, which it
	// would otherwise race to the API server: the release is what the
	// successor waits for.
	lock, ended := l.closeTerm()
	if ended {
		defer l.events.term(false, lock)
	}
	if release && l.rec.ours() {
		if d := l.o.releaseDelay; d > 0 {
			// Not leader any more, as Status says; give applications that
			// poll it time to stop leader work before someone else starts.
			l.log.Info("waiting before releasing the lock", "releaseDelay", d)
			time.Sleep(d)
		}
		if f := l.o.beforeRelease; f != nil {
			// Detached from Run's context, which may be cancelled by
			// now, and bounded as the release is.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.renewDeadline)
			if err := f(hctx, l.views.status(time.Now())); err != nil {
				l.log.Error(err, "the function run before releasing the lock failed")
			}
			cancel()
		}
	}
	now := time.Now()
	if shutdown {
		l.flushBy = now.Add(l.o.shutdownBudget())
	}
	if release && l.rec.ours() {
		l.release(ctx, now.Add(l.o.renewDeadline), successor)
	}
}

// release blanks the holder of the lock so that a follower can take over
// without waiting out the TTL, as client-go does: an empty holder and a
// lease of one second. The same write names successor, if not empty, to
// take over first (handover.go). It writes only while the record as last
// seen is our own write, and the write is conditioned on that object's
// resourceVersion, so a release never clears another holder's lock.
func (l *loop) release(ctx context.Context, deadline time.Time, successor string) {
	// Run's context may be cancelled by now: detach from it so the request
	// can be sent, and bound it so that shutdown cannot hang on an
	// unreachable API server.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	for range 2 {
		if !l.rec.ours() {
			rec, _, _ := l.rec.record()
			l.log.Info("not releasing: another candidate holds the lock", "holder", rec.HolderIdentity)
			return
		}
		rec, _, _ := l.rec.record()
		now := metav1.NewTime(time.Now())
		_, err := l.send(ctx, resourcelock.LeaderElectionRecord{
			LeaseDurationSeconds: 1,
			AcquireTime:          now,
			RenewTime:            now,
			LeaderTransitions:    rec.LeaderTransitions,
			Strategy:             rec.Strategy,
			PreferredHolder:      rec.PreferredHolder,
		}, extras{successor: successor})
		switch {
		case err == nil && successor != "":
			l.log.Info("released lock to a successor", "successor", successor)
			l.saw()
			return
		case err == nil:
			l.log.Info("released lock")
			l.saw()
			return
		case apierrors.IsConflict(err):
			// Someone wrote since our last renewal: read again and decide
			// on what the lock holds now.
			if l.rec.read(ctx) != nil {
				return // logged
			}
			l.saw()
		default:
			if !errors.Is(err, context.Canceled) {
				l.log.Info("could not release the lock; followers take over when the TTL runs out", "err", err.Error())
			}
			return
		}
	}
}

// publish builds the view from the record as last seen and the term, and
// publishes it if it shows something new. Leading is derived, not kept: a
// term exists, it has not ended, and the record is ours; so a view never
// reports is_leader with another holder.
func (l *loop) publish() {
	rec, uid, known := l.rec.record()
	v := view{
		known:       known,
		running:     !l.done,
		leader:      rec.HolderIdentity,
		uid:         uid,
		transitions: rec.LeaderTransitions,
		acquireTime: rec.AcquireTime.Time,
		renewTime:   rec.RenewTime.Time,
	}
	if t := l.term; t != nil && t.ctx.Err() == nil && l.rec.ours() {
		v.leading, v.validUntil, v.endsAt, v.term = true, t.validUntil, t.endsAt(), t
		v.renewed, v.lease = t.renewed, t.lease
	}
	l.views.publish(v)
}
