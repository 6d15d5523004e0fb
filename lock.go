package elector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/internal/record"
)

// errNotHolder is returned by a release write that would blank a record held
// by another candidate.
var errNotHolder = errors.New("elector: lock is held by another candidate")

// newLock builds the lock object for the configured type. It does no I/O.
func (e *Elector) newLock(w *lockWatches) resourcelock.Interface {
	switch e.o.lockType {
	case LockConfigMaps, LockEndpoints, LockLeases:
		return e.singleLock(e.o.lockType, w)
	case LockConfigMapsLeases:
		return &migrationLock{old: e.singleLock(LockConfigMaps, w), lease: e.singleLock(LockLeases, w)}
	default: // LockEndpointsLeases; validate accepts nothing else
		return &migrationLock{old: e.singleLock(LockEndpoints, w), lease: e.singleLock(LockLeases, w)}
	}
}

// lockWatches collects the watches of the lock objects (WithWatch), for Run
// to start; nil means the lock reads from the API server every time.
type lockWatches struct {
	runs      []func(context.Context)
	changed   func(holder string, deleted bool) // the watch shows a change
	clientset any                               // the clientset: a fake one says it cannot stream lists
}

// singleLock returns the lock on one object of kind t.
func (e *Elector) singleLock(t LockType, w *lockWatches) resourcelock.Interface {
	ns, name, id := e.o.namespace, e.election, e.o.id
	switch t {
	case LockConfigMaps:
		client := e.client.CoreV1().ConfigMaps(ns)
		return &annotationLock[corev1.ConfigMap, *corev1.ConfigMap]{
			kind: "configmap", namespace: ns, name: name, identity: id,
			client: watched(w, client, name, corev1.Resource("configmaps"), annotationHolder[*corev1.ConfigMap],
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return client.List(ctx, o) },
				client.Watch),
		}
	case LockEndpoints:
		client := e.client.CoreV1().Endpoints(ns)
		return &annotationLock[corev1.Endpoints, *corev1.Endpoints]{
			kind: "endpoints", namespace: ns, name: name, identity: id,
			client: watched(w, client, name, corev1.Resource("endpoints"), annotationHolder[*corev1.Endpoints],
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return client.List(ctx, o) },
				client.Watch),
		}
	default:
		var getter coordinationv1client.LeasesGetter = e.client.CoordinationV1()
		if w != nil {
			c := &lockCache[coordinationv1.Lease, *coordinationv1.Lease]{
				gr: coordinationv1.Resource("leases"), name: name, holder: leaseHolder, changed: w.changed,
			}
			client := e.client.CoordinationV1().Leases(ns)
			w.runs = append(w.runs, func(ctx context.Context) {
				c.run(ctx, e.client, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return client.List(ctx, o) }, client.Watch)
			})
			getter = cachedLeasesGetter{LeasesGetter: getter, c: c}
		}
		leases := &uidRecorder{LeasesGetter: getter}
		return leaseLock{
			LeaseLock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: name},
				Client:     leases,
				LockConfig: resourcelock.ResourceLockConfig{Identity: id},
			},
			leases: leases,
		}
	}
}

// watched returns client, or with w a client whose reads come from a watch
// of the object that w starts.
func watched[T any, P objectPtr[T]](w *lockWatches, client objectClient[T], name string, gr schema.GroupResource, holder func(P) string,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) objectClient[T] {
	if w == nil {
		return client
	}
	c := &lockCache[T, P]{gr: gr, name: name, holder: holder, changed: w.changed}
	w.runs = append(w.runs, func(ctx context.Context) { c.run(ctx, w.clientset, list, watchFn) })
	return cachedClient[T, P]{objectClient: client, c: c}
}

// migrationLock holds an old-style lock (configmap or endpoints) and a Lease
// together, with the semantics of client-go's former MultiLock, so that
// electors on the old lock type, on this one and on leases can share one
// election during a migration:
//   - the old object's record is the election's record;
//   - while the Lease does not exist, a holder other than us in the old
//     object is an old elector's, and stands;
//   - when the two objects name different holders, the holder is unknown:
//     electors of both kinds are active, and nobody may take over until the
//     records stop changing for a lease duration;
//   - writes go to the old object first, then the Lease (created if missing).
//
// Its raw record joins both objects' records, so that a change to either
// counts as a renewal.
type migrationLock struct {
	old, lease resourcelock.Interface
}

var _ resourcelock.Interface = (*migrationLock)(nil)

