package elector

import (
	"encoding/json"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaseCodec keeps the record in a coordination.k8s.io/v1 Lease, field for
// field as client-go's LeaseLock does.
type leaseCodec struct{}

// decode returns the record and the two forms followers compare: visible is
// what client-go's LeaseLock.Get returns as the raw record, the record
// converted to whole-second times; precise is the spec as the Lease stores
// it, with microsecond times, so that it changes with every renewal, but
// without the strategy and preferred holder, which a coordinator of
// Coordinated Leader Election writes: that is not a renewal, nor a write in
// the holder's name.
func (leaseCodec) decode(l *coordinationv1.Lease, desc string) (resourcelock.LeaderElectionRecord, []byte, []byte, error) {
	rec := *resourcelock.LeaseSpecToLeaderElectionRecord(&l.Spec)
	visible, err := json.Marshal(rec)
	if err != nil {
		return rec, nil, nil, fmt.Errorf("encode the record of lease %s: %w", desc, err)
	}
	spec := l.Spec
	spec.Strategy, spec.PreferredHolder = nil, nil
	precise, err := json.Marshal(spec)
	if err != nil {
		return rec, nil, nil, fmt.Errorf("encode the spec of lease %s: %w", desc, err)
	}
	return rec, visible, precise, nil
}

func (leaseCodec) encode(l *coordinationv1.Lease, rec resourcelock.LeaderElectionRecord) {
	l.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&rec)
}
