package elector

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// A Group's members.
//
// Every member of a Group (a process running it, under one ID) keeps one
// Lease, its member Lease, labelled with the Group's name: it stands for the
// member as a candidate in each of the Group's elections, so that a
// thousand elections cost one Lease per member, not a thousand. The members
// read each other's from the Group's shared informer of Leases, which they
// watch anyway for their locks: no request. A leader names a successor
// among them (the registry reads the table), and a Group that spreads its
// elections counts them.
//
// A member is alive while its Lease's last change, as this member saw it
// arrive, is younger than the lease duration it says: counted on this
// member's own clock, as a lock's expiry is.
const memberLabel = "k8s-elector.io/member-of"

// memberTable is the Group's member Leases as the shared informer delivers
// them.
type memberTable struct {
	group string // the label value
	// changed is called after each change of a member Lease.
	changed func()

	mu      sync.Mutex
	members map[string]member // by Lease name
	// snapshot is the Leases for the registries, each with its renew time
	// replaced by when it was seen, rebuilt at each change.
	snapshot atomic.Pointer[map[string]*coordinationv1.Lease]
}

// member is one member Lease and when it arrived.
type member struct {
	lease *coordinationv1.Lease
	seen  time.Time
}

func newMemberTable(group string, changed func()) *memberTable {
	m := &memberTable{group: labelValue(group), changed: changed, members: map[string]member{}}
	m.snapshot.Store(&map[string]*coordinationv1.Lease{})
	return m
}

// deliver takes an event of the shared Lease informer.
func (m *memberTable) deliver(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Labels[memberLabel] != m.group {
		return
	}
	m.mu.Lock()
	if deleted {
		delete(m.members, l.Name)
	} else {
		m.members[l.Name] = member{lease: l, seen: time.Now()}
	}
	m.rebuild()
	m.mu.Unlock()
	if m.changed != nil {
		m.changed()
	}
}

// initial takes the Leases a synced shared informer holds when the table
// starts to follow it.
func (m *memberTable) initial(obj any, present bool) {
	if present {
		m.deliver(obj, false)
	}
}

// rebuild makes the snapshot; m.mu is held.
func (m *memberTable) rebuild() {
	snap := make(map[string]*coordinationv1.Lease, len(m.members))
	for name, mb := range m.members {
		l := mb.lease.DeepCopy()
		seen := metav1.NewMicroTime(mb.seen)
		l.Spec.RenewTime = &seen
		snap[name] = l
	}
	m.snapshot.Store(&snap)
}

// leases returns the member Leases by name, each with its renew time set
// to when it arrived. They are shared: do not change them.
func (m *memberTable) leases() map[string]*coordinationv1.Lease {
	return *m.snapshot.Load()
}

// alive returns the IDs of the members alive at now, sorted.
func (m *memberTable) alive(now time.Time) []string {
	var ids []string
	for _, l := range m.leases() {
		ttl := time.Duration(ptrValue(l.Spec.LeaseDurationSeconds)) * time.Second
		if id := ptrValue(l.Spec.HolderIdentity); id != "" && now.Before(l.Spec.RenewTime.Add(ttl)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// heardFrom returns the IDs of the members whose Lease this member saw
// change within d before now, sorted.
func (m *memberTable) heardFrom(now time.Time, d time.Duration) []string {
	var ids []string
	for _, l := range m.leases() {
		if id := ptrValue(l.Spec.HolderIdentity); id != "" && now.Before(l.Spec.RenewTime.Add(d)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
