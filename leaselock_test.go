package elector

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// The forms a Lease's record is compared in are equal exactly when the JSON
// they stand for is: client-go's raw record for visible, the spec without
// the coordinator's fields for precise. Every pair of a set of records that
// differ in one field or in the precision of a time is checked.
func TestLeaseFormsCompareAsTheirJSON(t *testing.T) {
	base := time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)
	times := []time.Time{{}, base, base.Add(300 * time.Millisecond), base.Add(time.Second),
		base.Add(1500 * time.Nanosecond), base.Add(1999 * time.Nanosecond), base.Add(2 * time.Microsecond),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_500, time.UTC), time.Unix(0, 0)}
	var recs []resourcelock.LeaderElectionRecord
	for _, holder := range []string{"", "a", "b", "<a&b>", "ä"} {
		for _, lease := range []int{0, 1, 10} {
			recs = append(recs, resourcelock.LeaderElectionRecord{HolderIdentity: holder, LeaseDurationSeconds: lease})
		}
	}
	for _, at := range times {
		recs = append(recs,
			resourcelock.LeaderElectionRecord{HolderIdentity: "a", AcquireTime: metav1.NewTime(at), RenewTime: metav1.NewTime(base)},
			resourcelock.LeaderElectionRecord{HolderIdentity: "a", AcquireTime: metav1.NewTime(base), RenewTime: metav1.NewTime(at)})
	}
	for _, n := range []int{0, 1, 2} {
		recs = append(recs, resourcelock.LeaderElectionRecord{HolderIdentity: "a", LeaderTransitions: n},
			resourcelock.LeaderElectionRecord{HolderIdentity: "a", PreferredHolder: []string{"", "a", "b"}[n]},
			resourcelock.LeaderElectionRecord{HolderIdentity: "a", Strategy: []coordinationv1.CoordinatedLeaseStrategy{"", "x", "y"}[n]})
	}
	for _, a := range recs {
		for _, b := range recs {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if want, got := bytes.Equal(ja, jb), bytes.Equal(visibleForm(a), visibleForm(b)); got != want {
				t.Errorf("visible forms of %s and %s: equal %v, want %v", ja, jb, got, want)
			}
		}
	}

	var specs []coordinationv1.LeaseSpec
	for _, holder := range []*string{nil, to(""), to("a"), to("b")} {
		specs = append(specs, coordinationv1.LeaseSpec{HolderIdentity: holder})
	}
	for _, n := range []*int32{nil, to[int32](0), to[int32](1)} {
		specs = append(specs, coordinationv1.LeaseSpec{LeaseDurationSeconds: n}, coordinationv1.LeaseSpec{LeaseTransitions: n})
	}
	for _, at := range times {
		mt := to(metav1.NewMicroTime(at))
		specs = append(specs, coordinationv1.LeaseSpec{AcquireTime: mt}, coordinationv1.LeaseSpec{RenewTime: mt})
	}
	specs = append(specs, coordinationv1.LeaseSpec{}, coordinationv1.LeaseSpec{PreferredHolder: to("b")},
		coordinationv1.LeaseSpec{Strategy: to(coordinationv1.OldestEmulationVersion)})
	for _, a := range specs {
		for _, b := range specs {
			ja, _ := json.Marshal(withoutCoordinator(a))
			jb, _ := json.Marshal(withoutCoordinator(b))
			if want, got := bytes.Equal(ja, jb), bytes.Equal(preciseForm(a), preciseForm(b)); got != want {
				t.Errorf("precise forms of %s and %s: equal %v, want %v", ja, jb, got, want)
			}
		}
	}
}

func withoutCoordinator(s coordinationv1.LeaseSpec) coordinationv1.LeaseSpec {
	s.Strategy, s.PreferredHolder = nil, nil
	return s
}

func to[T any](v T) *T { return &v }
