package electortest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
)

// ErrPartitioned is the error, wrapped with the request's verb and resource,
// of every request of a client that Partition cut off. It is not an API
// status (apierrors.APIStatus), just as a refused or reset connection is not.
var ErrPartitioned = errors.New("electortest: cut off from the cluster")

// Cluster is a store of objects shared by any number of clientsets, as one
// API server is. Its methods, and the clientsets it makes, are safe for
// concurrent use.
type Cluster struct {
	tracker k8stesting.ObjectTracker

	mu sync.Mutex // serialises writes, so check-and-set is atomic
	rv int64

	netMu sync.Mutex // guards links and every link's fields
	links map[*fake.Clientset]*link
}

// link is one clientset's connection to the cluster.
type link struct {
	cut     bool
	watches []watch.Interface // open watches, ended when the link is cut
}

var quietErrors sync.Once

// NewCluster returns a cluster holding copies of objs, each with a UID and a
// resourceVersion of the cluster's own (any that objs carry are replaced).
// It panics if an object has no object metadata or two have the same name.
//
// The first call also replaces client-go's process-wide error handlers
// (k8s.io/apimachinery/pkg/util/runtime.ErrorHandlers) with one that only
// logs: their back-off keeps one last-error instant for the whole process,
// so an error late on one testing/synctest bubble's clock (or on the real
// clock) would make the next bubble's watches sleep until that instant on
// its own clock, for minutes or years, while its timers keep firing.
func NewCluster(objs ...runtime.Object) *Cluster {
	quietErrors.Do(func() {
		utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
			func(ctx context.Context, err error, msg string, kv ...any) {
				klog.FromContext(ctx).Error(err, msg, kv...)
			},
		}
	})
	c := &Cluster{tracker: fake.NewClientset().Tracker(), links: make(map[*fake.Clientset]*link)}
	for _, o := range objs {
		o = o.DeepCopyObject()
		c.stamp(o, true)
		if err := c.tracker.Add(o); err != nil {
			panic(fmt.Sprintf("electortest: adding %T: %v", o, err))
		}
	}
	return c
}

// Client returns a new clientset on the cluster: a create gets a new UID, and
// every create and update a new resourceVersion; an update with a stale
// resourceVersion fails with a Conflict; a watch sees the writes of every
// clientset on the cluster from when it starts (it ignores field selectors
// and the resourceVersion to start from, as the fake clientset's own does).
// Give each candidate in a test its own, so that Partition, or a reactor
// added with PrependReactor, affects that candidate alone. The clientset has
// no Tracker of its own: read the cluster through any of its clients.
func (c *Cluster) Client() *fake.Clientset {
	cs := &fake.Clientset{}
	l := &link{}
	c.netMu.Lock()
	c.links[cs] = l
	c.netMu.Unlock()
	cs.AddReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.netMu.Lock()
		cut := l.cut
		c.netMu.Unlock()
		if cut {
			return true, nil, partitioned(a)
		}
		return c.react(a)
	})
	cs.AddWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		c.netMu.Lock()
		defer c.netMu.Unlock()
		if l.cut {
			return true, nil, partitioned(a)
		}
		w, err := c.tracker.Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		open := l.watches[:0]
		for _, o := range l.watches {
			if s, ok := o.(interface{ IsStopped() bool }); !ok || !s.IsStopped() {
				open = append(open, o)
			}
		}
		l.watches = append(open, w)
		return true, w, nil
	})
	return cs
}

// Partition cuts client off from the cluster, as a network partition would,
// until Heal: each of its requests fails at once with an error that wraps
// ErrPartitioned and never reaches the cluster, its open watches end (their
// result channels are closed after the events already sent), and new
// watches fail. A request already past the cut completes. The cluster and
// its other clients go on as before. Partitioning a client that is cut off
// does nothing; reactors added with PrependReactor still run first. It
// panics if c.Client did not make client.
func (c *Cluster) Partition(client *fake.Clientset) {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	l := c.link(client)
	l.cut = true
	for _, w := range l.watches {
		w.Stop()
	}
	l.watches = nil
}

// Heal ends the partition of client: its requests reach the cluster again.
// Watches that Partition ended stay ended; informers start new ones, as
// they do when a connection comes back. Healing a client that is not cut
// off does nothing. It panics if c.Client did not make client.
func (c *Cluster) Heal(client *fake.Clientset) {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	c.link(client).cut = false
}

// link returns client's link; the caller holds c.netMu.
func (c *Cluster) link(client *fake.Clientset) *link {
	l, ok := c.links[client]
	if !ok {
		panic("electortest: the clientset was not made by this Cluster's Client")
	}
	return l
}

// partitioned is the error of a's request on a cut link.
func partitioned(a k8stesting.Action) error {
	return fmt.Errorf("%s %s: %w", a.GetVerb(), a.GetResource().Resource, ErrPartitioned)
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
