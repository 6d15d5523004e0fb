// Package elector runs a Kubernetes leader election and reports its state.
//
// An Elector campaigns for a lock object named after the election — a Lease
// by default, or a ConfigMap or Endpoints annotated the way older client-go
// did — with client-go's leader record and by its rules, so that plain
// client-go electors can share the election. One candidate at a time holds
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
// # Events
//
// With WithEvents, Run records an Event on the lock object (and, with
// WithPodName, on the Pod) when a term starts and when it ends, as client-go's
// elector does. They are sent in the background and retried: they never
// delay the election.
//
// # Candidacy, stop grace and reports
//
// WithCandidacyGate lets a candidate campaign only while its application is
// ready, and makes a leader whose application fails step down. WithStopGrace
// ends a term early enough for leader work that takes time to stop to have
// stopped before any follower can acquire. Report adds the state of work
// that runs beside the election to the Status.
//
// # Many elections in one process
//
// A Group runs many elections in one process, as one candidate in each,
// on one watch per namespace and lock kind and one member Lease for all of
// them; WithSpread spreads their leadership evenly over the processes that
// run the Group.
//
// # Features built on the Elector
//
// Packages beside this one use nothing but its exported API: command runs a
// program as the leader work, fenced by the term; podlabel labels the
// candidate's Pod leader or standby for a Service; push keeps the status in
// a file or POSTs it to the application; readyurl probes the application's
// readiness endpoint for WithCandidacyGate. The command-line tool combines
// them.
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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-elector/elector/internal/serial"
)

// errAlreadyRunning is returned by a second concurrent Run.
var errAlreadyRunning = errors.New("elector: already running")

// An Elector takes part in one leader election as one candidate. Build it
// with New and start it with Run. It is an http.Handler that reports its
// Status. All methods are safe for concurrent use; an Elector runs at most one
// Run at a time.
type Elector struct {
	election string
	o        options
	client   client
	views    *views
	metrics  *metrics
	inbox    *inbox
	gate     *gate // nil without a candidacy gate
	running  atomic.Bool

	handlerOnce sync.Once
	handler     http.Handler
}

// errNotBuilt is returned by Run on an Elector that New did not build.
var errNotBuilt = errors.New("elector: the Elector was not built with New")

