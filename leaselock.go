package elector

import (
	"encoding/binary"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaseCodec keeps the record in a coordination.k8s.io/v1 Lease, field for
// field as client-go's LeaseLock does.
type leaseCodec struct{}

// decode returns the record and the two forms followers compare, which
// only need to be equal exactly when what they stand for is:
//   - visible stands for what client-go's LeaseLock.Get gives its
//     LeaderElector to compare, the JSON of the record converted to
//     whole-second times: it is equal when that JSON is.
//   - precise stands for the spec as the Lease stores it, with microsecond
//     times, so that it changes with every renewal, but without the
//     strategy and preferred holder, which a coordinator of Coordinated
//     Leader Election writes: that is not a renewal, nor a write in the
//     holder's name.
//
// Both are built by hand rather than marshalled: decode runs at every
// renewal and every change the watch shows, and encoding/json's reflection
// cost CPU and grew the stack it ran on each time (a Group runs a
// thousand elections).
func (leaseCodec) decode(l *coordinationv1.Lease, _ string) (resourcelock.LeaderElectionRecord, []byte, []byte, error) {
	rec := *resourcelock.LeaseSpecToLeaderElectionRecord(&l.Spec)
	return rec, visibleForm(rec), preciseForm(l.Spec), nil
}

func (leaseCodec) encode(l *coordinationv1.Lease, rec resourcelock.LeaderElectionRecord) {
	l.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&rec)
}

// visibleForm encodes what the JSON of rec says: its strings, its numbers,
// and its times as metav1.Time writes them, null when zero and else to the
// second.
func visibleForm(rec resourcelock.LeaderElectionRecord) []byte {
	b := make([]byte, 0, 64)
	b = appendString(b, rec.HolderIdentity)
	b = binary.AppendVarint(b, int64(rec.LeaseDurationSeconds))
	b = appendTime(b, rec.AcquireTime.Time, time.Second)
	b = appendTime(b, rec.RenewTime.Time, time.Second)
	b = binary.AppendVarint(b, int64(rec.LeaderTransitions))
	b = appendString(b, string(rec.Strategy))
	return appendString(b, rec.PreferredHolder)
}

// preciseForm encodes what the JSON of spec says, but its strategy and
// preferred holder: which fields are set, their values, and the times as
// metav1.MicroTime writes them, null when zero and else to the
// microsecond.
func preciseForm(spec coordinationv1.LeaseSpec) []byte {
	b := make([]byte, 0, 64)
	if b = appendSet(b, spec.HolderIdentity != nil); spec.HolderIdentity != nil {
		b = appendString(b, *spec.HolderIdentity)
	}
	if b = appendSet(b, spec.LeaseDurationSeconds != nil); spec.LeaseDurationSeconds != nil {
		b = binary.AppendVarint(b, int64(*spec.LeaseDurationSeconds))
	}
	for _, t := range []*metav1.MicroTime{spec.AcquireTime, spec.RenewTime} {
		if b = appendSet(b, t != nil); t != nil {
			b = appendTime(b, t.Time, time.Microsecond)
		}
	}
	if b = appendSet(b, spec.LeaseTransitions != nil); spec.LeaseTransitions != nil {
		b = binary.AppendVarint(b, int64(*spec.LeaseTransitions))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendSet(b []byte, set bool) []byte {
	if set {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTime appends t to the precision JSON gives it, unit: a second or a
// microsecond, truncated as formatting truncates; a zero time is null.
func appendTime(b []byte, t time.Time, unit time.Duration) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	if unit == time.Second {
		return binary.AppendVarint(b, t.Unix())
	}
	return binary.AppendVarint(b, t.UnixMicro())
}