func (m *migrationLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := m.old.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	leaseRec, leaseRaw, err := m.lease.Get(ctx)
	if err != nil {
		if apierrors.IsNotFound(err) && rec.HolderIdentity != m.Identity() {
			return rec, raw, nil
		}
		return nil, nil, err
	}
	if rec.HolderIdentity != leaseRec.HolderIdentity {
		unknown := *rec
		unknown.HolderIdentity = resourcelock.UnknownLeader
		rec = &unknown
	}
	return rec, slices.Concat(raw, []byte(","), leaseRaw), nil
}

func (m *migrationLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if err := m.old.Create(ctx, rec); err != nil {
		return err
	}
	return m.lease.Create(ctx, rec)
}

func (m *migrationLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if err := m.old.Update(ctx, rec); err != nil {
		return err
	}
	// The Lease may not exist yet (the old object was created by an old
	// elector) or may have changed since it was read: read it again.
	if _, _, err := m.lease.Get(ctx); err != nil {
		if apierrors.IsNotFound(err) {
			return m.lease.Create(ctx, rec)
		}
		return err
	}
	return m.lease.Update(ctx, rec)
}

func (m *migrationLock) RecordEvent(s string) {}

func (m *migrationLock) Describe() string { return m.old.Describe() + "+lease" }

func (m *migrationLock) Identity() string { return m.old.Identity() }

// objectUID is the old object's: its record is the election's.
func (m *migrationLock) objectUID() types.UID {
	if u, ok := m.old.(uidSource); ok {
		return u.objectUID()
	}
	return ""
}

// uidSource is implemented by the locks newLock returns: the UID of the lock
// object as last read or written.
type uidSource interface {
	objectUID() types.UID
}

// leaseLock is client-go's LeaseLock, with the UID of the Lease it last saw.
type leaseLock struct {
	*resourcelock.LeaseLock
	leases *uidRecorder
}

func (l leaseLock) objectUID() types.UID { return l.leases.uid }

// uidRecorder passes Lease requests through and notes the UID of every Lease
// the API server returns.
type uidRecorder struct {
	coordinationv1client.LeasesGetter
	uid types.UID
}

func (r *uidRecorder) Leases(ns string) coordinationv1client.LeaseInterface {
	return recordingLeases{r.LeasesGetter.Leases(ns), r}
}

type recordingLeases struct {
	coordinationv1client.LeaseInterface
	r *uidRecorder
}

func (l recordingLeases) note(lease *coordinationv1.Lease, err error) (*coordinationv1.Lease, error) {
	if err == nil {
		l.r.uid = lease.UID
	}
	return lease, err
}

func (l recordingLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	return l.note(l.LeaseInterface.Get(ctx, name, opts))
}

func (l recordingLeases) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	return l.note(l.LeaseInterface.Create(ctx, lease, opts))
}

func (l recordingLeases) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	return l.note(l.LeaseInterface.Update(ctx, lease, opts))
}

// lockKind is the lock object's kind as kubectl names it, for messages.
func lockKind(t LockType) string {
	switch t {
	case LockConfigMaps:
		return "configmap"
	case LockEndpoints:
		return "endpoints"
	case LockConfigMapsLeases:
		return "configmap+lease"
	case LockEndpointsLeases:
		return "endpoints+lease"
	default:
		return "lease"
	}
}

// lockObserver learns what the tracked lock reads and writes. Every call comes
// from the goroutine that runs the election.
type lockObserver interface {
	// observed is called with every record read or successfully written,
	// and the UID of the object that holds it.
	observed(rec resourcelock.LeaderElectionRecord, uid types.UID)
	// absent is called when a read finds no lock object.
	absent()
	// wrote is called after a successful create or update, with the time the
	// request was sent.
	wrote(rec resourcelock.LeaderElectionRecord, sent time.Time)
}

