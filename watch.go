package elector

import (
	"context"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/k8s-elector/elector/internal/record"
)

// Watch-driven election (WithWatch, on by default).
//
// Each lock object gets a single-object watch (a field selector on its name;
// client-go's reflector resumes it from the last resourceVersion and lists
// again when that has expired). The lock's reads are served from what the
// watch delivered, or from the response to our own last write, so an idle
// follower sends no requests. Writes still go to the API server with the
// resourceVersion of the object read, so a stale view can only make a write
// fail with a conflict, never make a second leader; after a conflict the
// next read goes to the API server.
//
// Lease expiry after a crash is still judged by client-go from the time this
// candidate observed the record change, never from the other's clock. When
// the watch shows the lock released or deleted, a candidate that is not
// leading starts a new attempt at once instead of at its next retry; when it
// shows the lock deleted or held by another, the leader steps down at once
// instead of at its next renewal.

// objectPtr is a pointer to a Kubernetes object type T.
type objectPtr[T any] interface {
	*T
	metav1.Object
	runtime.Object
}

// lockCache holds one lock object as last seen.
type lockCache[T any, P objectPtr[T]] struct {
	gr     schema.GroupResource
	name   string
	holder func(P) string // the record's holder; "" when released
	// changed is called with each change the watch shows: the new holder
	// ("" when released), or deleted.
	changed func(holder string, deleted bool)

	mu       sync.Mutex
	informer cache.Controller
	obj      P    // nil while absent
	refresh  bool // the next read goes to the API server
}

// fromCache marks a read that the cache served, for metrics.
type fromCacheKey struct{}

func markedFromCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, fromCacheKey{}, new(bool))
}

func servedFromCache(ctx context.Context) bool {
	p, _ := ctx.Value(fromCacheKey{}).(*bool)
	return p != nil && *p
}

// run watches the object until ctx ends. client is the clientset that list
// and watchFn use: a fake one says that it cannot stream lists.
func (c *lockCache[T, P]) run(ctx context.Context, client any, list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) {
	selector := fields.OneTermEqualSelector("metadata.name", c.name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return watchFn(ctx, o)
		},
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, client),
		ObjectType:    P(new(T)),
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.delivered(obj, false) },
			UpdateFunc: func(_, obj any) { c.delivered(obj, false) },
			DeleteFunc: func(obj any) { c.delivered(obj, true) },
		},
	})
	c.mu.Lock()
	c.informer = informer
	c.mu.Unlock()
	informer.RunWithContext(ctx)
}

// delivered takes an object from the watch.
func (c *lockCache[T, P]) delivered(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	o, ok := obj.(P)
	if !ok || o.GetName() != c.name {
		return // a fake clientset ignores the field selector
	}
	c.mu.Lock()
	if deleted {
		c.obj = nil
	} else {
		c.obj = o
	}
	c.mu.Unlock()
	if c.changed != nil {
		c.changed(c.holder(o), deleted)
	}
}

// get returns a copy of the cached object; ok is false when the read must go
// to the API server (no complete watch yet, or a refresh is due).
func (c *lockCache[T, P]) get() (obj P, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refresh || c.informer == nil || !c.informer.HasSynced() {
		return nil, false
	}
	if c.obj == nil {
		return nil, true
	}
	return c.obj.DeepCopyObject().(P), true
}

// wrote records the outcome of a request to the API server.
func (c *lockCache[T, P]) wrote(obj P, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.obj, c.refresh = obj.DeepCopyObject().(P), false
	case apierrors.IsNotFound(err):
		c.obj, c.refresh = nil, false
	default:
		// A conflict means the view is stale. Any other failure (a
		// timeout above all) may hide a write that landed, or a server
		// we cannot reach: read from the server next, so that a candidate
		// that cannot read does not write either.
		c.refresh = true
	}
}

// cachedClient serves Get from a lockCache and keeps it current with the
// responses to its own requests.
type cachedClient[T any, P objectPtr[T]] struct {
	objectClient[T]
	c *lockCache[T, P]
}

func (w cachedClient[T, P]) Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error) {
	if obj, ok := w.c.get(); ok {
		if p, _ := ctx.Value(fromCacheKey{}).(*bool); p != nil {
			*p = true
		}
		if obj == nil {
			return nil, apierrors.NewNotFound(w.c.gr, name)
		}
		return obj, nil
	}
	obj, err := w.objectClient.Get(ctx, name, opts)
	w.c.wrote(obj, err)
	return obj, err
}

func (w cachedClient[T, P]) Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error) {
	out, err := w.objectClient.Create(ctx, obj, opts)
	w.c.wrote(out, err)
	return out, err
}

func (w cachedClient[T, P]) Update(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error) {
	out, err := w.objectClient.Update(ctx, obj, opts)
	w.c.wrote(out, err)
	return out, err
}

// cachedLeases is a LeaseInterface whose Get, Create and Update go through
// a cachedClient, for client-go's LeaseLock.
type cachedLeases struct {
	coordinationv1client.LeaseInterface
	cached cachedClient[coordinationv1.Lease, *coordinationv1.Lease]
}

func (l cachedLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	return l.cached.Get(ctx, name, opts)
}

func (l cachedLeases) Create(ctx context.Context, obj *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	return l.cached.Create(ctx, obj, opts)
}

func (l cachedLeases) Update(ctx context.Context, obj *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	return l.cached.Update(ctx, obj, opts)
}

// cachedLeasesGetter hands out cachedLeases for the election's namespace.
type cachedLeasesGetter struct {
	coordinationv1client.LeasesGetter
	c *lockCache[coordinationv1.Lease, *coordinationv1.Lease]
}

func (g cachedLeasesGetter) Leases(ns string) coordinationv1client.LeaseInterface {
	inner := g.LeasesGetter.Leases(ns)
	return cachedLeases{LeaseInterface: inner, cached: cachedClient[coordinationv1.Lease, *coordinationv1.Lease]{objectClient: inner, c: g.c}}
}

func leaseHolder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// annotationHolder is the holder recorded in an annotation lock; an object
// without a readable record counts as held, so it never triggers an attempt.
func annotationHolder[P metav1.Object](obj P) string {
	raw, ok := obj.GetAnnotations()[record.AnnotationKey]
	if !ok {
		return "?"
	}
	rec, err := record.Decode(raw)
	if err != nil {
		return "?"
	}
	return rec.HolderIdentity
}
