package elector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// LockType names the kind of Kubernetes object that holds the leader record.
type LockType string

// The lock types an Elector accepts.
const (
	// LockLeases keeps the record in a coordination.k8s.io/v1 Lease. It is the
	// default and what every current Kubernetes component uses.
	LockLeases LockType = "leases"
	// LockConfigMaps keeps the record in the
	// "control-plane.alpha.kubernetes.io/leader" annotation of a v1 ConfigMap,
	// in the format older client-go wrote, so old and new electors can share
	// one election.
	LockConfigMaps LockType = "configmaps"
	// LockEndpoints is like LockConfigMaps on a v1 Endpoints object.
	// Kubernetes deprecated v1 Endpoints in 1.33; prefer LockLeases.
	LockEndpoints LockType = "endpoints"
	// LockConfigMapsLeases holds both a ConfigMap (as LockConfigMaps) and a
	// Lease of the same name, as client-go's MultiLock did, so that a fleet
	// can move from configmaps to leases replica by replica: see the README.
	LockConfigMapsLeases LockType = "configmapsleases"
	// LockEndpointsLeases is LockConfigMapsLeases with an Endpoints object.
	LockEndpointsLeases LockType = "endpointsleases"
)

// lockTypes returns every accepted LockType, the default first.
func lockTypes() []LockType {
	return []LockType{LockLeases, LockEndpoints, LockConfigMaps, LockEndpointsLeases, LockConfigMapsLeases}
}

// Defaults. The renew deadline and retry period default to a fraction of the
// TTL, as the original k8s-elector derived them.
const (
	defaultNamespace = "default"
	defaultLockType  = LockLeases
	defaultTTL       = 10 * time.Second
	// healthTolerance is how long past its lease a leader that has not
	// renewed still passes GET /healthz; the value kube-controller-manager
	// gives client-go's HealthzAdaptor.
	healthTolerance = 20 * time.Second
	// defaultGateFailures is how many consecutive failed checks
	// of the candidacy gate make a leader step down.
	defaultGateFailures = 3
)

// minTTL is the shortest TTL an Elector accepts. The lock record stores whole
// seconds, and a follower restarts its expiry clock only when the record it
// compares changes: a renewal in the same second as the previous one is not
// seen. So a leader's lease counts from its first renewal in each second
// (holdSpan). Holding the lease without a gap needs TTL − TTL/50 (the drift
// margin) > holdSpan; with the default timings that is TTL > 1.36s, so 2s in
// whole seconds. At 1s, leadership would flicker between renewals, and
// plain client-go followers would take a healthy leader's lease.
const minTTL = 2 * time.Second

// The renew deadline defaults to TTL/3 and the retry period to TTL/6, as the
// original k8s-elector derived them.
const (
	renewDeadlineDivisor = 3
	retryPeriodDivisor   = 6
)

