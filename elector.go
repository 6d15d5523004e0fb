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
// # Running a command
//
// WithCommand makes a program the leader work: it runs only while this
// candidate leads, gets the term's fencing token in its environment, and is
// stopped (SIGTERM, then SIGKILL after WithCommandGrace) when the term ends.
// The term ends early enough for it to be dead before any follower can
// acquire; Run releases the lock only once it has exited; and it dies with
// the process, even by SIGKILL. The command-line tool runs its arguments
// after -- this way.
//
// # Candidacy and push
//
// WithCandidacyGate (or WithReadyURL) lets a candidate campaign only while
// its application is ready, and makes a leader whose application fails step
// down. WithNotifyURL and WithStatusFile push the status to the application
// at every change, for applications that are not written in Go.
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
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/leaderelection"

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
	views    *views
	metrics  *metrics
	pass     passControl
	cmd      *supervisor // nil without WithCommand
	gate     *gate       // nil without a candidacy gate
	running  atomic.Bool

	handlerOnce sync.Once
	handler     http.Handler
}

// New returns an Elector for the named election. The name is the name of the
// lock object, so it must be a valid DNS-1123 subdomain. New validates every
// option and reports all problems at once, joined (errors.Join), each with
// the value and what is accepted; it does not touch the cluster, and its only
// I/O is reading the hostname (for the default ID), looking the command of
// WithCommand up, and checking that the directory of WithStatusFile takes a
// file.
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
	vs := newViews(o.id)
	e := &Elector{
		election: election,
		o:        o,
		client:   client,
		views:    vs,
		metrics:  newMetrics(o.namespace+"/"+election, o.id, vs, o.command != nil, o.gate != nil),
		pass:     passControl{id: o.id, ttl: o.ttl},
	}
	if o.command != nil {
		s := &supervisor{
			path:  o.commandPath,
			argv:  o.command,
			env:   []string{EnvElection + "=" + election, EnvNamespace + "=" + o.namespace, EnvID + "=" + o.id},
			grace: o.commandGrace, margin: driftMargin(o.ttl),
			exit: o.commandExit, ttl: o.ttl,
			start: o.startProcess, pass: &e.pass, views: vs, metrics: e.metrics,
		}
		s.reaper = newReaper(s.pid)
		vs.update(func(v *view) { v.command = CommandStatus{State: CommandNotRunning} })
		e.cmd = s
	}
	if o.gate != nil {
		e.gate = newGate(o.gate, o.gateFailures, o.retryPeriod, o.requestTimeout(), &e.pass, vs, e.metrics)
	}
	return e, nil
}

// Status returns a consistent snapshot of the election as this Elector sees
// it. It never blocks and is safe to call from any goroutine, at any rate,
// before, during and after Run.
func (e *Elector) Status() Status { return e.views.status(time.Now()) }

