package elector

import (
	"encoding/json"
	"time"
)

// Status is a snapshot of an Elector's view of its election. Its JSON form is
// the body of GET / :
//
//	{"is_leader":false,"leader":"k8s-elector-74c54b485f-hgf9z","node":"k8s-elector-74c54b485f-564ht","timestamp":"2019-05-02T18:28:51Z"}
type Status struct {
	// IsLeader reports whether this candidate leads: it holds the lock, its
	// term has not ended, and its last successful acquire or renewal was sent
	// less than the lease duration (minus a 2% margin for clock-rate drift)
	// ago, measured on the monotonic clock. A leader that was paused or cut
	// off from the API server reports false as soon as that time has passed,
	// before anyone else can have taken over.
	IsLeader bool `json:"is_leader"`
	// Leader is the holder named by the lock record as last read or written,
	// "" before the first read and after a release.
	Leader string `json:"leader"`
	// Node is this candidate's ID.
	Node string `json:"node"`
	// Timestamp is when the snapshot was taken. JSON carries it in RFC3339 in
	// UTC, to the second.
	Timestamp time.Time `json:"timestamp"`
}

// MarshalJSON writes the status with the timestamp in RFC3339, UTC, whole
// seconds, as the original k8s-elector did.
func (s Status) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		IsLeader  bool   `json:"is_leader"`
		Leader    string `json:"leader"`
		Node      string `json:"node"`
		Timestamp string `json:"timestamp"`
	}{s.IsLeader, s.Leader, s.Node, s.Timestamp.UTC().Format(time.RFC3339)})
}

// view is what the election goroutine publishes for Status. It is immutable
// once stored.
type view struct {
	leader     string
	leading    bool
	validUntil time.Time // with a monotonic reading
}

// Status returns a consistent snapshot of the election as this Elector sees
// it. It never blocks and is safe to call from any goroutine, at any rate,
// before, during and after Run.
func (e *Elector) Status() Status {
	v := e.view.Load()
	now := time.Now()
	return Status{
		IsLeader:  v.leading && now.Before(v.validUntil),
		Leader:    v.leader,
		Node:      e.o.id,
		Timestamp: now.UTC(),
	}
}

// publish replaces the view that Status reads.
func (e *Elector) publish(v view) { e.view.Store(&v) }