// Timings are an election's timings: the TTL and what follows from it. Every
// part of the project that needs one (the command-line help, the docs, the
// test suites, the bench) reads it from here.
type Timings struct {
	// TTL is the lease duration (WithTTL).
	TTL time.Duration
	// RenewDeadline is how long a leader retries a failed renewal before
	// its term ends (WithRenewDeadline). Default: TTL/3.
	RenewDeadline time.Duration
	// RetryPeriod is how often a polling follower reads and a leader
	// retries a failed renewal (WithRetryPeriod). Default: TTL/6.
	RetryPeriod time.Duration
	// RenewInterval is how often a leader renews while its renewals succeed
	// (WithRenewInterval). Default: 2.1 retry periods, and at least 1s,
	// which writes fewer than half of plain client-go's renewals (it renews
	// every retry period plus a request's round trip); the retry period if
	// the lease cannot hold with that. 3.5s at the default TTL of 10s.
	RenewInterval time.Duration
	// HoldSpan is the longest gap between the renewals that followers see,
	// plus a retry period for a renewal's own latency: the renew interval,
	// or 1s plus the renew interval if that is shorter than 1s (followers
	// see at most one renewal a second), plus the retry period. A lease
	// holds without a gap while TTL − DriftMargin is longer.
	HoldSpan time.Duration
	// RequestTimeout, max(RenewDeadline/2, 1s), bounds each request of the
	// election, as client-go's does, so that one hung request cannot
	// outlive a term; the work beside the election bounds its own so.
	RequestTimeout time.Duration
	// DriftMargin, TTL/50, covers clocks that run at different rates: a
	// leader's ValidUntil ends it before the lease, and a follower on the
	// watch tries to take a lease it saw run out it after the lease.
	DriftMargin time.Duration
	// ShutdownBudget is how long Run takes at most to return once its
	// context is cancelled: the release of the lock (at most the renew
	// deadline) and the last Events share it. On top of it come the
	// started-leading callback's own return and the release delay, which
	// Run waits for first, and, after Run returns, at most
	// ShutdownBudget − RenewDeadline (1s) for the work that follows the
	// status (packages podlabel and push). Size a Pod's
	// terminationGracePeriodSeconds from them: with the default TTL of 10s
	// and no release delay, 3.33s + 1s + 1s.
	ShutdownBudget time.Duration
	// StopGrace is how long the leader work has to stop once its term's
	// context ends (WithStopGrace): the term ends this long plus the drift
	// margin before ValidUntil unless the leader renews. Default: 0, the
	// term ends at ValidUntil.
	StopGrace time.Duration
	// MaxStopGrace is the longest StopGrace these timings accept, TTL − 2 ×
	// DriftMargin − HoldSpan: the term must outlast the longest gap between
	// the renewals that followers see. It is negative when the TTL leaves no
	// room for one.
	MaxStopGrace time.Duration
	// SuccessorWindow is how long the other candidates of this module leave
	// a released lock to the successor the release names (ResignTo, and
	// every graceful release with a ready candidate), from when each saw the
	// release: 1s, whatever the TTL. A successor that has not taken it by
	// then is passed over.
	SuccessorWindow time.Duration
}

// DefaultTimings returns the timings of an Elector with the TTL ttl (0 for
// the default TTL, 10s) and no other timing option. With other options, ask
// the Elector (Timings).
func DefaultTimings(ttl time.Duration) Timings {
	if ttl == 0 {
		ttl = defaultTTL
	}
	renew, retry := ttl/renewDeadlineDivisor, ttl/retryPeriodDivisor
	interval := defaultRenewInterval(ttl, retry)
	return Timings{
		TTL: ttl, RenewDeadline: renew, RetryPeriod: retry, RenewInterval: interval,
		HoldSpan:        holdSpan(interval, retry),
		RequestTimeout:  requestTimeout(renew),
		DriftMargin:     driftMargin(ttl),
		ShutdownBudget:  renew + time.Second,
		MaxStopGrace:    maxStopGrace(ttl, interval, retry),
		SuccessorWindow: successorWindow,
	}
}

// WithRenewInterval returns t with the renew interval d and what follows
// from it (HoldSpan, MaxStopGrace), as an Elector built with the same
// WithRenewInterval reports them; 0 leaves t as it is. It does not
// validate d: New does.
func (t Timings) WithRenewInterval(d time.Duration) Timings {
	if d == 0 {
		return t
	}
	t.RenewInterval = d
	t.HoldSpan = holdSpan(d, t.RetryPeriod)
	t.MaxStopGrace = maxStopGrace(t.TTL, d, t.RetryPeriod)
	return t
}

// defaultRenewInterval is the renew interval for a TTL and a retry period
// when WithRenewInterval is not given: 2.1 retry periods and at least 1s,
// or the retry period where the lease cannot hold with that. Plain
// client-go renews a retry period after its last renewal returned, so
// twice the retry period would come to a hair over half its writes.
func defaultRenewInterval(ttl, retry time.Duration) time.Duration {
	if interval := max(retry*21/10, time.Second); holdSpan(interval, retry) < ttl-driftMargin(ttl) {
		return interval
	}
	return retry
}

