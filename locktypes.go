package elector

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// lockRow is one row of the table of lock types: everything that differs
// between them.
type lockRow struct {
	kind string // as kubectl names it, for messages
	// ref is the object that holds the record (the old one, for a
	// migration type): what Events are recorded on.
	ref corev1.ObjectReference
	// resource is the RBAC resource of ref's kind.
	resource schema.GroupResource
	// old is, for a migration type, the old single-object type it holds
	// together with a Lease; "" otherwise.
	old LockType
	// deprecated: the API server warns about every request (v1 Endpoints).
	deprecated bool
	// open builds the lock on one object of a single-object type, whose
	// resource is gr.
	open func(gr schema.GroupResource, ns, name string, client client, w *lockWatches, limit *requestLimit) objectLock
}

// lockTypeOf returns the row of t; validate accepts no other type.
func lockTypeOf(t LockType) lockRow {
	var (
		lease = lockRow{
			kind:     "lease",
			ref:      corev1.ObjectReference{Kind: "Lease", APIVersion: "coordination.k8s.io/v1"},
			resource: coordinationv1.Resource("leases"),
			open: func(gr schema.GroupResource, ns, name string, client client, w *lockWatches, limit *requestLimit) objectLock {
				c := client.CoordinationV1().Leases(ns)
				return newKindLock(w, limit, ns, name, gr, c, leaseCodec{},
					func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch)
			},
		}
		configMap = lockRow{
			kind:     "configmap",
			ref:      corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1"},
			resource: corev1.Resource("configmaps"),
			open: func(gr schema.GroupResource, ns, name string, client client, w *lockWatches, limit *requestLimit) objectLock {
				c := client.CoreV1().ConfigMaps(ns)
				return newKindLock(w, limit, ns, name, gr, c, annotationCodec[*corev1.ConfigMap]{},
					func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch)
			},
		}
		endpoints = lockRow{
			kind:       "endpoints",
			ref:        corev1.ObjectReference{Kind: "Endpoints", APIVersion: "v1"},
			resource:   corev1.Resource("endpoints"),
			deprecated: true,
			open: func(gr schema.GroupResource, ns, name string, client client, w *lockWatches, limit *requestLimit) objectLock {
				c := client.CoreV1().Endpoints(ns)
				return newKindLock(w, limit, ns, name, gr, c, annotationCodec[*corev1.Endpoints]{},
					func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch)
			},
		}
	)
	migration := func(old LockType, row lockRow) lockRow {
		row.kind, row.old, row.open = row.kind+"+lease", old, nil
		return row
	}
	switch t {
	case LockConfigMaps:
		return configMap
	case LockEndpoints:
		return endpoints
	case LockConfigMapsLeases:
		return migration(LockConfigMaps, configMap)
	case LockEndpointsLeases:
		return migration(LockEndpoints, endpoints)
	default:
		return lease
	}
}

// newObjectLock builds the lock for lock type t on the object ns/name. With
// w, the lock objects are watched by the runs it adds to w; with limit, its
// requests go through it (a Group's). It does no I/O.
func newObjectLock(t LockType, ns, name, id string, client client, w *lockWatches, limit *requestLimit) objectLock {
	row := lockTypeOf(t)
	if row.old != "" {
		return &migrationLock{id: id, old: newObjectLock(row.old, ns, name, id, client, w, limit),
			lease: newObjectLock(LockLeases, ns, name, id, client, w, limit)}
	}
	return row.open(row.resource, ns, name, client, w, limit)
}

func newKindLock[T any, P objectPtr[T]](w *lockWatches, limit *requestLimit, ns, name string, gr schema.GroupResource,
	api objectClient[T], codec recordCodec[P], list listFunc, watchFn watchFunc) *kindLock[T, P] {
	l := &kindLock[T, P]{namespace: ns, name: name, api: limited(api, limit), codec: codec}
	switch {
	case w != nil && w.follow != nil:
		l.cache = &lockCache[T, P]{gr: gr, name: name, changed: w.changed, refresh: true}
		w.follows = append(w.follows, func() func() { return l.cache.follow(w.follow, ns, list, watchFn) })
	case w != nil:
		l.cache = &lockCache[T, P]{gr: gr, name: name, changed: w.changed, refresh: true}
		w.runs = append(w.runs, func(ctx context.Context) { l.cache.run(ctx, w.clientset, list, watchFn) })
	}
	return l
}

// lockRef is the object reference of the lock object of type t, ns/name.
func lockRef(t LockType, ns, name string) corev1.ObjectReference {
	ref := lockTypeOf(t).ref
	ref.Namespace, ref.Name = ns, name
	return ref
}