// trackedLock wraps the lock that client-go's LeaderElector drives. It bounds
// every request, tells the Elector what each request saw, logs API errors
// once per change instead of once per retry, and refuses a release write that
// would blank another holder's record.
//
// It is used from one goroutine only (client-go calls the lock from the
// goroutine running LeaderElector.Run, and the Elector releases from the same
// goroutine afterwards), so it needs no locking.
type trackedLock struct {
	inner   resourcelock.Interface
	kind    string
	id      string
	timeout time.Duration
	obs     lockObserver
	log     logr.Logger
	metrics *metrics // nil in tests of the lock alone
	// writing, if set, is called with true before a write is sent and with
	// false once its outcome has been observed.
	writing func(bool)

	// last is the record as last read or written: it is what the inner lock's
	// cached object holds, and so what its next Update is conditioned on.
	last       *resourcelock.LeaderElectionRecord
	lastChange time.Time       // when last last changed
	failures   map[string]bool // failure messages logged since the last success
	// deletedHeldBy is the holder of a lock found deleted, once logged.
	deletedHeldBy string
	// written is the record this candidate last wrote.
	written        *resourcelock.LeaderElectionRecord
	sharedIDLogged bool
	// unsure is the record of our last write whose outcome is unknown (it
	// timed out or the connection broke), until a write succeeds.
	unsure *resourcelock.LeaderElectionRecord
}

var _ resourcelock.Interface = (*trackedLock)(nil)

func (l *trackedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	begin := time.Now()
	ctx = markedFromCache(ctx)
	rec, raw, err := l.inner.Get(ctx)
	if servedFromCache(ctx) {
		l.metrics.cachedRead()
	} else {
		l.observe("get", begin, err)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			l.obs.absent()
			if holder, left := l.heldByAnother(); left > 0 {
				// client-go would create the lock at once. Its holder may
				// still be acting: it was deleted, not released. Wait until
				// the lease that we last saw renewed would have run out.
				if l.deletedHeldBy != holder {
					l.deletedHeldBy = holder
					l.log.Info("lock object deleted while another candidate held it; not creating it before that lease runs out",
						"lock", l.inner.Describe(), "holder", holder, "wait", left.Round(time.Millisecond))
				}
				return nil, nil, fmt.Errorf("get %s %s: deleted while %q held it; waiting for that lease to run out", l.kind, l.inner.Describe(), holder)
			}
		}
		return nil, nil, l.failed("get", err)
	}
	l.succeeded()
	l.checkSharedID(rec)
	l.remember(rec)
	l.obs.observed(*rec, l.uid())
	return rec, raw, nil
}

// checkSharedID reports a record that names this candidate but is not the
// one it last wrote: another process runs with the same ID. Both then
// believe they lead, and the lock cannot tell them apart.
func (l *trackedLock) checkSharedID(rec *resourcelock.LeaderElectionRecord) {
	w := l.written
	if w == nil || w.HolderIdentity != l.id || rec.HolderIdentity != l.id || sameRecord(*w, *rec) {
		return
	}
	if l.unsure != nil && sameRecord(*l.unsure, *rec) {
		return // our own write, whose answer we did not get
	}
	err := fmt.Errorf("%s %s names this candidate's ID %q but was not written by it (renewed at %s, not %s): "+
		"another process runs with the same ID, and both believe they lead; give every candidate a unique -id",
		l.kind, l.inner.Describe(), l.id, rec.RenewTime.UTC().Format(time.RFC3339), w.RenewTime.UTC().Format(time.RFC3339))
	if !l.sharedIDLogged {
		l.sharedIDLogged = true
		l.log.Error(err, "two candidates share one ID")
		return
	}
	l.log.V(1).Info("two candidates share one ID", "err", err.Error())
}

// remember makes rec the last record seen, noting when it last changed.
func (l *trackedLock) remember(rec *resourcelock.LeaderElectionRecord) {
	if l.last == nil || !sameRecord(*l.last, *rec) {
		l.lastChange = time.Now()
	}
	l.last = rec
	l.deletedHeldBy = ""
}

func sameRecord(a, b resourcelock.LeaderElectionRecord) bool {
	return a.HolderIdentity == b.HolderIdentity && a.LeaseDurationSeconds == b.LeaseDurationSeconds &&
		a.AcquireTime.Equal(&b.AcquireTime) && a.RenewTime.Equal(&b.RenewTime) && a.LeaderTransitions == b.LeaderTransitions
}

// heldByAnother returns the holder of the last record seen, if it is another
// candidate, and how long its lease runs on, judged as client-go judges
// expiry: from when this candidate saw the record change.
func (l *trackedLock) heldByAnother() (string, time.Duration) {
	if l.last == nil || l.last.HolderIdentity == "" || l.last.HolderIdentity == l.id {
		return "", 0
	}
	lease := time.Duration(l.last.LeaseDurationSeconds) * time.Second
	return l.last.HolderIdentity, time.Until(l.lastChange.Add(lease))
}