// holdSpan is Timings.HoldSpan: how long a lease must last to be held
// without a gap with renewals every interval, and a retry period for a
// renewal's latency. Followers see only renewals that change the whole
// second of the renew time, so renewals less than 1s apart are seen up to
// 1s plus an interval apart; renewals at least 1s apart are all seen.
func holdSpan(interval, retry time.Duration) time.Duration {
	seen := interval
	if interval < time.Second {
		seen += time.Second
	}
	return seen + retry
}

// errNoClient is among the errors New returns when neither WithClient nor
// WithRESTConfig was given.
var errNoClient = errors.New("elector: no Kubernetes client: set WithClient or WithRESTConfig")

// jitterFactor is client-go's leaderelection.JitterFactor, which the loop
// keeps: a polling candidate waits up to RetryPeriod*jitterFactor more
// between attempts, so the renew deadline must be longer than that.
const jitterFactor = 1.2

// An Option configures an Elector. Options are applied in order; when one is
// given twice, the last wins. Options only record values: New validates them
// all at once.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	namespace       string
	id              string
	idErr           error
	lockType        LockType
	ttl             time.Duration
	renewDeadline   time.Duration
	retryPeriod     time.Duration
	renewInterval   time.Duration
	client          client
	clientGiven     bool // WithClient was given, perhaps with nil
	restConfig      *rest.Config
	logger          logr.Logger
	releaseOnCancel bool
	releaseDelay    time.Duration
	resignEndpoint  bool
	watch           bool
	podName         string
	events          bool
	onStarted       func(context.Context)
	onStopped       func()
	onNewLeader     func(string)
	stopGrace       time.Duration
	beforeRelease   func(context.Context, Status) error
	gate            func(context.Context) error
	gateFailures    int
	priority        int
	spread          bool
	group           *groupParts // set by Group.Add
	groupClient     bool        // set by NewGroup: the client serves many elections
}

// groupParts are what a Group lends each of its elections (group.go):
// what they share, and a hook. Nothing the election package does below
// group.go names the Group itself.
type groupParts struct {
	client client
	// metrics returns the election's series in the Group's metric
	// families, labelled with election.
	metrics func(election string, vs *views, gated bool) *metrics
	// follow follows a lock object through the Group's shared informers.
	follow followFunc
	// members returns the Group's member Leases, which stand for its
	// members as candidates in every election.
	members func() map[string]*coordinationv1.Lease
	// termChanged is called when a term of this candidate starts or ends.
	termChanged func()
	// requests bounds the lock requests in flight of all the elections.
	requests *requestLimit
}

// applyOptions applies opts, in order, to the defaults, and reports the
// nil ones.
func applyOptions(opts []Option) (options, []error) {
	o := defaults()
	var errs []error
	for i, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("elector: option %d of %d is nil", i+1, len(opts)))
			continue
		}
		opt.apply(&o)
	}
	return o, errs
}

// defaults returns every default in one place. The ID defaults to the
// kernel's hostname; if that cannot be read, validation reports it unless
// WithID was given.
func defaults() options {
	host, err := os.Hostname()
	return options{
		namespace:       defaultNamespace,
		id:              host,
		idErr:           err,
		lockType:        defaultLockType,
		watch:           true,
		ttl:             defaultTTL,
		releaseOnCancel: true,
	}
}

// WithNamespace sets the namespace of the lock object.
// Default: "default".
func WithNamespace(ns string) Option {
	return optionFunc(func(o *options) { o.namespace = ns })
}

// WithID sets this candidate's identity, the holder name written into the
// lock. Every candidate of an election needs a unique ID: two candidates with
// the same ID both believe they hold the lock.
// Default: the hostname reported by the kernel (the pod name in Kubernetes).
func WithID(id string) Option {
	return optionFunc(func(o *options) { o.id, o.idErr = id, nil })
}

// WithLockType sets the kind of object that holds the lock.
// Default: LockLeases.
func WithLockType(t LockType) Option {
	return optionFunc(func(o *options) { o.lockType = t })
}

