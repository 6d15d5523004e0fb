// Package electortest gives tests a fake API server that, unlike client-go's
// fake clientset alone, enforces optimistic concurrency: every create and
// update assigns a new resourceVersion, and an update that carries a stale
// one fails with a Conflict, as on a real API server. Candidates racing for a
// lock in a test then see the same conflicts they would see in a cluster.
package electortest

import (
	"fmt"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Cluster is a store of objects shared by any number of clientsets.
type Cluster struct {
	tracker k8stesting.ObjectTracker

	mu sync.Mutex // serialises writes, so check-and-set is atomic
	rv int64
}

// NewCluster returns a cluster holding copies of objs.
func NewCluster(objs ...runtime.Object) *Cluster {
	c := &Cluster{tracker: fake.NewClientset().Tracker()}
	for _, o := range objs {
		o = o.DeepCopyObject()
		c.stamp(o, true)
		if err := c.tracker.Add(o); err != nil {
			panic(fmt.Sprintf("electortest: adding %T: %v", o, err))
		}
	}
	return c
}

// Client returns a new clientset on the cluster. Each candidate in a test
// can have its own, so that faults are injected per candidate with
// PrependReactor.
func (c *Cluster) Client() *fake.Clientset {
	cs := &fake.Clientset{}
	cs.AddReactor("*", "*", c.react)
	// Watches see every write of every clientset on the cluster. Like the
	// fake clientset's own, they ignore field selectors and resourceVersion.
	cs.AddWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := c.tracker.Watch(a.GetResource(), a.GetNamespace())
		return true, w, err
	})
	return cs
}

func (c *Cluster) react(a k8stesting.Action) (bool, runtime.Object, error) {
	// CreateAction and UpdateAction have the same method set: switch on the
	// verb, not the type.
	switch a.GetVerb() {
	case "create":
		obj := a.(k8stesting.CreateAction).GetObject().DeepCopyObject()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stamp(obj, true)
		if err := c.tracker.Create(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	case "update":
		obj := a.(k8stesting.UpdateAction).GetObject().DeepCopyObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return true, nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		cur, err := c.tracker.Get(a.GetResource(), a.GetNamespace(), m.GetName())
		if err != nil {
			return true, nil, err
		}
		cm, err := meta.Accessor(cur)
		if err != nil {
			return true, nil, err
		}
		if rv := m.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), m.GetName(),
				fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		m.SetUID(cm.GetUID())
		c.stamp(obj, false)
		if err := c.tracker.Update(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	default:
		return k8stesting.ObjectReaction(c.tracker)(a)
	}
}

// stamp gives obj the next resourceVersion, and a UID when it is new.
// The caller holds c.mu (or has the cluster to itself).
func (c *Cluster) stamp(obj runtime.Object, created bool) {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("electortest: %T has no object metadata: %v", obj, err))
	}
	c.rv++
	m.SetResourceVersion(strconv.FormatInt(c.rv, 10))
	if created {
		m.SetUID(types.UID("uid-" + strconv.FormatInt(c.rv, 10)))
	}
}