func (l *trackedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return l.write(ctx, "create", rec, l.inner.Create)
}

func (l *trackedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	// client-go's release decides from its cached view and then writes with
	// the resourceVersion of its latest read. Blanking the holder is allowed
	// only if that read names us: then a successful write proves nobody else
	// wrote in between.
	if rec.HolderIdentity == "" && (l.last == nil || l.last.HolderIdentity != l.id) {
		holder := ""
		if l.last != nil {
			holder = l.last.HolderIdentity
		}
		return fmt.Errorf("%w: not releasing %s %s held by %q", errNotHolder, l.kind, l.inner.Describe(), holder)
	}
	return l.write(ctx, "update", rec, l.inner.Update)
}

func (l *trackedLock) write(ctx context.Context, verb string, rec resourcelock.LeaderElectionRecord,
	do func(context.Context, resourcelock.LeaderElectionRecord) error) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	op := "acquire"
	switch {
	case rec.HolderIdentity == "":
		op = "release"
	case l.last != nil && l.last.HolderIdentity == l.id:
		op = "renew"
	}
	if l.writing != nil {
		l.writing(true)
		defer l.writing(false)
	}
	// A pass that was ended (a kick, a resignation) must not write any
	// more: a client may send a request even with a cancelled context, and
	// an acquisition that lands after its pass ended starts a term that
	// ends at once.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s %s: %w", verb, l.kind, l.inner.Describe(), err)
	}
	sent := time.Now()
	err := do(ctx, rec)
	l.observe(op, sent, err)
	if err != nil {
		if outcomeUnknown(err) {
			// It may have landed: its record is ours if we read it later.
			l.unsure = &rec
		}
		return l.failed(verb, err)
	}
	l.unsure = nil
	l.succeeded()
	l.remember(&rec)
	l.written = &rec
	l.obs.observed(rec, l.uid())
	l.obs.wrote(rec, sent)
	return nil
}

func (l *trackedLock) observe(op string, begin time.Time, err error) {
	if l.metrics == nil {
		return
	}
	result := "success"
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	l.metrics.observe(op, result, time.Since(begin))
}

// failed wraps err with the verb and object, and logs it: at error level when
// it differs from the previous failure, at V(1) when it repeats, and at V(1)
// for the outcomes of normal operation (object not created yet, lost race).
func (l *trackedLock) failed(verb string, err error) error {
	err = fmt.Errorf("%s %s %s: %w", verb, l.kind, l.inner.Describe(), err)
	switch {
	case apierrors.IsNotFound(err) && verb == "get":
		l.log.V(1).Info("lock object does not exist yet", "lock", l.inner.Describe())
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		l.log.V(1).Info("lost a write race for the lock", "lock", l.inner.Describe(), "err", err.Error())
	case l.failures[err.Error()]:
		l.log.V(1).Info("lock request failed again", "err", err.Error())
	default:
		// A leader's attempt can fail twice in different words (the
		// optimistic update, then the read): each message is logged once
		// until a request succeeds again.
		if l.failures == nil || len(l.failures) >= maxDistinctFailures {
			l.failures = map[string]bool{}
		}
		l.failures[err.Error()] = true
		l.log.Error(err, "lock request failed; retrying", "lock", l.inner.Describe())
	}
	return err
}

// outcomeUnknown reports whether a failed write may still have been applied:
// the API server did not answer it with a status of its own.
func outcomeUnknown(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsInternalError(err)
	}
	return true
}

// maxDistinctFailures bounds the failure messages remembered for logging.
const maxDistinctFailures = 8

func (l *trackedLock) succeeded() {
	if len(l.failures) > 0 {
		l.failures = nil
		l.log.Info("lock requests succeed again", "lock", l.inner.Describe())
	}
}

// uid is the lock object's UID, if the inner lock knows it.
func (l *trackedLock) uid() types.UID {
	if u, ok := l.inner.(uidSource); ok {
		return u.objectUID()
	}
	return ""
}

func (l *trackedLock) RecordEvent(s string) { l.inner.RecordEvent(s) }
func (l *trackedLock) Identity() string     { return l.inner.Identity() }
func (l *trackedLock) Describe() string     { return l.inner.Describe() }

// objectClient is what an annotation lock needs of a typed client; the
// ConfigMap and Endpoints clients of client-go both satisfy it.
type objectClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error)
	Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error)
	Update(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error)
}

