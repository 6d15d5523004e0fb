package elector

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// A graceful handover names a successor in the release itself: the write
// that blanks the holder also puts successorAnnotation on the lock object.
// The successor takes the lock at once, in one write; the other candidates
// of this module that see the release wait successorWindow, from when they
// saw it, before they try, so they do not race it. If the successor does
// not take the lock in that window (it died, froze, is cut off, or is not
// ready), they race for it as after any release.
//
// The hint is only an annotation: plain client-go electors and the
// original k8s-elector ignore it and race for the released lock as they
// always did, and every acquisition is still a write conditioned on the
// object's resourceVersion, so at most one of them wins. A hint is valid
// only on the release it was written with: an elector that keeps the
// annotation when it writes the lock (client-go does, it rewrites only its
// own record) leaves a hint that names another record and is ignored.
const successorAnnotation = "k8s-elector.io/successor"

// successorWindow is how long the other candidates leave a named
// successor to take the lock, from when each saw the release.
const successorWindow = time.Second

// successorHint is the annotation's value: the successor, and the release
// record it belongs to.
type successorHint struct {
	To string `json:"to"`
	// LeaderTransitions and RenewTime (Unix seconds, the precision every
	// lock kind keeps) of the release.
	LeaderTransitions int   `json:"leaderTransitions"`
	RenewTime         int64 `json:"renewTime"`
}

// setSuccessor writes the hint for rec, a release naming to, into obj's
// annotations, or removes any hint when to is empty: every write clears
// the hint of the release before it. The map is replaced, not changed, so
// that an object shared with the watch's cache stays as it is.
func setSuccessor(obj metav1.Object, rec resourcelock.LeaderElectionRecord, to string) {
	ann := obj.GetAnnotations()
	if _, had := ann[successorAnnotation]; !had && to == "" {
		return
	}
	ann = maps.Clone(ann)
	if ann == nil {
		ann = map[string]string{}
	}
	if to == "" {
		delete(ann, successorAnnotation)
	} else {
		b, _ := json.Marshal(successorHint{To: to, LeaderTransitions: rec.LeaderTransitions, RenewTime: rec.RenewTime.Unix()})
		ann[successorAnnotation] = string(b)
	}
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
}

// successorOf returns the successor that obj's hint names for rec, the
// record obj holds: none unless rec is a release and the hint was written
// with it.
func successorOf(obj metav1.Object, rec resourcelock.LeaderElectionRecord) string {
	raw, ok := obj.GetAnnotations()[successorAnnotation]
	if !ok || rec.HolderIdentity != "" {
		return ""
	}
	var h successorHint
	if json.Unmarshal([]byte(raw), &h) != nil || checkID(h.To) != nil {
		return ""
	}
	if h.LeaderTransitions != rec.LeaderTransitions || h.RenewTime != rec.RenewTime.Unix() {
		return ""
	}
	return h.To
}

// checkID returns why id cannot be a candidate's ID, or nil.
func checkID(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return fmt.Errorf("ID %q is empty: want a unique, non-blank name for a candidate", id)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return fmt.Errorf("ID %q contains control characters", id)
	case len(id) > 253:
		return fmt.Errorf("ID is %d bytes long: want at most 253", len(id))
	}
	return nil
}

// errSelfSuccessor is the answer to a handover to the leader itself.
var errSelfSuccessor = errors.New("elector: cannot hand over to this candidate itself: name another candidate")
