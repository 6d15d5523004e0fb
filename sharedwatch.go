package elector

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Shared watches (Group).
//
// The elections of a Group watch their lock objects through one informer
// per namespace and resource, of every object of that resource in the
// namespace, instead of one single-object watch each: a thousand elections
// on Leases in one namespace open one watch on the API server. The informer
// hands each event to the lock caches that follow that object by name, and
// to the followers of every object (the Group's member table). A lock cache
// that starts to follow an object once the informer has synced takes the
// object as the informer holds it, so that its first read sends no request
// either.
//
// The informers belong to the Group's Run, which starts each on first use
// and stops them all when it returns.

// sharedWatches are a Group's informers, by namespace and resource.
type sharedWatches struct {
	clientset any // a fake one says it cannot stream lists

	mu        sync.Mutex
	ctx       context.Context // the Group's Run; nil while it does not run
	wg        sync.WaitGroup
	informers map[sharedKey]*sharedInformer
}

// sharedKey names one shared informer.
type sharedKey struct {
	namespace string
	resource  schema.GroupResource
}

// deliverFunc takes an object from a shared informer: deleted, it is the
// object's last state.
type deliverFunc func(obj any, deleted bool)

// sharedInformer is one informer and the followers of its objects.
type sharedInformer struct {
	namespace string
	mu        sync.Mutex // held while a delivery is handed out, and while a follower joins
	byName    map[string]map[*follower]struct{}
	all       map[*follower]struct{}
	store     cache.Store
	ctrl      cache.Controller
}

// follower is one follower of a shared informer.
type follower struct{ deliver deliverFunc }

func newSharedWatches(clientset any) *sharedWatches {
	return &sharedWatches{clientset: clientset, informers: map[sharedKey]*sharedInformer{}}
}

// start makes the watches run on ctx, the Group's Run, until stop.
func (s *sharedWatches) start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
}

// stop waits for the informers to end (their context, Run's, has ended)
// and forgets them, so that the next Run starts afresh.
func (s *sharedWatches) stop() {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.informers = nil, map[sharedKey]*sharedInformer{}
}

// waitSynced waits until every informer started so far has synced, or ctx
// ends.
func (s *sharedWatches) waitSynced(ctx context.Context) {
	s.mu.Lock()
	var synced []cache.InformerSynced
	for _, in := range s.informers {
		synced = append(synced, in.ctrl.HasSynced)
	}
	s.mu.Unlock()
	cache.WaitForCacheSync(ctx.Done(), synced...)
}

// informer returns the shared informer of key, starting it with the list
// and watch of objects of type obj if it is not running; nil if the Group
// does not run.
func (s *sharedWatches) informer(key sharedKey, obj runtime.Object, list listFunc, watchFn watchFunc) *sharedInformer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return nil
	}
	if in, ok := s.informers[key]; ok {
		return in
	}
	in := &sharedInformer{namespace: key.namespace, byName: map[string]map[*follower]struct{}{}, all: map[*follower]struct{}{}}
	lw := &cache.ListWatch{
		ListWithContextFunc:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return watchFn(ctx, o) },
	}
	in.store, in.ctrl = cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, s.clientset),
		ObjectType:    obj,
		Transform:     stripManagedFields,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { in.hand(obj, false) },
			UpdateFunc: func(_, obj any) { in.hand(obj, false) },
			DeleteFunc: func(obj any) { in.hand(obj, true) },
		},
	})
	s.informers[key] = in
	ctx := s.ctx
	s.wg.Go(func() { in.ctrl.RunWithContext(ctx) })
	return in
}

// follow is a followFunc: it follows the object through the informer of
// its namespace and resource, started on first use.
func (s *sharedWatches) follow(namespace string, resource schema.GroupResource, obj runtime.Object, list listFunc, watchFn watchFunc,
	name string, deliver func(obj any, deleted bool), initial func(obj any, present bool)) (synced func() bool, stop func()) {
	in := s.informer(sharedKey{namespace: namespace, resource: resource}, obj, list, watchFn)
	if in == nil {
		return nil, func() {}
	}
	return in.follow(name, deliver, initial)
}

// hand gives a delivery to the followers of its object and of every object.
func (in *sharedInformer) hand(obj any, deleted bool) {
	o := obj
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	m, ok := o.(metav1.Object)
	if !ok {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for f := range in.byName[m.GetName()] {
		f.deliver(obj, deleted)
	}
	for f := range in.all {
		f.deliver(obj, deleted)
	}
}

// follow hands deliver every event of the object named name ("" for every
// object) from now on, and, if the informer has synced, the object as it
// holds it now (absent: deliver is not called, and initial says so). It
// returns whether the informer has synced, as a function, and the function
// that stops following.
func (in *sharedInformer) follow(name string, deliver deliverFunc, initial func(obj any, present bool)) (synced func() bool, stop func()) {
	f := &follower{deliver: deliver}
	in.mu.Lock()
	if name == "" {
		in.all[f] = struct{}{}
	} else {
		if in.byName[name] == nil {
			in.byName[name] = map[*follower]struct{}{}
		}
		in.byName[name][f] = struct{}{}
	}
	if in.ctrl.HasSynced() && initial != nil {
		if name == "" {
			for _, obj := range in.store.List() {
				initial(obj, true)
			}
		} else {
			obj, present, _ := in.store.GetByKey(in.namespace + "/" + name)
			initial(obj, present)
		}
	}
	in.mu.Unlock()
	return in.ctrl.HasSynced, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if name == "" {
			delete(in.all, f)
			return
		}
		delete(in.byName[name], f)
		if len(in.byName[name]) == 0 {
			delete(in.byName, name)
		}
	}
}
