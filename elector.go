// Package elector runs a Kubernetes leader election and reports its state.
//
// An Elector campaigns for a lock object named after the election — a Lease
// by default, or a ConfigMap or Endpoints annotated the way older client-go
// did — using client-go's tools/leaderelection. One candidate at a time holds
// the lock; the others follow and take over when the holder releases it or
// stops renewing it for a TTL.
//
//	e, err := elector.New("my-election",
//		elector.WithRESTConfig(cfg),
//		elector.WithOnStartedLeading(func(ctx context.Context) {
//			// Lead until ctx is cancelled.
//		}),
//	)
//	if err != nil {
//		return err // every invalid option, with its value and what is accepted
//	}
//	go http.ListenAndServe(":5002", e) // GET / reports the Status as JSON
//	return e.Run(ctx)                  // blocks; releases the lock when ctx ends
//
// # Callbacks
//
// The started-leading, stopped-leading and new-leader callbacks run one at a
// time, in the order of the events, on a goroutine Run owns. Started-leading
// gets a context that is cancelled when the term ends; Run waits for it to
// return before it calls stopped-leading, releases the lock, campaigns again
// or returns. Stopped-leading is called once for every started-leading call
// and never otherwise.
//
// # Pod label and Events
//
// With WithPodName, Run labels the candidate's Pod k8s-elector/status=leader
// while it leads and standby otherwise, so that a Service can select the
// leader; with WithEvents, it records an Event on the lock object (and the
// Pod) when a term starts and when it ends. Both are sent in the background
// and retried: they never delay the election, so the label lags leadership
// by a request or more, and a candidate cut off from the API server cannot
// change it at all.
//
// # What is not guaranteed
//
// Leader election on the Kubernetes API gives no fencing: a leader that is
// paused (a GC pause, a stopped process, a partition) can still believe it
// leads after its lease has expired and another candidate has taken over.
// Expiry is judged by each follower's own clock, from when it last saw the
// record change, so clocks need not agree, but they must run at about the
// same rate. Keep the work done under leadership idempotent or guarded on
// the side of the resource it changes.
package elector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/internal/serial"
)

// Errors returned by Run and Resign.
var (
	ErrAlreadyRunning = errors.New("elector: already running")
	ErrNotRunning     = errors.New("elector: not running")
	ErrNotLeader      = errors.New("elector: not leader")
)

// An Elector takes part in one leader election as one candidate. Build it
// with New and start it with Run. It is an http.Handler that reports its
// Status. All methods are safe for concurrent use; an Elector runs at most one
// Run at a time.
type Elector struct {
	election string
	o        options
	client   Client
	view     atomic.Pointer[view]
	rendered atomic.Pointer[statusJSON] // the last GET / body, see statusBody
	running  atomic.Bool
	handler  http.Handler
	metrics  *metrics

	mu        sync.Mutex
	stopPass  context.CancelFunc // ends the current LeaderElector.Run; nil between passes
	following bool               // the current pass has not started a term
	writing   bool               // a write of the lock is in flight
	kickDue   bool               // end the pass as soon as the write in flight is done
	kick      *time.Timer        // a pending kick of the following pass, see scheduleKick
	kickAt    time.Time          // when kick fires
	resignReq *resignRequest     // a pending Resign, taken by Run after the pass

}

// New returns an Elector for the named election. The name is the name of the
// lock object, so it must be a valid DNS-1123 subdomain. New validates every
// option and reports all problems at once; it does no I/O and does not touch
// the cluster.
func New(election string, opts ...Option) (*Elector, error) {
	o := defaults()
	var errs []error
	for i, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("elector: option %d of %d is nil", i+1, len(opts)))
			continue
		}
		opt.apply(&o)
	}
	if err := o.validate(election); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	client, err := o.lockClient()
	if err != nil {
		return nil, errors.Join(err)
	}
	e := &Elector{election: election, o: o, client: client}
	e.publish(view{})
	e.metrics = newMetrics(e)
	e.handler = e.routes()
	return e, nil
}

