// Package record encodes and decodes the leader record that client-go's
// ConfigMap and Endpoints locks kept in the
// "control-plane.alpha.kubernetes.io/leader" annotation, before client-go
// removed those lock types.
//
// The encoding is wire-compatible with what client-go v0.17 wrote, for
// example:
//
//	{"holderIdentity":"up-1","leaseDurationSeconds":3,"acquireTime":"2026-11-25T04:36:54Z","renewTime":"2026-11-25T04:36:58Z","leaderTransitions":0}
//
// so that electors built on old client-go and k8s-elector can take part in
// one election. Encode writes exactly these five fields in this order;
// Decode ignores fields it does not know (newer client-go added "strategy"
// and "preferredHolder" to its in-memory record).
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// AnnotationKey is the annotation that holds the record on a ConfigMap or
// Endpoints lock object.
const AnnotationKey = resourcelock.LeaderElectionRecordAnnotationKey

// wire is the record as older client-go serialised it. Times are
// metav1.Time: whole seconds, RFC3339 in UTC, null when zero.
type wire struct {
	HolderIdentity       string      `json:"holderIdentity"`
	LeaseDurationSeconds int         `json:"leaseDurationSeconds"`
	AcquireTime          metav1.Time `json:"acquireTime"`
	RenewTime            metav1.Time `json:"renewTime"`
	LeaderTransitions    int         `json:"leaderTransitions"`
}

// Encode returns the annotation value for r. Sub-second precision of the
// times is dropped, as in the original format; Strategy and PreferredHolder
// are not part of the format and are not written.
func Encode(r resourcelock.LeaderElectionRecord) string {
	b, err := json.Marshal(wire{
		HolderIdentity:       r.HolderIdentity,
		LeaseDurationSeconds: r.LeaseDurationSeconds,
		AcquireTime:          r.AcquireTime,
		RenewTime:            r.RenewTime,
		LeaderTransitions:    r.LeaderTransitions,
	})
	if err != nil {
		// Only strings, ints and times that metav1.Time can always format.
		panic(fmt.Sprintf("record: encoding a leader record cannot fail: %v", err))
	}
	return string(b)
}

// ErrInvalid is wrapped by every error Decode returns.
var ErrInvalid = errors.New("record: invalid leader record")

// Decode parses an annotation value. It fails for anything that is not a
// single JSON object, and for negative durations or transition counts, which
// no elector writes and which would make expiry or fencing meaningless.
func Decode(s string) (resourcelock.LeaderElectionRecord, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if err := dec.Decode(&w); err != nil {
		return resourcelock.LeaderElectionRecord{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return resourcelock.LeaderElectionRecord{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if w.LeaseDurationSeconds < 0 {
		return resourcelock.LeaderElectionRecord{}, fmt.Errorf("%w: leaseDurationSeconds is %d, want 0 or more", ErrInvalid, w.LeaseDurationSeconds)
	}
	if w.LeaderTransitions < 0 {
		return resourcelock.LeaderElectionRecord{}, fmt.Errorf("%w: leaderTransitions is %d, want 0 or more", ErrInvalid, w.LeaderTransitions)
	}
	return resourcelock.LeaderElectionRecord{
		HolderIdentity:       w.HolderIdentity,
		LeaseDurationSeconds: w.LeaseDurationSeconds,
		AcquireTime:          w.AcquireTime,
		RenewTime:            w.RenewTime,
		LeaderTransitions:    w.LeaderTransitions,
	}, nil
}
