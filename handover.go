package elector

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	if _, had := obj.GetAnnotations()[successorAnnotation]; !had && to == "" {
		return
	}
	editAnnotations(obj, func(ann map[string]string) {
		if to == "" {
			delete(ann, successorAnnotation)
			return
		}
		b, _ := json.Marshal(successorHint{To: to, LeaderTransitions: rec.LeaderTransitions, RenewTime: rec.RenewTime.Unix()})
		ann[successorAnnotation] = string(b)
	})
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

// A handover request asks the leader, through the lock object, to hand over
// (RequestHandover, `k8s-elector handover`): whoever may update the lock
// object can ask, from anywhere, and nothing else is needed. The leader sees
// the request with its next read of the lock (its watch at once; polling, at
// its next renewal, which the request makes conflict) and answers it with
// its next write: a release naming the successor, or a renewal that refuses
// it in handoverRefusedAnnotation, naming the request's ID and the reason.
// Every write of the leader removes the request it answered.
const (
	handoverRequestAnnotation = "k8s-elector.io/handover-request"
	handoverRefusedAnnotation = "k8s-elector.io/handover-refused"
)

// handoverRequest is a request's annotation: its ID, and the candidate to
// hand over to, or none for the best.
type handoverRequest struct {
	ID string `json:"id"`
	To string `json:"to,omitempty"`
}

// handoverRefusal is the leader's answer to a request it refused.
type handoverRefusal struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// parseRequest returns the request in raw, and whether it is one.
func parseRequest(raw string) (handoverRequest, bool) {
	var r handoverRequest
	if raw == "" || json.Unmarshal([]byte(raw), &r) != nil || r.ID == "" || r.To != "" && checkID(r.To) != nil {
		return r, false
	}
	return r, true
}

// keptRefusals is how many refusals the annotation keeps, newest first, so
// that a caller that polls finds its own though others came after it.
const keptRefusals = 4

// answerRequest removes the handover request from obj's annotations and
// records refused, if any, before the refusals already there. The map is
// replaced, not changed.
func answerRequest(obj metav1.Object, refused []handoverRefusal) {
	if _, asked := obj.GetAnnotations()[handoverRequestAnnotation]; !asked && len(refused) == 0 {
		return
	}
	editAnnotations(obj, func(ann map[string]string) {
		delete(ann, handoverRequestAnnotation)
		if len(refused) > 0 {
			all := slices.Clone(refused)
			slices.Reverse(all)
			all = append(all, parseRefusals(ann[handoverRefusedAnnotation])...)
			b, _ := json.Marshal(all[:min(len(all), keptRefusals)])
			ann[handoverRefusedAnnotation] = string(b)
		}
	})
}

// parseRefusals returns the refusals in the annotation's value raw.
func parseRefusals(raw string) []handoverRefusal {
	var rs []handoverRefusal
	_ = json.Unmarshal([]byte(raw), &rs) // anything else: none
	return rs
}

// editAnnotations applies edit to a copy of obj's annotations and sets the
// copy (nil if it ends empty): an object shared with the watch's cache is
// never changed.
func editAnnotations(obj metav1.Object, edit func(map[string]string)) {
	ann := maps.Clone(obj.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	edit(ann)
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
}