// WithTTL sets the lease duration: how long followers wait after they last saw
// the leader renew before they take over. The lock record stores whole
// seconds, so the TTL must be a whole number of seconds, at least minTTL
// (2s). Unlike the timings derived from it (WithRenewDeadline,
// WithRetryPeriod, WithRenewInterval), where zero means "derive it", a zero
// TTL is an error: there is nothing to derive it from.
// Default: 10s.
func WithTTL(ttl time.Duration) Option {
	return optionFunc(func(o *options) { o.ttl = ttl })
}

// WithRenewDeadline sets how long the leader keeps retrying a failed renewal
// before it gives up leadership. It must be shorter than the TTL and longer
// than 1.2 × the retry period. Zero means the default.
// Default: TTL/3.
func WithRenewDeadline(d time.Duration) Option {
	return optionFunc(func(o *options) { o.renewDeadline = d })
}

// WithRetryPeriod sets how often candidates try to acquire, polling
// followers read the lock, and a leader retries a failed renewal. Zero
// means the default.
// Default: TTL/6.
func WithRetryPeriod(d time.Duration) Option {
	return optionFunc(func(o *options) { o.retryPeriod = d })
}

// WithRenewInterval sets how often the leader renews while its renewals
// succeed; a failed renewal is retried every retry period until the renew
// deadline. It must be at least the retry period, and the lease must hold
// with it: TTL − DriftMargin longer than Timings.HoldSpan. Zero means the
// default. Plain client-go renews every retry period.
// Default: 2.1 retry periods, at least 1s (Timings.RenewInterval): 3.5s
// at the default TTL of 10s, fewer than half of client-go's renewal writes.
func WithRenewInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.renewInterval = d })
}

// client is the part of a Kubernetes clientset that an Elector uses: the
// coordination.k8s.io/v1 group for Leases, and the core group for ConfigMaps,
// Endpoints, Pods and Events. WithRESTConfig builds only these two groups'
// clients.
type client interface {
	CoordinationV1() coordinationv1client.CoordinationV1Interface
	CoreV1() corev1client.CoreV1Interface
}

// WithClient sets the clientset used for the lock: a *kubernetes.Clientset,
// or the fake clientset of k8s.io/client-go/kubernetes/fake in tests. Use
// it to share a client. The Elector uses its coordination.k8s.io/v1 group
// (Leases) and its core group (ConfigMaps, Endpoints, Pods, Events) only. Set exactly one of WithClient and
// WithRESTConfig. The client's own timeouts apply; every election request is
// additionally bounded by a context deadline of max(renew deadline/2, 1s).
func WithClient(c kubernetes.Interface) Option {
	return optionFunc(func(o *options) { o.client, o.clientGiven = c, true })
}

// WithRESTConfig builds the clientset from cfg. The Elector works on a copy:
// it sets a user agent if cfg has none, and, for LockEndpoints and
// LockEndpointsLeases, drops the API server's per-request deprecation warning
// for v1 Endpoints. Set exactly one
// of WithClient and WithRESTConfig.
func WithRESTConfig(cfg *rest.Config) Option {
	return optionFunc(func(o *options) { o.restConfig = cfg })
}