// Run joins the election and blocks until ctx is cancelled. It campaigns,
// leads while it holds the lock, and campaigns again after losing it. When ctx
// is cancelled while it leads, it ends the term, waits for the started-leading
// callback to return, and releases the lock (unless WithReleaseOnCancel(false))
// so that a follower can take over at once.
//
// Run returns nil after cancellation. Errors from the API server are logged
// and retried, since an operator can fix them (RBAC, a foreign object in the
// way) while Run keeps going; Run returns an error only for what retrying
// cannot fix, such as a second concurrent Run. Every goroutine Run starts has
// exited when it returns.
func (e *Elector) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer e.running.Store(false)

	log := e.o.logger
	if log.GetSink() == nil {
		log = logr.FromContextOrDiscard(ctx)
	}
	log = log.WithName("elector").WithValues("election", e.o.namespace+"/"+e.election, "identity", e.o.id)

	queue := serial.New()
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		queue.Run()
	}()
	defer func() {
		queue.Close()
		<-queueDone
	}()

	c := &campaign{e: e, ctx: logr.NewContext(ctx, log), log: log, queue: queue}
	if e.o.podName != "" {
		c.labels = e.newPodLabeler(log)
		c.labels.set(PodLabelStandby)
	}
	if e.o.events {
		c.events = e.newEventRecorder(log, c.labels)
	}
	// flushBy is when the background work must be done as Run returns.
	var flushBy time.Time
	stopBackground := startBackground(c.ctx, c.labels, c.events)
	defer func() { stopBackground(flushBy) }()
	var watches *lockWatches
	if e.o.watch {
		watches = &lockWatches{changed: e.lockChanged, clientset: e.client}
	}
	inner := newObjectLock(e.o.lockType, e.o.namespace, e.election, e.o.id, e.client, watches)
	if watches != nil {
		// The watches outlive the election loop only until Run returns.
		wctx, stopWatches := context.WithCancel(cgCtxFor(ctx, log))
		var wg sync.WaitGroup
		for _, run := range watches.runs {
			wg.Go(func() { run(wctx) })
		}
		defer func() {
			stopWatches()
			wg.Wait()
		}()
	}
	c.lock = &trackedLock{
		metrics:         e.metrics,
		writing:         e.lockWriting,
		inner:           inner,
		kind:            lockKind(e.o.lockType),
		id:              e.o.id,
		ttl:             e.o.ttl,
		timeout:         e.o.requestTimeout(),
		obs:             c,
		log:             log,
		freeWhenExpired: e.o.watch,
	}
	if e.o.lockType == LockEndpoints || e.o.lockType == LockEndpointsLeases {
		log.Info("the endpoints lock type is deprecated: Kubernetes deprecated v1 Endpoints in 1.33; migrate to leases")
	}
	log.Info("joining election", "lockType", e.o.lockType, "ttl", e.o.ttl,
		"renewDeadline", e.o.renewDeadline, "retryPeriod", e.o.retryPeriod)

	cgCtx := cgCtxFor(ctx, log)
	for {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          c.lock,
			LeaseDuration: e.o.ttl,
			RenewDeadline: e.o.renewDeadline,
			RetryPeriod:   e.o.retryPeriod,
			Name:          e.election,
			// Terms begin synchronously when the tracked lock sees our own
			// write succeed, and end when LeaderElector.Run returns. client-go's
			// callbacks run on goroutines nobody waits for, so they are unused.
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return fmt.Errorf("elector: %w", err) // unreachable: options are validated in New
		}
		// Each pass gets its own context, so that the campaign can stop
		// client-go's renew loop as soon as a read shows another holder, and
		// Resign can end it.
		lctx, stop := context.WithCancel(cgCtx)
		c.stopPass = stop
		e.mu.Lock()
		e.stopPass = stop
		e.following = true
		e.cancelKick()
		e.mu.Unlock()

		le.Run(lctx)

		stop()
		e.mu.Lock()
		e.stopPass = nil
		e.cancelKick()
		req := e.resignReq
		e.resignReq = nil
		e.mu.Unlock()
		stopping := ctx.Err() != nil
		if stopping {
			log.Info("stopping")
		}
		led := c.endTerm()
		releasing := led && (req != nil || stopping && e.o.releaseOnCancel)
		if releasing {
			if d := e.o.releaseDelay; d > 0 {
				// Not leader any more, as Status says; give applications that
				// poll it time to stop leader work before someone else starts.
				log.Info("waiting before releasing the lock", "releaseDelay", d)
				time.Sleep(d)
			}
		}
		deadline := time.Now().Add(e.o.renewDeadline)
		if stopping {
			// The release and the last label and Events share one budget,
			// so that shutdown is bounded even when the API server is out
			// of reach.
			flushBy = time.Now().Add(ShutdownBudget(e.o.renewDeadline))
		}
		if releasing {
			c.release(cgCtx, deadline)
		}
		if req != nil {
			if led {
				req.done <- nil
			} else {
				req.done <- ErrNotLeader
			}
		}
		if stopping {
			log.Info("stopped")
			return nil
		}
		if req != nil && led && req.cooldown > 0 {
			log.Info("resigned; staying out of the election", "cooldown", req.cooldown)
			select {
			case <-time.After(req.cooldown):
				log.Info("rejoining the election")
			case <-ctx.Done():
				log.Info("stopped")
				return nil
			}
		}
	}
}

