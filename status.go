package elector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Status is a snapshot of an Elector's view of its election. Its JSON form is
// the body of GET / : the four fields of the original k8s-elector, then the
// lock record and, on the leader, how long its leadership is valid:
//
//	{"is_leader":true,"leader":"pod-a","node":"pod-a","timestamp":"2026-11-25T18:28:51Z",
//	 "lock_uid":"6f0c…","leader_transitions":3,"acquire_time":"2026-11-25T18:20:02.113Z",
//	 "renew_time":"2026-11-25T18:28:50.402Z","valid_until":"2026-11-25T18:29:00.202Z"}
//
// # Fencing
//
// (LockUID, LeaderTransitions) is a fencing token: the transition count grows
// by one with every change of holder, and a new UID (the lock object was
// deleted and created again) starts a new epoch. UIDs carry no order of their
// own: a resource takes a UID it has not seen as an epoch newer than every
// token before it. A leader passes its token with every write to the resource
// it protects, and the resource rejects a write from an older epoch, or from
// the same epoch with a lower transition count than the highest it has
// accepted, so that a leader that was paused past its term cannot overwrite
// its successor's work.
type Status struct {
	// IsLeader reports whether this candidate leads: it holds the lock, its
	// term has not ended, and ValidUntil (less the stop grace, see
	// ValidUntil) has not passed on the monotonic clock. A leader that was
	// paused or cut off from the API server reports false as soon as that
	// time has passed, before anyone else can have taken over.
	IsLeader bool `json:"is_leader"`
	// Leader is the holder named by the lock record as last read or written,
	// "" before the first read and after a release.
	Leader string `json:"leader"`
	// Node is this candidate's ID.
	Node string `json:"node"`
	// Timestamp is when the snapshot was taken. JSON carries it in RFC3339 in
	// UTC, to the second.
	Timestamp time.Time `json:"timestamp"`

	// LockUID is the UID of the lock object, "" before the first read.
	LockUID string `json:"lock_uid,omitempty"`
	// LeaderTransitions counts the changes of holder recorded in the lock.
	LeaderTransitions int `json:"leader_transitions"`
	// AcquireTime and RenewTime are the holder's times from the lock record,
	// on the holder's clock (whole seconds for ConfigMap and Endpoints
	// locks). Zero, and absent from JSON, before the first read.
	AcquireTime time.Time `json:"acquire_time,omitzero"`
	RenewTime   time.Time `json:"renew_time,omitzero"`
	// ValidUntil is, on the leader, when its leadership ends unless it
	// renews: the lease duration, less the clock-drift margin (2%), after the
	// send time of the first write that gave the lock record what followers
	// now compare. The record has whole-second times, and a follower counts
	// the lease from when it saw that record change, so a renewal in the same
	// second as the one before does not move ValidUntil. Zero, and absent
	// from JSON, whenever IsLeader is false. With WithStopGrace, the term, and
	// IsLeader, end the stop grace plus the drift margin before ValidUntil
	// unless the leader renews, so that the leader work has stopped by then.
	ValidUntil time.Time `json:"valid_until,omitzero"`

	// Candidate, with a candidacy gate (WithCandidacyGate),
	// reports whether this candidate campaigns: false while its
	// application is not ready, and until its first check passes. Nil, and
	// absent from JSON, without a gate.
	Candidate *bool `json:"candidate,omitempty"`
	// Reports are what other parts of the process report through
	// Elector.Report, such as the state of a command run as the leader
	// work, by key: JSON carries each as a field of its own, after the
	// others, in the order of the keys. Nil without reports. A Status
	// shares the map with others taken at the same time: do not change it.
	Reports map[string]json.RawMessage `json:"-"`
}

// jsonTime is the layout of the times Status adds to the original fields:
// RFC3339 in UTC with milliseconds.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(jsonTime)
}