// WithLogger sets the logger. The Elector names it "elector" and adds the
// election and identity to every line; client-go's own lines (its watch of
// the lock) come through it one verbosity level lower.
// Default: the logger in Run's context (logr.FromContextOrDiscard).
func WithLogger(l logr.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithReleaseOnCancel sets whether Run releases the lock when its context is
// cancelled while it leads, so that a follower takes over at once instead of
// waiting out the TTL.
// Default: true.
func WithReleaseOnCancel(release bool) Option {
	return optionFunc(func(o *options) { o.releaseOnCancel = release })
}

// WithReleaseDelay sets how long a leader that steps down (Run cancelled, or
// Resign) waits between reporting not-leader and releasing the lock, so that
// an application that polls the status can stop its leader work before a
// follower starts. The lock is not renewed meanwhile: a delay longer than
// what is left of the lease lets followers take over by expiry instead.
// Default: 0.
func WithReleaseDelay(d time.Duration) Option {
	return optionFunc(func(o *options) { o.releaseDelay = d })
}

// WithResignEndpoint enables POST /resign on the Elector's HTTP handler,
// accepted from loopback addresses only (a preStop hook, or an application in
// the same pod that knows it is unhealthy).
// Default: false.
func WithResignEndpoint(enabled bool) Option {
	return optionFunc(func(o *options) { o.resignEndpoint = enabled })
}

// WithWatch sets whether the Elector watches its lock object instead of
// reading it at every retry. With the watch, an idle follower sends no
// requests, and a released lock is taken over within milliseconds instead of
// at the next retry (each follower first waits a random 0-50ms, so that they
// do not all write at once); writes are unchanged, conditional on the object's
// resourceVersion, so a stale watch can only cause a conflict. Without it,
// the election polls as client-go does. The watch needs RBAC list and watch
// on the lock object.
// Default: true.
func WithWatch(enabled bool) Option {
	return optionFunc(func(o *options) { o.watch = enabled })
}

// WithPodName names this candidate's own Pod, in the election's namespace,
// so that WithEvents records its Events on the Pod too; in a Pod spec, pass
// metadata.name through the Downward API. The Elector reads the Pod once, for
// its UID, which needs RBAC permission to get pods. To label the Pod leader
// or standby, see package podlabel.
// Default: "" (no Events on a Pod).
func WithPodName(name string) Option {
	return optionFunc(func(o *options) { o.podName = name })
}

// WithEvents sets whether the Elector records Kubernetes Events: reason
// eventReasonLeaderElected when a term starts and eventReasonStoppedLeading
// when it ends, both of type Normal, on the lock object and, with
// WithPodName, on the Pod. Events are core/v1 Events, de-duplicated and
// rate-limited per object as client-go's event recorder does them, and sent
// from a goroutine of their own: a failure is logged and never delays the
// election. It needs RBAC permission to create and patch events.
// Default: false.
func WithEvents(enabled bool) Option {
	return optionFunc(func(o *options) { o.events = enabled })
}

// WithOnStartedLeading sets the function run when this candidate becomes the
// leader. Its context is cancelled when the term ends (leadership lost or Run
// cancelled); it must return promptly after that, because Run waits for it
// before it campaigns again, releases the lock or returns.
// Default: none.
func WithOnStartedLeading(f func(ctx context.Context)) Option {
	return optionFunc(func(o *options) { o.onStarted = f })
}

// WithOnStoppedLeading sets the function run when a term ends, after the
// started-leading function has returned. It is not called for a term that
// never started.
// Default: none.
func WithOnStoppedLeading(f func()) Option {
	return optionFunc(func(o *options) { o.onStopped = f })
}

// WithOnNewLeader sets the function run when a different holder is observed,
// including this candidate itself and "" once the lock is released.
// Default: none.
func WithOnNewLeader(f func(identity string)) Option {
	return optionFunc(func(o *options) { o.onNewLeader = f })
}

// WithSpread, an option of NewGroup only, spreads the leadership of the
// Group's elections evenly over its members, the processes that run the
// Group under one ID each: with K members alive and N elections, each
// member leads at most ⌈N/K⌉ once they are stable. A member that leads
// more hands the excess over, gracefully and one write each, to the
// members that lead the fewest: so a member that joins takes its share
// within milliseconds of the others seeing it, and one that stops hands
// its elections to the others, spread evenly. A member that crashes loses
// its elections when their leases run out, as any leader does, and the
// others, which take them at once, spread them again. Leadership only
// moves from a member above its share to one below it, so it settles.
// Default: false.
func WithSpread(enabled bool) Option {
	return optionFunc(func(o *options) { o.spread = enabled })
}

// maxPriority is the highest priority WithPriority accepts.
const maxPriority = 1_000_000

// WithPriority sets this candidate's priority, from 0 (the default) to
// 1000000. A leader that releases the lock gracefully (shutdown, Resign, a
// closed candidacy gate) names as its successor the ready candidate with the
// highest priority (see ResignTo). And a leader hands over, gracefully, to a
// candidate with a higher priority than its own once that one has been
// ready for a TTL: its work stops first, as at any release. Equal
// priorities never preempt, a lower-priority leader keeps leading while no
// higher one is ready, and a candidate whose readiness flaps faster than a
// TTL never takes over.
func WithPriority(n int) Option {
	return optionFunc(func(o *options) { o.priority = n })
}

// WithCandidacyGate makes candidacy depend on check, which Run calls every
// retry period with the lock's request timeout, from a goroutine of its own:
// while it returns an error, this candidate does not campaign (it never
// tries to acquire the lock), and a leader whose check fails failures times
// in a row (0 for the default, 3) steps down, releasing the lock
// so that a ready candidate takes over at once; it campaigns again once a
// check passes. Status reports it in Candidate. The first campaign waits for
// the first check that passes; the candidate follows the election from the
// start all the same. Health (GET /healthz, /readyz) does not depend on it.
// Run does not wait for a check that ignores its context.
// Default: none (always a candidate).
func WithCandidacyGate(check func(ctx context.Context) error, failures int) Option {
	return optionFunc(func(o *options) { o.gate, o.gateFailures = check, failures })
}

// WithStopGrace sets how long the leader work takes to stop once the
// context of its term ends. The term, and IsLeader, then end this long plus
// the drift margin before ValidUntil unless the leader renews, so that work
// which stops within d has stopped before any follower can take the lease.
// It must be shorter than the TTL and at most Timings.MaxStopGrace: the term
// must outlast the longest gap between the renewals that followers see.
// Default: 0, the term ends at ValidUntil.
func WithStopGrace(d time.Duration) Option {
	return optionFunc(func(o *options) { o.stopGrace = d })
}

// WithBeforeRelease sets a function that a leader which steps down runs
// after its term has ended (IsLeader is false, the started-leading function
// has returned) and after the release delay, and before it releases the
// lock, with the Status as it is then: to make a status that others read
// say not-leader before anyone else can lead. It is not run when the lock
// is not released (WithReleaseOnCancel(false), or another holder has it).
// The release waits for it, and keeps its own deadline: a slow function
// delays the release, it does not skip it. An error is logged.
// Default: none.
func WithBeforeRelease(f func(ctx context.Context, s Status) error) Option {
	return optionFunc(func(o *options) { o.beforeRelease = f })
}

// maxStopGrace is the longest grace period a term of lease duration ttl
// can hold with renewals every interval: the term ends grace plus the
// drift margin before the lease, which counts from the last renewal that
// followers can see, and those come up to holdSpan apart.
func maxStopGrace(ttl, interval, retry time.Duration) time.Duration {
	return ttl - 2*driftMargin(ttl) - holdSpan(interval, retry)
}

// validateStopGrace checks WithStopGrace; the timings must be valid.
func (o *options) validateStopGrace(bad func(format string, args ...any), timingsOK bool) {
	g, longest := o.stopGrace, maxStopGrace(o.ttl, o.renewInterval, o.retryPeriod)
	hold := holdSpan(o.renewInterval, o.retryPeriod)
	switch {
	case g < 0:
		bad("stop grace %s is negative: want 0 or more", g)
	case g == 0 || !timingsOK:
	case g >= o.ttl:
		bad("stop grace %s must be shorter than the TTL %s", g, o.ttl)
	case longest <= 0:
		bad("TTL %s leaves no room for a stop grace with a renew interval of %s and a retry period of %s: "+
			"the lease less twice its drift margin (%s) must outlast the longest gap between renewals that followers see (%s)",
			o.ttl, o.renewInterval, o.retryPeriod, o.ttl-2*driftMargin(o.ttl), hold)
	case g > longest:
		bad("stop grace %s is too long for a TTL of %s: the term ends the stop grace and the drift margin (%s) "+
			"before the lease does, and must outlast the longest gap between renewals that followers see "+
			"(%s): want at most %s",
			g, o.ttl, driftMargin(o.ttl), hold, longest)
	}
}

// ahead is how long before ValidUntil a term ends: the stop grace and the
// drift margin, by which the work must have stopped; 0 without a stop
// grace.
func (o *options) ahead() time.Duration {
	if o.stopGrace <= 0 {
		return 0
	}
	return o.stopGrace + driftMargin(o.ttl)
}

// validate fills the derived timings and reports every problem at once.
func (o *options) validate(election string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("elector: "+format, args...))
	}

	if election == "" {
		bad("election name is required")
	} else if msgs := validation.IsDNS1123Subdomain(election); len(msgs) > 0 {
		bad("election name %q is not a valid object name: %s", election, strings.Join(msgs, "; "))
	}
	if o.namespace == "" {
		bad("namespace is empty: want a namespace name such as %q", defaultNamespace)
	} else if msgs := validation.IsDNS1123Label(o.namespace); len(msgs) > 0 {
		bad("namespace %q is not a valid namespace name: %s", o.namespace, strings.Join(msgs, "; "))
	}
	switch {
	case o.idErr != nil:
		bad("no ID given and the hostname cannot be read (%v): set an ID", o.idErr)
	case checkID(o.id) != nil:
		bad("%v", checkID(o.id))
	}
	if !validLockType(o.lockType) {
		bad("lock type %q is not supported: want one of %s", o.lockType, joinLockTypes())
	}

	ttlOK, timingsOK := true, false
	switch {
	case o.ttl < minTTL:
		ttlOK = false
		bad("TTL %s is too short: want a whole number of seconds, at least %s (the lock records whole seconds, so followers see at most one renewal a second)", o.ttl, minTTL)
	case o.ttl%time.Second != 0:
		ttlOK = false
		bad("TTL %s is not a whole number of seconds: the lock record stores whole seconds (try %s)", o.ttl, o.ttl.Round(time.Second))
	}
	if o.renewDeadline < 0 {
		bad("renew deadline %s is negative: want more than 0, or 0 for TTL/%d", o.renewDeadline, renewDeadlineDivisor)
	}
	if o.retryPeriod < 0 {
		bad("retry period %s is negative: want more than 0, or 0 for TTL/%d", o.retryPeriod, retryPeriodDivisor)
	}
	if o.renewDeadline == 0 {
		o.renewDeadline = DefaultTimings(o.ttl).RenewDeadline
	}
	if o.retryPeriod == 0 {
		o.retryPeriod = DefaultTimings(o.ttl).RetryPeriod
	}
	if o.renewInterval < 0 {
		bad("renew interval %s is negative: want more than 0, or 0 for 2.1 retry periods", o.renewInterval)
	}
	if o.renewInterval == 0 && o.retryPeriod > 0 {
		o.renewInterval = defaultRenewInterval(o.ttl, o.retryPeriod)
	}
	if ttlOK && o.renewDeadline > 0 && o.retryPeriod > 0 && o.renewInterval > 0 {
		n := len(errs)
		if o.renewDeadline >= o.ttl {
			bad("renew deadline %s must be shorter than the TTL %s", o.renewDeadline, o.ttl)
		}
		if min := time.Duration(jitterFactor * float64(o.retryPeriod)); o.renewDeadline <= min {
			bad("renew deadline %s must be longer than 1.2 × the retry period %s (%s)", o.renewDeadline, o.retryPeriod, min)
		}
		held := o.ttl - driftMargin(o.ttl)
		switch need := holdSpan(o.renewInterval, o.retryPeriod); {
		case o.renewInterval < o.retryPeriod:
			bad("renew interval %s is shorter than the retry period %s: want at least the retry period", o.renewInterval, o.retryPeriod)
		case held <= need && o.renewInterval == o.retryPeriod:
			bad("TTL %s is too short for a retry period of %s: followers see at most one renewal a second, "+
				"so the lease less its drift margin (%s) must outlast the longest gap between renewals that followers see "+
				"and a retry period (%s)", o.ttl, o.retryPeriod, held, need)
		case held <= need:
			bad("renew interval %s is too long for a TTL of %s and a retry period of %s: the lease less its drift margin (%s) "+
				"must outlast the longest gap between renewals that followers see and a retry period (%s); want at most %s",
				o.renewInterval, o.ttl, o.retryPeriod, held, need, maxRenewInterval(held, o.retryPeriod))
		}
		timingsOK = len(errs) == n
	}
	o.validateStopGrace(bad, timingsOK)
	o.validateGate(bad)

	if o.podName != "" {
		if msgs := validation.IsDNS1123Subdomain(o.podName); len(msgs) > 0 {
			bad("pod name %q is not a valid Pod name: %s", o.podName, strings.Join(msgs, "; "))
		}
	}

	if o.releaseDelay < 0 {
		bad("release delay %s is negative: want 0 or more", o.releaseDelay)
	}

	switch {
	case o.client != nil && o.restConfig != nil:
		bad("both WithClient and WithRESTConfig are set: set only one")
	case isNil(o.client) && o.restConfig == nil:
		switch {
		case o.client != nil:
			bad("WithClient got a nil %T: pass a clientset", o.client)
		case o.clientGiven:
			bad("WithClient got nil: pass a clientset, such as kubernetes.NewForConfig's or fake.NewClientset()")
		default:
			errs = append(errs, errNoClient)
		}
	}
	return errors.Join(errs...)
}

