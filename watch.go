package elector

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// lockWatches collects the watches of the lock objects (WithWatch), for Run
// to start; nil means the lock reads from the API server every time.
type lockWatches struct {
	runs []func(context.Context)
	// follows start following a Group's shared informers, each returning
	// the function that stops it: no goroutine of their own.
	follows []func() (stop func())
	// changed is called after each change a watch shows.
	changed   func()
	clientset any // the clientset: a fake one says it cannot stream lists
	// follow, in a Group, follows an object through the Group's shared
	// informers, which the lock objects follow instead of watching each
	// on its own.
	follow followFunc
}

// followFunc follows the object named name (every object for "") of
// resource in namespace through a shared informer, listed and watched with
// list and watchFn, whose objects are of obj's type (a Group's:
// sharedwatch.go). It hands deliver every event of the object from now on
// and, if the informer has synced, initial the object as it holds it now.
// It returns whether the informer has synced (nil if it does not run: then
// nothing is delivered) and the function that stops following.
type followFunc func(namespace string, resource schema.GroupResource, obj runtime.Object, list listFunc, watchFn watchFunc,
	name string, deliver func(obj any, deleted bool), initial func(obj any, present bool)) (synced func() bool, stop func())

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
// Every delivery wakes the election loop, which reads the cache. Lease
// expiry after a crash is judged from the time the watch delivered the
// record's last change, never from the other's clock. A candidate that is
// not leading tries to acquire at once when the watch shows the lock
// released or deleted, and at the instant the lease it saw runs out (plus
// the drift margin) when it shows another holder, instead of at its next
// retry; when the watch shows the lock deleted or held by another, the
// leader steps down at once instead of at its next renewal.

// objectPtr is a pointer to a Kubernetes object type T.
type objectPtr[T any] interface {
	*T
	metav1.Object
	runtime.Object
}

// lockCache holds one lock object as last seen. The objects it holds are
// shared, with the informer that delivered them and with the lock that read
// them, and never changed: a write builds a copy (kindLock.update), and
// every edit of it replaces what it changes.
type lockCache[T any, P objectPtr[T]] struct {
	gr   schema.GroupResource
	name string
	// changed is called after each change the watch shows.
	changed func()

	mu     sync.Mutex
	synced func() bool // whether the watch has delivered a complete list; nil before it starts
	obj    P           // nil while absent
	at     time.Time   // when obj arrived
	// refresh makes the next read go to the API server: the first of a
	// Run, and the first after a failed request.
	refresh bool
}

// listFunc and watchFunc are a typed client's List and Watch.
type (
	listFunc  = func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watchFunc = func(context.Context, metav1.ListOptions) (watch.Interface, error)
)

// run watches the object until ctx ends. clientset is the clientset that list
// and watchFn use: a fake one says that it cannot stream lists.
func (c *lockCache[T, P]) run(ctx context.Context, clientset any, list listFunc, watchFn watchFunc) {
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
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, clientset),
		ObjectType:    P(new(T)),
		Transform:     stripManagedFields,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.delivered(obj, false) },
			UpdateFunc: func(_, obj any) { c.delivered(obj, false) },
			DeleteFunc: func(obj any) { c.delivered(obj, true) },
		},
	})
	c.mu.Lock()
	c.synced = informer.HasSynced
	c.mu.Unlock()
	informer.RunWithContext(ctx)
}

// follow follows the object through follow, a Group's shared informer of
// its namespace and resource, until the returned function is called; list
// and watchFn list and watch every object of the resource in the
// namespace. Without a running Group, reads go to the API server.
func (c *lockCache[T, P]) follow(follow followFunc, namespace string, list listFunc, watchFn watchFunc) (stop func()) {
	synced, stop := follow(namespace, c.gr, P(new(T)), list, watchFn, c.name, c.delivered, c.initial)
	if synced == nil {
		return stop
	}
	c.mu.Lock()
	c.synced = synced
	c.mu.Unlock()
	return stop
}

// initial takes the object as a synced shared informer holds it when this
// cache starts to follow it: the first read needs no request.
func (c *lockCache[T, P]) initial(obj any, present bool) {
	o, ok := obj.(P)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.refresh {
		// A read of ours is in the cache: only a later version of the
		// object replaces it.
		if present && ok && c.obj != nil && older(c.obj, o) {
			c.obj, c.at = o, time.Now()
		}
		return
	}
	switch {
	case !present:
		c.obj = nil
	case ok:
		c.obj = o
	default:
		return
	}
	c.at, c.refresh = time.Now(), false
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
	if !deleted && c.obj != nil && older(o, c.obj) {
		// The response to our own write came before the watch delivered
		// an earlier version: the cache never goes back.
		c.mu.Unlock()
		return
	}
	if deleted {
		c.obj = nil
	} else {
		c.obj = o
	}
	c.at = time.Now()
	c.mu.Unlock()
	if c.changed != nil {
		c.changed()
	}
}

// stripManagedFields is the informers' transform: it drops the objects'
// managed fields, which the election never reads, before they are stored.
// The API server keeps an object's managed fields when an update leaves
// them out.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// older reports whether a is an earlier version of the object than b.
// resourceVersions that do not compare (not from etcd) are not older.
func older(a, b metav1.Object) bool {
	if a.GetUID() != b.GetUID() {
		return false
	}
	n, err := resourceversion.CompareResourceVersion(a.GetResourceVersion(), b.GetResourceVersion())
	return err == nil && n < 0
}

// get returns the cached object (nil while absent) and when it arrived; ok
// is false when the read must go to the API server (no watch, no complete
// watch yet, or a refresh is due).
func (c *lockCache[T, P]) get() (obj P, at time.Time, ok bool) {
	if c == nil {
		return nil, time.Time{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refresh || c.synced == nil || !c.synced() {
		return nil, time.Time{}, false
	}
	return c.obj, c.at, true
}

// wrote records the outcome of a request to the API server, and returns
// when this candidate first saw the object it answered with: when the watch
// delivered it, if it delivered that very version, else now. It does
// nothing on a nil cache (no watch) but return now.
func (c *lockCache[T, P]) wrote(obj P, err error) time.Time {
	now := time.Now()
	if c == nil {
		return now
	}
	c.mu.Lock()
	switch {
	case err == nil && c.obj != nil && older(obj, c.obj):
		// The watch delivered a later version before this answer came
		// (another candidate's write that followed ours): the cache never
		// goes back, and the loop reads what it holds.
		c.refresh = false
		c.mu.Unlock()
		if c.changed != nil {
			c.changed()
		}
		return now
	case err == nil:
		seen := now
		if c.obj != nil && c.obj.GetUID() == obj.GetUID() && c.obj.GetResourceVersion() == obj.GetResourceVersion() {
			seen = c.at // a read of what the watch already delivered
		}
		c.obj, c.at, c.refresh = obj, seen, false
		c.mu.Unlock()
		return seen
	case apierrors.IsNotFound(err):
		c.obj, c.at, c.refresh = nil, now, false
	default:
		// A conflict means the view is stale. Any other failure (a
		// timeout above all) may hide a write that landed, or a server
		// we cannot reach: read from the server next, so that a candidate
		// that cannot read does not write either.
		c.refresh = true
	}
	c.mu.Unlock()
	return now
}