// cgCtxFor returns ctx with the logger for client-go: client-go logs through
// the context's logger, and its lines repeat ours, so they come one
// verbosity level lower.
func cgCtxFor(ctx context.Context, log logr.Logger) context.Context {
	if log.GetSink() == nil {
		return logr.NewContext(ctx, logr.Discard())
	}
	return logr.NewContext(ctx, logr.New(quietSink{log.GetSink()}))
}

// lockChanged ends the current pass when the watch shows a change that the
// next pass acts on at once: a candidate that is not leading tries to
// acquire a lock that was released or deleted (after a short random wait,
// see kickSpread), or held by another when that holder's lease runs out by
// this candidate's count; a leader whose lock was deleted or taken by another
// steps down. (The watch may lag: acting on an old change can only make a
// leader step down early, or a follower try a write that conflicts.)
func (e *Elector) lockChanged(rec resourcelock.LeaderElectionRecord, deleted bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopPass == nil {
		return
	}
	holder := rec.HolderIdentity
	free := deleted || holder == ""
	if !free {
		// Somebody holds the lock again: a follower has nothing to try
		// before that lease runs out.
		e.cancelKick()
	}
	switch {
	case !e.following && (deleted || holder != "" && holder != e.o.id):
		e.stopPass()
	case e.following && free:
		e.scheduleKick(rand.N(kickSpread))
	case e.following && holder != e.o.id && holder != "?":
		// The tracked lock hands the record over as free from the same
		// instant: the lease counted from this delivery, plus the drift
		// margin. Every follower tries at once; all but one conflict.
		lease := time.Duration(rec.LeaseDurationSeconds) * time.Second
		e.scheduleKick(lease + driftMargin(lease))
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
// later. e.mu must be held.
func (e *Elector) scheduleKick(d time.Duration) {
	at := time.Now().Add(d)
	if e.kick != nil {
		if !e.kickAt.After(at) {
			return
		}
		e.kick.Stop()
	}
	e.kickAt = at
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.kick != t {
			return // cancelled
		}
		e.kick = nil
		switch {
		case !e.following || e.stopPass == nil:
			// The pass started a term, or ended: nothing to try.
		case e.writing:
			e.kickDue = true
		default:
			e.following = false
			e.stopPass()
		}
	})
	e.kick = t
}

// cancelKick drops a kick that is pending or due. e.mu must be held.
func (e *Elector) cancelKick() {
	if e.kick != nil {
		e.kick.Stop()
		e.kick = nil
	}
	e.kickDue = false
}

// lockWriting notes writes of the lock in flight, for lockChanged.
func (e *Elector) lockWriting(inFlight bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writing = inFlight
	if !inFlight && e.kickDue {
		e.kickDue = false
		if e.following && e.stopPass != nil {
			e.following = false
			e.stopPass()
		}
	}
}

// ShutdownBudget is how long Run takes at most to return once its context
// is cancelled, given the renew deadline: the release of the lock (at most
// the renew deadline) and the last Pod label and Events (until the budget
// runs out) share it. On top of it come the started-leading callback's own
// return and the release delay, which Run waits for first. Size a Pod's
// terminationGracePeriodSeconds from it: with the default TTL of 10s it is
// 3.33s + 1s.
func ShutdownBudget(renewDeadline time.Duration) time.Duration { return renewDeadline + time.Second }

// flushTimeout bounds the background flush when Run returns without a
// shutdown budget (it cannot: only cancellation ends Run).
const flushTimeout = time.Second

// backgroundWorker is work that Run hands off so that the election never
// waits for it: the Pod label and Events.
type backgroundWorker interface {
	// run works until finish has been called and the work is done, or ctx
	// ends.
	run(ctx context.Context)
	// finish asks run to complete the work at hand and return.
	finish()
}