// validateGate checks the candidacy gate's options, and the priority.
func (o *options) validateGate(bad func(format string, args ...any)) {
	if o.priority < 0 || o.priority > maxPriority {
		bad("priority %d is out of range: want 0 (the default) to %d", o.priority, maxPriority)
	}
	switch {
	case o.gateFailures < 0:
		bad("candidacy gate failures %d is negative: want 1 or more consecutive failed checks before a leader steps down, or 0 for %d", o.gateFailures, defaultGateFailures)
	case o.gateFailures == 0:
		o.gateFailures = defaultGateFailures
	}
}

// isNil reports whether c is nil or holds a nil pointer.
func isNil(c client) bool {
	if c == nil {
		return true
	}
	v := reflect.ValueOf(c)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

func validLockType(t LockType) bool {
	return slices.Contains(lockTypes(), t)
}

func joinLockTypes() string {
	types := lockTypes()
	s := make([]string, len(types))
	for i, t := range types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// requestTimeout bounds each election request, as client-go's
// NewFromKubeconfig does, so that one hung request cannot outlive a term.
func (o *options) requestTimeout() time.Duration { return requestTimeout(o.renewDeadline) }

// requestTimeout is the request timeout for a renew deadline.
func requestTimeout(renewDeadline time.Duration) time.Duration {
	return max(renewDeadline/2, time.Second)
}

// maxRenewInterval is the longest renew interval with which a lease of
// held (the TTL less its drift margin) holds, with retry periods of retry:
// a millisecond short of the span holdSpan would need.
func maxRenewInterval(held, retry time.Duration) time.Duration {
	if longest := held - retry - time.Millisecond; longest >= time.Second {
		return longest
	}
	return held - retry - time.Second - time.Millisecond
}

// shutdownBudget is Timings.ShutdownBudget for these options.
func (o *options) shutdownBudget() time.Duration { return o.renewDeadline + time.Second }

// timings returns the timings of validated options.
func (o *options) timings() Timings {
	return Timings{
		TTL: o.ttl, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod, RequestTimeout: o.requestTimeout(),
		RenewInterval: o.renewInterval, HoldSpan: holdSpan(o.renewInterval, o.retryPeriod),
		DriftMargin: driftMargin(o.ttl), ShutdownBudget: o.shutdownBudget(),
		StopGrace: o.stopGrace, MaxStopGrace: maxStopGrace(o.ttl, o.renewInterval, o.retryPeriod),
		SuccessorWindow: successorWindow,
	}
}