// MarshalJSON writes the status with the timestamp in RFC3339, UTC, whole
// seconds, as the original k8s-elector did, and the other times with
// milliseconds.
func (s Status) MarshalJSON() ([]byte, error) {
	base, err := json.Marshal(struct {
		IsLeader          bool   `json:"is_leader"`
		Leader            string `json:"leader"`
		Node              string `json:"node"`
		Timestamp         string `json:"timestamp"`
		LockUID           string `json:"lock_uid,omitempty"`
		LeaderTransitions int    `json:"leader_transitions"`
		AcquireTime       string `json:"acquire_time,omitempty"`
		RenewTime         string `json:"renew_time,omitempty"`
		ValidUntil        string `json:"valid_until,omitempty"`
		Candidate         *bool  `json:"candidate,omitempty"`
	}{
		s.IsLeader, s.Leader, s.Node, s.Timestamp.UTC().Format(time.RFC3339),
		s.LockUID, s.LeaderTransitions, formatTime(s.AcquireTime), formatTime(s.RenewTime), formatTime(s.ValidUntil),
		s.Candidate,
	})
	if err != nil || len(s.Reports) == 0 {
		return base, err
	}
	b := bytes.NewBuffer(base[:len(base)-1]) // without the closing brace
	for _, k := range slices.Sorted(maps.Keys(s.Reports)) {
		key, _ := json.Marshal(k) // a string always encodes
		b.WriteByte(',')
		b.Write(key)
		b.WriteByte(':')
		if err := json.Compact(b, s.Reports[k]); err != nil {
			return nil, fmt.Errorf("elector: report %q: %w", k, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// statusFields are the JSON keys of Status's own fields, which a report
// cannot take.
var statusFields = []string{"is_leader", "leader", "node", "timestamp", "lock_uid", "leader_transitions",
	"acquire_time", "renew_time", "valid_until", "candidate"}

// reports is what a view says of the reports (Elector.Report). It is
// immutable once published: a change publishes a new one.
type reports struct{ m map[string]json.RawMessage }

// with returns the reports with key set to raw, or without key if raw is
// nil.
func (r *reports) with(key string, raw json.RawMessage) *reports {
	n := &reports{m: map[string]json.RawMessage{}}
	if r != nil {
		maps.Copy(n.m, r.m)
	}
	if raw == nil {
		delete(n.m, key)
	} else {
		n.m[key] = raw
	}
	if len(n.m) == 0 {
		return nil
	}
	return n
}

// view is what the election goroutine publishes for Status, with the parts
// that Report and the candidacy gate publish. It is immutable
// once stored.
type view struct {
	known       bool // the lock has been read at least once
	running     bool // published by a Run that has not returned
	leader      string
	leading     bool
	validUntil  time.Time // with a monotonic reading
	endsAt      time.Time // when the term ends unless renewed: validUntil less the stop grace (options.ahead)
	uid         types.UID
	transitions int
	acquireTime time.Time
	renewTime   time.Time
	term        *term         // on the leader: its term
	renewed     time.Time     // on the leader: what its lease counts from (see term)
	lease       time.Duration // on the leader: lease duration of that write
	candidate   candidacy     // published by the gate
	reports     *reports      // published by Report

	// changed is closed when a newer view replaces this one; next is that
	// view, set before changed is closed, so that a reader can follow every
	// view published.
	changed chan struct{}
	next    *view
}

// same reports whether v and w show the same thing.
func (v *view) same(w *view) bool {
	a, b := *v, *w
	a.changed, b.changed, a.next, b.next = nil, nil, nil, nil
	return a == b
}

// candidacy is what a view says of the candidacy gate.
type candidacy uint8

const (
	noGate      candidacy = iota // no candidacy gate: always a candidate
	campaigning                  // the gate is open
	gated                        // the gate is closed, or has not answered yet
)

// candidacyOf is the candidacy of a gate that is open or not.
func candidacyOf(open bool) candidacy {
	if open {
		return campaigning
	}
	return gated
}

// status is the Status of candidate id in view v at now.
func (v *view) status(id string, now time.Time) Status {
	s := Status{
		IsLeader:          v.leadingAt(now),
		Leader:            v.leader,
		Node:              id,
		Timestamp:         now.UTC(),
		LockUID:           string(v.uid),
		LeaderTransitions: v.transitions,
		AcquireTime:       v.acquireTime,
		RenewTime:         v.renewTime,
	}
	if v.reports != nil {
		s.Reports = v.reports.m
	}
	if v.candidate != noGate {
		c := v.candidate == campaigning
		s.Candidate = &c
	}
	if s.IsLeader {
		// Round trips through JSON drop the monotonic reading anyway; strip it
		// here so that a Status compares equal to its decoded copy.
		s.ValidUntil = v.validUntil.Round(0)
	}
	return s
}

func (v *view) leadingAt(now time.Time) bool { return v.leading && now.Before(v.endsAt) }

// views owns the published view of one candidate and the GET / body rendered
// from it. Three writers publish, each its own part under one mutex: the
// election loop the record and the term, Report the reports, and the
// candidacy gate the candidacy. Any number read.
type views struct {
	id       string
	mu       sync.Mutex // serialises publishers
	cur      atomic.Pointer[view]
	rendered atomic.Pointer[statusJSON] // the last GET / body, see body
}

func newViews(id string) *views {
	vs := &views{id: id}
	vs.publish(view{})
	return vs
}

// load returns the current view.
func (vs *views) load() *view { return vs.cur.Load() }

// status is the Status at now.
func (vs *views) status(now time.Time) Status { return vs.load().status(vs.id, now) }

// publish replaces the election's part of the current view with v's.
func (vs *views) publish(v view) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if old := vs.cur.Load(); old != nil {
		v.candidate, v.reports = old.candidate, old.reports
	}
	vs.store(v)
}

// update publishes the current view as f changes it: Report and the
// candidacy gate publish their parts so.
func (vs *views) update(f func(*view)) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v := *vs.cur.Load()
	f(&v)
	vs.store(v)
}

// store replaces the current view with v, if v shows something else, and
// wakes everyone waiting for a change. vs.mu is held.
func (vs *views) store(v view) {
	if old := vs.cur.Load(); old != nil && old.same(&v) {
		return
	}
	v.changed = make(chan struct{})
	if old := vs.cur.Swap(&v); old != nil {
		old.next = &v
		close(old.changed)
	}
}

// statusJSON is a rendered GET / body. The body depends only on the view,
// on whether the candidate leads, and on the time to the second (the
// timestamp has whole seconds), so one rendering serves every request of
// that second: requests neither encode JSON nor allocate for the body.
type statusJSON struct {
	v       *view
	unix    int64
	leading bool
	body    []byte   // JSON and a newline
	length  []string // the Content-Length header
}

// body returns the GET / body at now, rendering and caching it if the cached
// one is for another view, second or leadership. Concurrent requests that
// miss may each render; the last one stored wins, and all are correct. It
// returns nil if the status cannot be encoded, which its MarshalJSON
// (strings, a bool, an int and formatted times) rules out.
func (vs *views) body(now time.Time) *statusJSON {
	v := vs.load()
	leading, unix := v.leadingAt(now), now.Unix()
	if c := vs.rendered.Load(); c != nil && c.v == v && c.unix == unix && c.leading == leading {
		return c
	}
	body, err := json.Marshal(v.status(vs.id, now))
	if err != nil {
		return nil
	}
	body = append(body, '\n')
	c := &statusJSON{v: v, unix: unix, leading: leading, body: body, length: []string{strconv.Itoa(len(body))}}
	vs.rendered.Store(c)
	return c
}
