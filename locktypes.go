package elector

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// lockWatches collects the watches of the lock objects (WithWatch), for Run
// to start; nil means the lock reads from the API server every time.
type lockWatches struct {
	runs []func(context.Context)
	// changed is called after each change a watch shows.
	changed   func()
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
		l.cache = &lockCache[T, P]{gr: gr, name: name, changed: w.changed, refresh: true}
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