// startBackground runs the workers that are not nil, each on a goroutine of
// its own, and returns the function that stops them: it calls finish on each,
// gives them until by (or flushTimeout, if by is zero) to complete, and waits
// for them to return. Their context is detached from ctx, which is cancelled
// by then: the standby label and the stopped-leading Events must still be
// sent.
func startBackground(ctx context.Context, labels *podLabeler, events *eventRecorder) (stop func(by time.Time)) {
	var workers []backgroundWorker
	if labels != nil {
		workers = append(workers, labels)
	}
	if events != nil {
		workers = append(workers, events)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(ctx) })
	}
	return func(by time.Time) {
		for _, w := range workers {
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

// resignRequest asks Run to step down.
type resignRequest struct {
	cooldown time.Duration
	done     chan error // buffered: Run never blocks on it
}

// Resign hands leadership over: the Elector reports not-leader, ends the term
// (waiting for the started-leading callback), waits the release delay,
// releases the lock, and then stays out of the election for one lease
// duration, so that a follower takes over, before it campaigns again. It is
// ResignFor with a cooldown of the TTL.
func (e *Elector) Resign(ctx context.Context) error {
	return e.ResignFor(ctx, e.o.ttl)
}

// ResignFor is Resign with a chosen cooldown. It blocks until the lock is
// released, or ctx is done, in which case the step-down goes on without the
// caller. It returns ErrNotLeader if this candidate does not lead, and
// ErrNotRunning if Run is not running.
func (e *Elector) ResignFor(ctx context.Context, cooldown time.Duration) error {
	req := &resignRequest{cooldown: cooldown, done: make(chan error, 1)}
	e.mu.Lock()
	switch {
	case !e.running.Load():
		e.mu.Unlock()
		return ErrNotRunning
	case !e.Status().IsLeader || e.stopPass == nil:
		e.mu.Unlock()
		return ErrNotLeader
	case e.resignReq != nil:
		// Another Resign is under way: wait for the same outcome.
		req = e.resignReq
	default:
		e.resignReq = req
		e.stopPass()
	}
	e.mu.Unlock()
	select {
	case err := <-req.done:
		req.done <- err // for any other caller waiting on the same request
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// campaign is the state of one Run. Only the goroutine running the election
// touches it.
type campaign struct {
	e        *Elector
	ctx      context.Context // Run's context, with the Elector's logger
	log      logr.Logger
	queue    *serial.Queue
	lock     *trackedLock
	stopPass context.CancelFunc // ends the current LeaderElector.Run
	labels   *podLabeler        // nil without WithPodName
	events   *eventRecorder     // nil without WithEvents

	known  bool                              // the lock has been read (or found missing) once
	record resourcelock.LeaderElectionRecord // the last record read or written
	uid    types.UID                         // of the object holding record
	leader string                            // record.HolderIdentity, as last reported
	term   *term                             // the current term, nil while following
}

// term is one period of leadership.
type term struct {
	ctx        context.Context
	cancel     context.CancelFunc
	expire     *time.Timer            // cancels ctx at validUntil
	renewed    time.Time              // send time of the write that followers last saw change the record
	lease      time.Duration          // lease duration of that write
	validUntil time.Time              // renewed + lease - drift margin; monotonic
	done       chan struct{}          // closed when the started-leading callback is over
	started    bool                   // the callback ran; read only after done is closed
	lock       corev1.ObjectReference // the lock object the term holds, for Events
}

// observed implements lockObserver.
func (c *campaign) observed(rec resourcelock.LeaderElectionRecord, uid types.UID) {
	c.see(rec, uid, false)
}

// absent implements lockObserver: the lock object does not exist, so nobody
// leads.
func (c *campaign) absent() {
	c.see(resourcelock.LeaderElectionRecord{}, "", true)
}

func (c *campaign) see(rec resourcelock.LeaderElectionRecord, uid types.UID, gone bool) {
	c.record, c.uid, c.known = rec, uid, true
	if t := c.term; t != nil && rec.HolderIdentity != c.e.o.id {
		// Someone else holds the lock, or nobody does: the term is over
		// now, whatever client-go's renew loop would conclude by its
		// deadline.
		if gone {
			c.log.Info("lock object deleted while leading")
		} else {
			c.log.Info("lock taken over while leading", "holder", rec.HolderIdentity)
		}
		t.cancel()
		c.stopPass()
	}
	if rec.HolderIdentity == c.leader {
		c.publish()
		return
	}
	c.leader = rec.HolderIdentity
	if c.leader == "" {
		c.log.Info("no leader: the lock is released or does not exist")
	} else if c.leader != c.e.o.id {
		c.log.Info("new leader observed", "leader", c.leader)
	}
	if f := c.e.o.onNewLeader; f != nil {
		leader := c.leader
		c.queue.Push(func() { f(leader) })
	}
	c.publish()
}

// wrote implements lockObserver. A successful write naming us starts a term,
// or extends the current one, to the lease duration after since: followers
// count the lease from when they observe the record change, which is later,
// so until then nobody else can acquire. A write that does not reach past
// now (since unknown, or long past) leaves the term as it is.
func (c *campaign) wrote(rec resourcelock.LeaderElectionRecord, since time.Time) {
	if rec.HolderIdentity != c.e.o.id {
		return
	}
	lease := time.Duration(rec.LeaseDurationSeconds) * time.Second
	validUntil := since.Add(lease - driftMargin(lease))
	if since.IsZero() || !time.Now().Before(validUntil) {
		c.log.V(1).Info("renewal gives no lease: followers cannot tell it from a record of unknown age", "renewTime", rec.RenewTime)
		return
	}
	if t := c.term; t != nil && t.ctx.Err() != nil {
		// The term ran out (a pause, or renewals slower than the lease)
		// although the lock is still ours: end it and start a new one, so
		// that leader work that stopped is started again.
		c.endTerm()
	}
	if t := c.term; t != nil {
		if validUntil.After(t.validUntil) {
			t.renewed, t.lease = since, lease
			t.validUntil = validUntil
			t.expire.Reset(time.Until(validUntil))
			c.log.V(2).Info("renewed", "validUntil", validUntil)
		}
		c.publish()
		return
	}
	c.e.mu.Lock()
	c.e.following = false // a kick must not end this pass now
	c.e.mu.Unlock()
	ctx, cancel := context.WithCancel(c.ctx)
	t := &term{ctx: ctx, cancel: cancel, renewed: since, lease: lease, validUntil: validUntil, done: make(chan struct{}),
		lock: c.e.lockRef(c.uid)}
	t.expire = time.AfterFunc(time.Until(validUntil), cancel)
	c.term = t
	c.e.metrics.transitions.Inc()
	c.log.Info("became leader", "leaderTransitions", rec.LeaderTransitions)
	c.publish()
	c.labels.set(PodLabelLeader)
	c.events.term(true, t.lock)
	f := c.e.o.onStarted
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

// driftMargin is how much earlier than the lease duration a leader considers
// its lease over. Followers measure the lease duration on their own clocks;
// the margin covers a follower whose clock runs up to 2% faster than ours.
func driftMargin(lease time.Duration) time.Duration { return lease / 50 }

// endTerm ends the current term, if any: it reports not-leader, cancels the
// term's context, waits for the started-leading callback and queues
// stopped-leading. It reports whether there was a term.
func (c *campaign) endTerm() bool {
	t := c.term
	if t == nil {
		return false
	}
	c.term = nil
	c.publish()
	c.labels.set(PodLabelStandby)
	t.expire.Stop()
	t.cancel()
	<-t.done
	c.log.Info("stopped leading")
	c.events.term(false, t.lock)
	if f := c.e.o.onStopped; f != nil && t.started {
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
	// sent, and bound it (by the renew deadline) so that shutdown cannot hang
	// on an unreachable API server.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	for range 2 {
		transitions := 0
		if c.lock.last != nil {
			transitions = c.lock.last.LeaderTransitions
		}
		now := metav1.NewTime(time.Now())
		err := c.lock.Update(ctx, resourcelock.LeaderElectionRecord{
			LeaseDurationSeconds: 1,
			AcquireTime:          now,
			RenewTime:            now,
			LeaderTransitions:    transitions,
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

func (c *campaign) publish() {
	v := view{
		known:       c.known,
		leader:      c.leader,
		uid:         c.uid,
		transitions: c.record.LeaderTransitions,
		acquireTime: c.record.AcquireTime.Time,
		renewTime:   c.record.RenewTime.Time,
	}
	if c.term != nil {
		v.leading, v.validUntil = true, c.term.validUntil
		v.renewed, v.lease = c.term.renewed, c.term.lease
	}
	c.e.publish(v)
}

// quietSink passes client-go's log lines on one verbosity level lower, and its
// error lines as V(1) info: the Elector logs the same events itself, once per
// change rather than once per retry.
type quietSink struct{ logr.LogSink }

// Init does nothing: the wrapped sink was initialised by its own Logger, and
// initialising it again would change that Logger's call depth.
func (s quietSink) Init(logr.RuntimeInfo)  {}
func (s quietSink) Enabled(level int) bool { return s.LogSink.Enabled(level + 1) }
func (s quietSink) Info(level int, msg string, kv ...any) {
	s.LogSink.Info(level+1, msg, kv...)
}
func (s quietSink) Error(err error, msg string, kv ...any) {
	if s.LogSink.Enabled(1) {
		s.LogSink.Info(1, msg, append(kv, "err", err)...)
	}
}
func (s quietSink) WithValues(kv ...any) logr.LogSink { return quietSink{s.LogSink.WithValues(kv...)} }
func (s quietSink) WithName(name string) logr.LogSink { return quietSink{s.LogSink.WithName(name)} }