// Run joins the election and blocks until ctx is cancelled. It campaigns,
// leads while it holds the lock, and campaigns again after losing it. When ctx
// is cancelled while it leads, it ends the term, waits for the started-leading
// callback to return, and releases the lock (unless WithReleaseOnCancel(false))
// so that a follower can take over at once; all of it within the release
// delay plus ShutdownBudget, once the callback has returned.
//
// Run returns nil after cancellation. Errors from the API server are logged
// and retried, since an operator can fix them (RBAC, a foreign object in the
// way) while Run keeps going; Run returns an error only for what retrying
// cannot fix, such as a second concurrent Run. Every goroutine Run starts has
// exited when it returns; only the bodies of its timers (which cancel a
// context or end a pass, under a mutex) may still be finishing.
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

	c := &campaign{
		id: e.o.id, ctx: logr.NewContext(ctx, log), log: log, queue: queue,
		pass: &e.pass, views: e.views, metrics: e.metrics,
		lockRef:   lockRef(e.o.lockType, e.o.namespace, e.election),
		onStarted: e.o.onStarted, onStopped: e.o.onStopped, onNewLeader: e.o.onNewLeader,
	}
	if e.cmd != nil {
		c.onStarted, c.ahead = e.cmd.lead, e.cmd.fence()
		if e.cmd.reaper != nil {
			// Orphans keep coming while the command stops at shutdown.
			rctx, stopReaping := context.WithCancel(context.WithoutCancel(ctx))
			reaped := make(chan struct{})
			go func() {
				defer close(reaped)
				e.cmd.reaper.run(rctx)
			}()
			defer func() {
				stopReaping()
				<-reaped
			}()
		}
	}
	if e.o.podName != "" {
		c.labels = newPodLabeler(e.client, &e.o, log)
		c.labels.set(PodLabelStandby)
	}
	if e.o.events {
		c.events = newEventRecorder(e.client, &e.o, log, c.labels)
	}
	var workers []backgroundWorker
	if c.labels != nil {
		workers = append(workers, c.labels)
	}
	if c.events != nil {
		workers = append(workers, c.events)
	}
	// Not Run's context: the sinks deliver the last status after it is
	// cancelled, within the shutdown budget.
	octx, stopObserving := context.WithCancel(context.WithoutCancel(ctx))
	defer stopObserving()
	sinks, statusFile := e.sinks(octx, log)
	workers = append(workers, sinks...)
	// flushBy is when the background work must be done as Run returns.
	var flushBy time.Time
	stopBackground := startBackground(c.ctx, workers)
	defer func() { stopBackground(flushBy) }()
	var watches *lockWatches
	if e.o.watch {
		watches = &lockWatches{changed: e.pass.lockChanged, clientset: e.client}
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
		writing:         e.pass.lockWriting,
		inner:           inner,
		kind:            lockKind(e.o.lockType),
		id:              e.o.id,
		ttl:             e.o.ttl,
		timeout:         e.o.requestTimeout(),
		obs:             c,
		log:             log,
		freeWhenExpired: e.o.watch,
	}
	// The first view says that Run runs; the last, that it has returned,
	// which ends /watch streams and Observe channels.
	c.publish()
	defer func() {
		c.done = true
		c.publish()
	}()
	if e.o.lockType == LockEndpoints || e.o.lockType == LockEndpointsLeases {
		log.Info("the endpoints lock type is deprecated: Kubernetes deprecated v1 Endpoints in 1.33; migrate to leases")
	}
	log.Info("joining election", "lockType", e.o.lockType, "ttl", e.o.ttl,
		"renewDeadline", e.o.renewDeadline, "retryPeriod", e.o.retryPeriod)

	cgCtx := cgCtxFor(ctx, log)
	if e.gate != nil {
		gctx, stopGate := context.WithCancel(ctx)
		gated := make(chan struct{})
		go func() {
			defer close(gated)
			e.gate.run(gctx, log)
		}()
		defer func() {
			stopGate()
			<-gated
		}()
	}
	for {
		if e.gate != nil && !e.gate.awaitCandidacy(ctx, func(ctx context.Context) { _, _, _ = c.lock.Get(ctx) }) {
			log.Info("stopped")
			return nil
		}
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
		c.passCtx = lctx
		e.pass.begin(stop)

		le.Run(lctx)

		stop()
		req := e.pass.end()
		stopping := ctx.Err() != nil
		if stopping {
			log.Info("stopping")
		}
		led := c.endTerm()
		// Under CommandExitStop, a command that exited on its own ends Run.
		exited := e.cmd.takeExit()
		if exited != nil {
			stopping = true
		}
		releasing := led && (req != nil || exited != nil || stopping && e.o.releaseOnCancel)
		if releasing {
			if d := e.o.releaseDelay; d > 0 {
				// Not leader any more, as Status says; give applications that
				// poll it time to stop leader work before someone else starts.
				log.Info("waiting before releasing the lock", "releaseDelay", d)
				time.Sleep(d)
			}
			if statusFile != nil {
				// The file says not-leader before anyone else can lead. A
				// slow disk delays the release, which keeps its own
				// deadline; it does not skip it.
				if err := statusFile.send(cgCtx); err != nil {
					log.Error(err, "cannot write the status file before releasing the lock")
				}
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
		if exited != nil {
			log.Info("stopped: the command exited", "code", exited.Code)
			return exited
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
	go observe(ctx, e.views, e.o.id, ch)
	return ch
}

// sinks returns the status sinks of the options, each following Observe
// from before the first view of this Run to the last, which ends it; and
// the status file's, which Run also writes before it releases the lock.
func (e *Elector) sinks(ctx context.Context, log logr.Logger) (sinks []backgroundWorker, statusFile *sink) {
	if u := e.o.notifyURL; u != nil {
		n := newNotifier(u, e.o.requestTimeout(), retryLimit(e.o.retryPeriod), e.Status, log.WithName("notify"))
		n.changes = e.Observe(ctx)
		sinks = append(sinks, n)
	}
	if p := e.o.statusFile; p != "" {
		statusFile = newStatusFile(p, retryLimit(e.o.retryPeriod), e.Status, log.WithName("status-file"))
		statusFile.changes = e.Observe(ctx)
		sinks = append(sinks, statusFile)
	}
	return sinks, statusFile
}

// Resign hands leadership over: the Elector reports not-leader, ends the term
// (waiting for the started-leading callback), waits the release delay,
// releases the lock, and then stays out of the election for one lease
// duration, so that a follower takes over, before it campaigns again. It is
// ResignFor with a cooldown of the TTL.
func (e *Elector) Resign(ctx context.Context) error {
	return e.ResignFor(ctx, e.o.ttl)
}

// MaxResignCooldown is the longest cooldown ResignFor accepts.
const MaxResignCooldown = 24 * time.Hour

// ResignFor is Resign with a chosen cooldown, from 0 to MaxResignCooldown. It
// blocks until the lock is released, or ctx is done, in which case the
// step-down goes on without the caller. It returns ErrNotLeader if this
// candidate does not lead, and ErrNotRunning if Run is not running.
func (e *Elector) ResignFor(ctx context.Context, cooldown time.Duration) error {
	if cooldown < 0 || cooldown > MaxResignCooldown {
		return fmt.Errorf("elector: resign cooldown %s is out of range: want 0s to %s", cooldown, MaxResignCooldown)
	}
	if !e.running.Load() {
		return ErrNotRunning
	}
	if !e.Status().IsLeader {
		return ErrNotLeader
	}
	req, ok := e.pass.resign(&resignRequest{cooldown: cooldown, done: make(chan error, 1)})
	if !ok {
		return ErrNotLeader
	}
	select {
	case err := <-req.done:
		req.done <- err // for any other caller waiting on the same request
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SignalCommand sends sig to the command run under WithCommand: to its
// process alone, not its process group, so that a signal it handles (SIGHUP
// to reload, say) does not kill the helpers it started. It returns
// ErrNoCommand if no command runs. The command-line tool forwards SIGHUP,
// SIGUSR1 and SIGUSR2 with it.
func (e *Elector) SignalCommand(sig os.Signal) error { return e.cmd.signal(sig) }
