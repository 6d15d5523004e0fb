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
	// IsLeader reports whether this candidate leads: it has acquired the lock
	// and its term has not ended.
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
	leader  string
	leading bool
}

// Status returns a consistent snapshot of the election as this Elector sees
// it. It never blocks and is safe to call from any goroutine, at any rate,
// before, during and after Run.
func (e *Elector) Status() Status {
	v := e.view.Load()
	return Status{
		IsLeader:  v.leading,
		Leader:    v.leader,
		Node:      e.o.id,
		Timestamp: time.Now().UTC(),
	}
}

// publish replaces the view that Status reads.
func (e *Elector) publish(v view) { e.view.Store(&v) }