// New returns an Elector for the named election. The name is the name of the
// lock object, so it must be a valid DNS-1123 subdomain. New validates every
// option and reports all problems at once, joined (errors.Join), each with
// the value and what is accepted; it does not touch the cluster, and its only
// I/O is reading the hostname (for the default ID).
func New(election string, opts ...Option) (*Elector, error) {
	o, errs := applyOptions(opts)
	if err := o.validate(election); err != nil {
		errs = append(errs, err)
	}
	if o.spread && o.group == nil {
		errs = append(errs, errors.New("elector: WithSpread spreads the elections of a Group: pass it to NewGroup"))
	}
	if o.group != nil && !o.watch {
		errs = append(errs, errors.New("elector: a Group's elections share its watches: WithWatch(false) does not apply to them"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	vs := newViews(o.id)
	e := &Elector{
		election: election,
		o:        o,
		views:    vs,
		inbox:    newInbox(),
	}
	if g := o.group; g != nil {
		e.client, e.metrics = g.client, g.metrics(o.namespace+"/"+election, vs, o.gate != nil)
	} else {
		client, err := o.lockClient()
		if err != nil {
			return nil, errors.Join(err) // joined like every other error of New
		}
		e.client, e.metrics = client, newMetrics(o.namespace+"/"+election, o.id, vs, o.gate != nil)
	}
	if o.gate != nil {
		e.gate = newGate(o.gate, o.gateFailures, o.retryPeriod, o.requestTimeout(), e.inbox, vs, e.metrics)
	}
	return e, nil
}

// Status returns a consistent snapshot of the election as this Elector sees
// it. It never blocks and is safe to call from any goroutine, at any rate,
// before, during and after Run.
func (e *Elector) Status() Status {
	if e.views == nil {
		return Status{Timestamp: time.Now().UTC()}
	}
	return e.views.status(time.Now())
}

// Timings returns the election's timings, the defaults filled in.
func (e *Elector) Timings() Timings { return e.o.timings() }

// CurrentTerm returns the context of the current term, as the started-leading
// callback gets it, and true while this candidate leads; nil and false
// otherwise. Use it to fence work done outside the callback, such as in an
// HTTP handler: TermFromContext gives the term's token, and the context ends
// when the term does.
func (e *Elector) CurrentTerm() (context.Context, bool) {
	if e.views == nil {
		return nil, false
	}
	v := e.views.load()
	if v.term == nil || !v.leadingAt(time.Now()) {
		return nil, false
	}
	return v.term.ctx, true
}

// Run joins the election and blocks until ctx is cancelled. It campaigns,
// leads while it holds the lock, and campaigns again after losing it. When ctx
// is cancelled while it leads, it ends the term, waits for the started-leading
// callback to return, and releases the lock (unless WithReleaseOnCancel(false))
// so that a follower can take over at once; all of it within the release
// delay plus the shutdown budget (Timings), once the callback has returned.
//
// Run returns nil after cancellation. Errors from the API server are logged
// and retried, since an operator can fix them (RBAC, a foreign object in the
// way) while Run keeps going; Run returns an error only for what retrying
// cannot fix, such as a second concurrent Run. Every goroutine Run starts has
// done its work when it returns, but for a candidacy check that ignores its
// context: Run does not wait for it. The election has no goroutine of its
// own while nothing is due: one runs its steps when an input arrives (the
// watch, a timer, Resign), and ends when they are done.
func (e *Elector) Run(ctx context.Context) error {
	if err := e.claim(); err != nil {
		return err
	}
	done := make(chan struct{})
	e.launch(ctx, func() { close(done) })
	<-done
	return nil
}

// claim marks the Elector as running, or says why it cannot run.
func (e *Elector) claim() error {
	if e.views == nil {
		return errNotBuilt
	}
	if !e.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	return nil
}

// launch starts a Run that the caller has claimed, without waiting for it:
// ended is called once it has stopped. A Group launches its elections so,
// without a goroutine for each.
func (e *Elector) launch(ctx context.Context, ended func()) {
	ctx, log := e.o.runLogger(ctx, "election", e.o.namespace+"/"+e.election)
	l, stop := e.start(ctx, log)
	l.drive(ctx, func() {
		stop()
		log.Info("stopped")
		e.running.Store(false)
		ended()
	})
}

// start starts the parts of Run around its loop, and returns the loop and
// the function that stops them once the loop has returned. The parts start
// in this order and stop in the reverse one: the callbacks' queue, the
// background work (Events), the watches, the gate, then the loop. Those
// that must outlive Run's context (a release, the last Events) run on a
// context that ends only when they are stopped.
func (e *Elector) start(ctx context.Context, log logr.Logger) (*loop, func()) {
	w := &workers{}
	l, bg, watches := e.newLoop(log)
	w.stops = append(w.stops, l.queue.Close) // its worker runs only while callbacks wait
	flushBy := w.background(ctx, bg)
	for _, run := range watches.runs {
		w.start(cgCtxFor(ctx, log), false, run, nil)
	}
	for _, follow := range watches.follows {
		w.stops = append(w.stops, follow())
	}
	if e.gate != nil {
		w.start(ctx, true, func(ctx context.Context) { e.gate.run(ctx, log) }, nil)
	}
	e.logJoining(log)
	return l, func() {
		l.done = true
		l.publish() // ends /watch streams and Observe channels
		*flushBy = l.flushBy
		w.stop()
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
	if e.views == nil {
		close(ch)
		return ch
	}
	go observe(ctx, e.views.load(), e.o.id, ch)
	return ch
}

// Resign hands leadership over: the Elector reports not-leader, ends the term
// (waiting for the started-leading callback), waits the release delay,
// releases the lock, and then stays out of the election for one lease
// duration, so that a follower takes over, before it campaigns again. It
// follows the election meanwhile: Status, Observe and LeaderOnly name the
// new leader. It is ResignFor with a cooldown of the TTL.
func (e *Elector) Resign(ctx context.Context) error {
	return e.ResignFor(ctx, e.o.ttl)
}

// maxResignCooldown is the longest cooldown ResignFor accepts.
const maxResignCooldown = 24 * time.Hour

// ResignFor is Resign with a chosen cooldown, from 0 to 24h. It
// blocks until the lock is released, or ctx is done, in which case the
// step-down goes on without the caller. It returns ErrNotLeader if this
// candidate does not lead, Run not running included.
func (e *Elector) ResignFor(ctx context.Context, cooldown time.Duration) error {
	return e.resign(ctx, cooldown, "")
}

// ResignTo is Resign that hands the lock to the candidate with ID id: the
// release names it, it takes the lock in one write, and the other
// candidates of this module leave it a window of one second, from when
// they see the release, before they race for the lock as after any
// release. Plain client-go electors in the election race at once; the
// lock stays safe either way. If id is not a live, ready candidate, another
// candidate leads after the window. It returns an error, and does nothing,
// if id is not a valid ID or is this candidate's own.
func (e *Elector) ResignTo(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("elector: resign to: %w", err)
	}
	if id == e.o.id {
		return errSelfSuccessor
	}
	return e.resign(ctx, e.o.ttl, id)
}

// resign asks the loop to step down, naming successor if it is not empty,
// and waits until it did.
func (e *Elector) resign(ctx context.Context, cooldown time.Duration, successor string) error {
	if cooldown < 0 || cooldown > maxResignCooldown {
		return fmt.Errorf("elector: resign cooldown %s is out of range: want 0s to %s", cooldown, maxResignCooldown)
	}
	if !e.running.Load() {
		return fmt.Errorf("%w: Run is not running", ErrNotLeader)
	}
	if !e.Status().IsLeader {
		return ErrNotLeader
	}
	req := e.inbox.ask(&resignRequest{cooldown: cooldown, to: successor, done: make(chan error, 1)})
	select {
	case err := <-req.done:
		req.done <- err // for any other caller waiting on the same request
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Report adds key to the Status, and to the JSON of GET /, with the JSON
// of value, replacing what key had; a nil value removes key. Parts of a
// process that run beside the election report their own state so, such as
// the command run as the leader work (package command): a snapshot of the
// Status then shows both as they were at one instant. Observe does not
// report a change of it. Report returns an error, and changes nothing, if
// key is empty or one of the Status's own JSON fields, or if value does
// not encode as JSON.
func (e *Elector) Report(key string, value any) error {
	if e.views == nil {
		return errNotBuilt
	}
	if key == "" || slices.Contains(statusFields, key) {
		return fmt.Errorf("elector: cannot report %q: want a key other than the Status's own fields (%s)", key, strings.Join(statusFields, ", "))
	}
	var raw json.RawMessage
	if value != nil {
		b, err := json.Marshal(value)
		if err != nil {
			return fmt.Errorf("elector: report %q: %w", key, err)
		}
		raw = b
	}
	e.views.update(func(v *view) { v.reports = v.reports.with(key, raw) })
	return nil
}

// Metrics returns the Elector's Prometheus metrics, to serve or to gather
// with an application's own. GET /metrics on the Elector's handler serves
// them; a program that has metrics of its own serves them together, as the
// command-line tool does:
//
//	promhttp.HandlerFor(prometheus.Gatherers{e.Metrics(), own}, promhttp.HandlerOpts{})
func (e *Elector) Metrics() prometheus.Gatherer { return e.metrics.registry }

// newLoop builds the election loop of one Run and the parts it drives; it
// starts nothing.
func (e *Elector) newLoop(log logr.Logger) (*loop, []backgroundWorker, lockWatches) {
	o := &e.o
	l := &loop{
		id: o.id, o: o, log: log, queue: serial.New(), views: e.views, metrics: e.metrics,
		inbox: e.inbox, gate: e.gate, driver: &driver{},
		lockRef:   lockRef(o.lockType, o.namespace, e.election),
		onStarted: o.onStarted, onStopped: o.onStopped, onNewLeader: o.onNewLeader,
		ahead: o.ahead(),
	}
	var watches *lockWatches
	if o.watch {
		l.changed = make(chan struct{}, 1)
		watches = &lockWatches{clientset: e.client, changed: func() {
			select {
			case l.changed <- struct{}{}:
			default:
			}
			l.driver.wake()
		}}
		if o.group != nil {
			watches.follow = o.group.follow
		}
	}
	var limit *requestLimit
	if o.group != nil {
		limit = o.group.requests
	}
	l.rec = &observed{
		lock: newObjectLock(o.lockType, o.namespace, e.election, o.id, e.client, watches, limit),
		kind: lockTypeOf(o.lockType).kind, id: o.id, ttl: o.ttl, timeout: o.requestTimeout(),
		log: log, metrics: e.metrics,
	}
	ready := func() bool { return true }
	if l.gate != nil {
		ready = l.gate.open
	}
	l.registry = newRegistry(e.client.CoordinationV1().Leases(o.namespace), e.client, e.election, o.id, o.priority,
		ready, o.requestTimeout(), log)
	var bg []backgroundWorker
	if o.group != nil {
		l.registry.members = o.group.members // the Group's member Lease stands for this candidate
	} else {
		bg = append(bg, l.registry)
	}
	if o.events {
		l.events = newEventRecorder(e.client, o, log)
		bg = append(bg, l.events)
	}
	if watches == nil {
		return l, bg, lockWatches{}
	}
	return l, bg, *watches
}

// runLogger returns the logger of a Run, named "elector" and with kind (an
// election or a group) and the identity, and ctx carrying it: WithLogger's,
// or else ctx's.
func (o *options) runLogger(ctx context.Context, kind, name string) (context.Context, logr.Logger) {
	log := o.logger
	if log.GetSink() == nil {
		log = logr.FromContextOrDiscard(ctx)
	}
	log = log.WithName("elector").WithValues(kind, name, "identity", o.id)
	return logr.NewContext(ctx, log), log
}

// logJoining logs the start of a Run.
func (e *Elector) logJoining(log logr.Logger) {
	if lockTypeOf(e.o.lockType).deprecated {
		log.Info("the endpoints lock type is deprecated: Kubernetes deprecated v1 Endpoints in 1.33; migrate to leases")
	}
	log.Info("joining election", "lockType", e.o.lockType, "ttl", e.o.ttl,
		"renewDeadline", e.o.renewDeadline, "retryPeriod", e.o.retryPeriod)
}