// annotationLock keeps the leader record in the annotation that client-go's
// removed ConfigMap and Endpoints locks used, in their format, so electors on
// older client-go and this one can share an election.
//
// Unlike those locks it never adopts an existing object that lacks the
// annotation (that is somebody's real ConfigMap or Endpoints), and it never
// overwrites a record it cannot parse: both are reported as errors naming the
// object, and the election retries until someone fixes the object.
type annotationLock[T any, P interface {
	*T
	metav1.Object
}] struct {
	kind      string
	namespace string
	name      string
	identity  string
	client    objectClient[T]

	// obj is the object as last read or written; its resourceVersion makes
	// every Update a compare-and-swap.
	obj P
}

func (l *annotationLock[T, P]) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	obj, err := l.client.Get(ctx, l.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	raw, ok := P(obj).GetAnnotations()[record.AnnotationKey]
	if !ok {
		return nil, nil, fmt.Errorf("%s exists but has no %q annotation, so it is not a leader-election lock; "+
			"it is left alone: choose another election name or delete the object", l.Describe(), record.AnnotationKey)
	}
	rec, err := record.Decode(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("annotation %q of %s cannot be parsed, and is not overwritten; "+
			"restore a valid record or delete the object: %w", record.AnnotationKey, l.Describe(), err)
	}
	l.obj = obj
	return &rec, []byte(raw), nil
}

func (l *annotationLock[T, P]) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	obj := P(new(T))
	obj.SetNamespace(l.namespace)
	obj.SetName(l.name)
	obj.SetAnnotations(map[string]string{record.AnnotationKey: record.Encode(rec)})
	created, err := l.client.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.obj = created
	return nil
}

func (l *annotationLock[T, P]) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if l.obj == nil {
		return errors.New("lock not read yet: call Get or Create first")
	}
	// A shallow copy is enough: only the annotations map is changed, and it is
	// replaced, not modified, so the cached object stays as the server sent it.
	cp := *l.obj
	obj := P(&cp)
	ann := maps.Clone(obj.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	ann[record.AnnotationKey] = record.Encode(rec)
	obj.SetAnnotations(ann)
	updated, err := l.client.Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.obj = updated
	return nil
}

// RecordEvent records nothing: the lock has no event recorder.
func (l *annotationLock[T, P]) RecordEvent(string) {}

func (l *annotationLock[T, P]) Identity() string { return l.identity }

func (l *annotationLock[T, P]) objectUID() types.UID {
	if l.obj == nil {
		return ""
	}
	return l.obj.GetUID()
}

func (l *annotationLock[T, P]) Describe() string { return l.namespace + "/" + l.name }

// lockClient returns the client for the configured options. It does no I/O.
func (o *options) lockClient() (Client, error) {
	if o.client != nil {
		return o.client, nil
	}
	cfg := *o.restConfig
	if cfg.UserAgent == "" {
		cfg.UserAgent = "k8s-elector"
	}
	if (o.lockType == LockEndpoints || o.lockType == LockEndpointsLeases) && cfg.WarningHandler == nil && cfg.WarningHandlerWithContext == nil {
		cfg.WarningHandlerWithContext = endpointsWarningFilter{}
	}
	c, err := newGroupClients(&cfg)
	if err != nil {
		return nil, fmt.Errorf("elector: Kubernetes client config: %w", err)
	}
	return c, nil
}

// groupClients is a Client built from a REST config: the two API groups'
// clients share one HTTP client and so one connection pool, as a full
// clientset's groups do.
type groupClients struct {
	coordination coordinationv1client.CoordinationV1Interface
	core         corev1client.CoreV1Interface
}

func (c *groupClients) CoordinationV1() coordinationv1client.CoordinationV1Interface {
	return c.coordination
}

func (c *groupClients) CoreV1() corev1client.CoreV1Interface { return c.core }

func newGroupClients(cfg *rest.Config) (*groupClients, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	coordination, err := coordinationv1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	core, err := corev1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return &groupClients{coordination: coordination, core: core}, nil
}

// endpointsWarningFilter drops the API server's "v1 Endpoints is deprecated"
// warning, which it sends with every request on an Endpoints lock; the
// Elector logs that deprecation once itself. Other warnings are logged as
// client-go logs them by default.
type endpointsWarningFilter struct{}

func (endpointsWarningFilter) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, message string) {
	if strings.Contains(message, "Endpoints is deprecated") {
		return
	}
	rest.WarningLogger{}.HandleWarningHeaderWithContext(ctx, code, agent, message)
}
