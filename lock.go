package elector

import (
	"context"
	"errors"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// errNotHolder is returned by a release write that would blank a record held
// by another candidate.
var errNotHolder = errors.New("elector: lock is held by another candidate")

// lockRead is what one read or successful write of the lock showed.
type lockRead struct {
	rec resourcelock.LeaderElectionRecord
	// visible is the record as client-go's LeaderElector compares it to
	// decide whether the holder renewed: whole-second times. It is what a
	// plain client-go follower, or the original k8s-elector, sees change.
	visible []byte
	// precise is the record at the precision the object stores it (a Lease
	// has microseconds): it changes with every renewal.
	precise []byte
	uid     types.UID // of the object that holds the record
	cached  bool      // served by the watch, without a request
	seen    time.Time // when this candidate received it
}

// objectLock reads and writes the leader record in the lock object(s). Every
// write is conditioned on the resourceVersion of the object as last read or
// written, so a stale view can only make it fail with a conflict.
type objectLock interface {
	get(ctx context.Context) (lockRead, error)
	create(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error)
	update(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error)
	// visibleOf is lockRead.visible for an object that holds rec, without
	// any request: what followers compare once a write of rec has landed.
	visibleOf(rec resourcelock.LeaderElectionRecord) []byte
	// describe names the lock object(s): namespace/name.
	describe() string
}

// recordCodec keeps the leader record in one kind of object.
type recordCodec[P any] interface {
	// decode returns the record in obj and its visible and precise forms
	// (see lockRead); desc names the object for errors.
	decode(obj P, desc string) (rec resourcelock.LeaderElectionRecord, visible, precise []byte, err error)
	// encode stores rec in obj, replacing rather than changing any map or
	// pointer that obj shares with a cached copy.
	encode(obj P, rec resourcelock.LeaderElectionRecord)
}

// objectClient is what a lock needs of a typed client; client-go's Lease,
// ConfigMap and Endpoints clients all satisfy it.
type objectClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error)
	Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error)
	Update(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error)
}

// kindLock is the lock on one object of type T. With the watch, its reads
// come from the watch's cache, which its own requests keep current.
type kindLock[T any, P objectPtr[T]] struct {
	kind      string // as kubectl names it, for messages
	namespace string
	name      string
	client    objectClient[T]
	codec     recordCodec[P]
	cache     *lockCache[T, P] // nil without the watch

	// obj is the object as last read or written; its resourceVersion makes
	// every update a compare-and-swap.
	obj P
}

var _ objectLock = (*kindLock[coordinationv1.Lease, *coordinationv1.Lease])(nil)

func (l *kindLock[T, P]) get(ctx context.Context) (lockRead, error) {
	if obj, at, ok := l.cache.get(); ok {
		if obj == nil {
			return lockRead{cached: true}, apierrors.NewNotFound(l.cache.gr, l.name)
		}
		r, err := l.read(obj, at)
		r.cached = true
		return r, err
	}
	obj, err := l.client.Get(ctx, l.name, metav1.GetOptions{})
	l.cache.wrote(obj, err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(obj, time.Now())
}

func (l *kindLock[T, P]) read(obj P, seen time.Time) (lockRead, error) {
	rec, visible, precise, err := l.codec.decode(obj, l.describe())
	if err != nil {
		return lockRead{}, err
	}
	l.obj = obj
	return lockRead{rec: rec, visible: visible, precise: precise, uid: obj.GetUID(), seen: seen}, nil
}

func (l *kindLock[T, P]) create(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error) {
	obj := P(new(T))
	obj.SetNamespace(l.namespace)
	obj.SetName(l.name)
	l.codec.encode(obj, rec)
	created, err := l.client.Create(ctx, obj, metav1.CreateOptions{})
	l.cache.wrote(created, err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(created, time.Now())
}

func (l *kindLock[T, P]) update(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error) {
	if l.obj == nil {
		return lockRead{}, errors.New("lock not read yet: call Get or Create first")
	}
	// A shallow copy is enough: encode replaces what it changes, so the
	// cached object stays as the server sent it.
	cp := *l.obj
	obj := P(&cp)
	l.codec.encode(obj, rec)
	updated, err := l.client.Update(ctx, obj, metav1.UpdateOptions{})
	l.cache.wrote(updated, err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(updated, time.Now())
}

func (l *kindLock[T, P]) visibleOf(rec resourcelock.LeaderElectionRecord) []byte {
	obj := P(new(T))
	l.codec.encode(obj, rec)
	_, visible, _, _ := l.codec.decode(obj, l.describe())
	return visible
}

func (l *kindLock[T, P]) describe() string { return l.namespace + "/" + l.name }

// lockWatches collects the watches of the lock objects (WithWatch), for Run
// to start; nil means the lock reads from the API server every time.
type lockWatches struct {
	runs []func(context.Context)
	// changed is called with each change a watch shows: the record now
	// held (holder "?" if it cannot be read), or deleted.
	changed   func(rec resourcelock.LeaderElectionRecord, deleted bool)
	clientset any // the clientset: a fake one says it cannot stream lists
}

// newObjectLock builds the lock for lock type t on the object ns/name. With
// w, the lock objects are watched by the runs it adds to w. It does no I/O.
func newObjectLock(t LockType, ns, name, id string, client Client, w *lockWatches) objectLock {
	switch t {
	case LockConfigMapsLeases:
		return &migrationLock{id: id, old: newObjectLock(LockConfigMaps, ns, name, id, client, w), lease: newObjectLock(LockLeases, ns, name, id, client, w)}
	case LockEndpointsLeases:
		return &migrationLock{id: id, old: newObjectLock(LockEndpoints, ns, name, id, client, w), lease: newObjectLock(LockLeases, ns, name, id, client, w)}
	case LockConfigMaps:
		c := client.CoreV1().ConfigMaps(ns)
		return newKindLock(w, "configmap", ns, name, corev1.Resource("configmaps"), c, annotationCodec[*corev1.ConfigMap]{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch)
	case LockEndpoints:
		c := client.CoreV1().Endpoints(ns)
		return newKindLock(w, "endpoints", ns, name, corev1.Resource("endpoints"), c, annotationCodec[*corev1.Endpoints]{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch)
	default: // LockLeases; validate accepts nothing else
		c := client.CoordinationV1().Leases(ns)
		return newKindLock(w, "lease", ns, name, coordinationv1.Resource("leases"), c, leaseCodec{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch)
	}
}

func newKindLock[T any, P objectPtr[T]](w *lockWatches, kind, ns, name string, gr schema.GroupResource,
	client objectClient[T], codec recordCodec[P], list listFunc, watchFn watchFunc) *kindLock[T, P] {
	l := &kindLock[T, P]{kind: kind, namespace: ns, name: name, client: client, codec: codec}
	if w != nil {
		l.cache = &lockCache[T, P]{gr: gr, name: name, codec: codec, changed: w.changed}
		w.runs = append(w.runs, func(ctx context.Context) { l.cache.run(ctx, w.clientset, list, watchFn) })
	}
	return l
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
