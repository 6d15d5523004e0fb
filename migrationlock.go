package elector

import (
	"context"
	"encoding/binary"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

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
// Its raw records join both objects' records, as MultiLock's did, so that a
// change to either counts as a renewal.
type migrationLock struct {
	id         string
	old, lease objectLock
}

var _ objectLock = (*migrationLock)(nil)

func (m *migrationLock) get(ctx context.Context) (lockRead, error) {
	r, err := m.old.get(ctx)
	if err != nil {
		return r, err
	}
	lr, err := m.lease.get(ctx)
	if err != nil {
		if apierrors.IsNotFound(err) && r.rec.HolderIdentity != m.id {
			r.cached = r.cached && lr.cached
			return r, nil
		}
		return lockRead{cached: r.cached && lr.cached, seen: later(r.seen, lr.seen)}, err
	}
	return m.join(r, lr), nil
}

// join is the election's view of the two objects' reads.
func (m *migrationLock) join(r, lr lockRead) lockRead {
	if r.rec.HolderIdentity != lr.rec.HolderIdentity {
		r.rec.HolderIdentity = resourcelock.UnknownLeader
	}
	r.visible = joinRaw(r.visible, lr.visible)
	r.precise = joinRaw(r.precise, lr.precise)
	r.cached = r.cached && lr.cached
	r.seen = later(r.seen, lr.seen)
	if r.successor != lr.successor {
		r.successor = "" // a hint counts when both objects carry it
	}
	return r
}

// joinRaw joins the forms of the two objects; the length of the first
// keeps the join unambiguous.
func joinRaw(old, lease []byte) []byte {
	return slices.Concat(binary.AppendUvarint(nil, uint64(len(old))), old, lease)
}

func (m *migrationLock) create(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error) {
	r, err := m.old.create(ctx, rec)
	if err != nil {
		return r, err
	}
	lr, err := m.lease.create(ctx, rec)
	if err != nil {
		return lr, err
	}
	return m.join(r, lr), nil
}

func (m *migrationLock) update(ctx context.Context, rec resourcelock.LeaderElectionRecord, x extras) (lockRead, error) {
	r, err := m.old.update(ctx, rec, x)
	if err != nil {
		return r, err
	}
	// The Lease may not exist yet (the old object was created by an old
	// elector) or may have changed since it was read: read it again.
	var lr lockRead
	if _, err := m.lease.get(ctx); err != nil {
		if !apierrors.IsNotFound(err) {
			return lockRead{}, err
		}
		lr, err = m.lease.create(ctx, rec)
		if err != nil {
			return lr, err
		}
	} else if lr, err = m.lease.update(ctx, rec, x); err != nil {
		return lr, err
	}
	return m.join(r, lr), nil
}

// annotate annotates the old object, which holds the election's record.
func (m *migrationLock) annotate(ctx context.Context, key, value string) (lockRead, error) {
	r, err := m.old.annotate(ctx, key, value)
	if err != nil {
		return r, err
	}
	lr, err := m.lease.get(ctx)
	if err != nil {
		return r, nil
	}
	return m.join(r, lr), nil
}

func (m *migrationLock) visibleOf(rec resourcelock.LeaderElectionRecord) []byte {
	return joinRaw(m.old.visibleOf(rec), m.lease.visibleOf(rec))
}

func (m *migrationLock) describe() string { return m.old.describe() + "+lease" }

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
