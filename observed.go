package elector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/internal/record"
)

// observed is the election's record as this candidate last read or wrote
// it: the one place the record lives. Only the election loop uses it.
//
// It keeps the two clocks that make leadership safe:
//
//   - What followers can see. A plain client-go follower restarts its expiry
//     clock only when the record it compares changes, and that record has
//     whole-second times: a renewal sent in the same second as the previous
//     one changes nothing it can see. So the leader's lease counts from the
//     send time of the first write that produced the record as followers
//     compare it (since), not from its latest write.
//   - What this candidate saw. As a follower it counts expiry from when it
//     saw the record change at the precision the object stores it
//     (lastChange), so a renewal of any precision restarts the count.
type observed struct {
	lock    objectLock
	kind    string // as kubectl names it, for messages
	id      string
	ttl     time.Duration // this candidate's own lease duration
	timeout time.Duration // bounds every request
	log     logr.Logger
	metrics *metrics

	rec         *resourcelock.LeaderElectionRecord // nil before the first read, and while gone
	uid         types.UID                          // of the object that holds rec
	gone        bool                               // the last read found no lock object
	goneSince   time.Time                          // when a read first found it missing
	deletedWait time.Duration                      // for a gone lock: how long to wait before creating it
	precise     []byte                             // rec's precise form
	lastChange  time.Time                          // when this candidate first saw precise
	visible     []byte                             // rec's visible form
	since       time.Time                          // the send time of our first write giving visible, or zero
	written     []byte                             // the precise form of our last successful write
	// freed: this candidate saw the lock become free (released, or
	// deleted), rather than finding it free at its first read.
	freed bool
	// successor is the candidate the release as last seen names, or empty.
	successor string
	// request is the handover request on the lock object as last seen.
	request string
	// unsure are our last writes whose outcome is unknown (they timed out
	// or the connection broke), until a write succeeds, with the time each
	// was sent: under load, several in a row may time out, and any of them
	// may have landed.
	unsure         []unsureWrite
	failures       map[string]bool
	deletedLogged  string // the holder of a deleted lock, once logged
	sharedIDLogged bool
}

// unsureWrite is a write of ours whose outcome is unknown.
type unsureWrite struct {
	rec  resourcelock.LeaderElectionRecord
	sent time.Time
}

// maxUnsure bounds the unsure writes remembered: the oldest is forgotten.
const maxUnsure = 4

// unsureOf returns the unsure write of ours whose record followers would
// compare as visible, if any.
func (o *observed) unsureOf(match func(resourcelock.LeaderElectionRecord) bool) (unsureWrite, bool) {
	for i := len(o.unsure) - 1; i >= 0; i-- {
		if match(o.unsure[i].rec) {
			return o.unsure[i], true
		}
	}
	return unsureWrite{}, false
}

// record returns the record as last seen, the UID of its object, and whether
// the lock has been read at all. A lock found missing holds the empty record.
func (o *observed) record() (rec resourcelock.LeaderElectionRecord, uid types.UID, known bool) {
	if o.gone || o.rec == nil {
		return resourcelock.LeaderElectionRecord{}, "", o.gone
	}
	return *o.rec, o.uid, true
}

// ours reports whether the record as last seen is our own write of this
// Run: a record that names this candidate's ID but that it did not write
// belongs to another process with the same ID (or to this one before a
// restart), and counts as another holder's.
func (o *observed) ours() bool {
	if o.gone || o.rec == nil || o.rec.HolderIdentity != o.id {
		return false
	}
	if o.written != nil && bytes.Equal(o.written, o.precise) {
		return true
	}
	// Our own write whose answer we did not get.
	seen := record.Encode(*o.rec)
	_, ok := o.unsureOf(func(rec resourcelock.LeaderElectionRecord) bool { return record.Encode(rec) == seen })
	return ok
}

// expiry is when the lease of the record as last seen runs out for this
// candidate: a lease duration after it saw the record change, plus the drift
// margin, in case its clock runs faster than the holder's.
func (o *observed) expiry() time.Time {
	lease := time.Duration(o.rec.LeaseDurationSeconds) * time.Second
	return o.lastChange.Add(lease + driftMargin(lease))
}

// createAt is, for a lock found missing, when this candidate may create it:
// at once if nobody else held it when it was last seen, else the lease of
// that record, but no longer than its own TTL, after it found the lock
// missing. The holder renewed at the latest just before the deletion, and
// perhaps after this candidate last read the lock, so the wait cannot count
// from the last change it saw. A deleted lock is a reset by whoever deleted
// it: a holder with a longer lease than this candidate's is not waited for.
func (o *observed) createAt() time.Time {
	return o.goneSince.Add(o.deletedWait)
}

// deletedWait is how long a candidate waits before it creates a lock it
// found deleted while another held it with a lease of leaseSeconds.
func deletedWait(leaseSeconds int, ttl time.Duration) time.Duration {
	return min(time.Duration(leaseSeconds)*time.Second, ttl)
}

// read reads the lock (from the watch's cache when it can) and makes what it
// shows the record as last seen.
func (o *observed) read(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	begin := time.Now()
	r, err := o.lock.get(ctx)
	if r.cached {
		o.metrics.cachedRead()
	} else {
		o.observe("get", begin, err)
	}
	if apierrors.IsNotFound(err) {
		o.absent(r)
		o.log.V(1).Info("lock object does not exist yet", "lock", o.lock.describe())
		return nil
	}
	if err != nil {
		return o.failed("get", err)
	}
	o.succeeded()
	o.remember(r)
	return nil
}

// absent notes that a read found no lock object.
func (o *observed) absent(r lockRead) {
	if o.gone {
		return
	}
	// The watch saw the deletion when it delivered it; a read from the
	// API server, now.
	o.goneSince = r.seen
	if !r.cached || r.seen.IsZero() {
		o.goneSince = time.Now()
	}
	o.deletedWait, o.freed = 0, o.rec != nil
	if o.rec != nil && o.rec.HolderIdentity != "" && !o.ours() {
		holder := o.rec.HolderIdentity
		o.deletedWait = deletedWait(o.rec.LeaseDurationSeconds, o.ttl)
		if o.deletedLogged != holder {
			o.deletedLogged = holder
			o.log.Info("lock object deleted while another candidate held it; not creating it before that lease runs out",
				"lock", o.lock.describe(), "holder", holder, "wait", o.deletedWait)
		}
	}
	o.gone = true
	o.precise, o.visible, o.since, o.successor, o.request = nil, nil, time.Time{}, "", ""
}

// remember makes r the record as last seen. A change of what followers
// compare that no write of ours explains starts at an unknown time: a write
// of the same record then gives no lease until the record changes again.
func (o *observed) remember(r lockRead) {
	changed := o.gone || o.rec == nil || !bytes.Equal(o.precise, r.precise)
	renewedInOurName := o.rec != nil && !o.gone && o.rec.HolderIdentity == o.id && changed
	if changed {
		o.freed = r.rec.HolderIdentity == "" && (o.gone || o.rec != nil && o.rec.HolderIdentity != "")
		o.precise, o.lastChange = r.precise, r.seen
	}
	if !bytes.Equal(o.visible, r.visible) {
		o.visible, o.since = r.visible, time.Time{}
		if u, ok := o.unsureOf(func(rec resourcelock.LeaderElectionRecord) bool {
			return bytes.Equal(o.lock.visibleOf(rec), r.visible)
		}); ok {
			o.since = u.sent // our own write, whose answer we did not get
		}
	}
	rec := r.rec
	o.rec, o.uid, o.gone, o.successor, o.request = &rec, r.uid, false, r.successor, r.request
	o.deletedLogged = ""
	o.checkSharedID(renewedInOurName)
}

// checkSharedID reports a record that names this candidate but that it did
// not write, when this candidate has written one, or saw a record naming it
// change (renewed): another process runs with the same ID.
func (o *observed) checkSharedID(renewed bool) {
	if o.written == nil && !renewed || o.rec.HolderIdentity != o.id || o.ours() {
		return
	}
	err := fmt.Errorf("%s %s names this candidate's ID %q but was not written by it (renewed at %s): "+
		"another process runs with the same ID; give every candidate a unique ID",
		o.kind, o.lock.describe(), o.id, o.rec.RenewTime.UTC().Format(time.RFC3339))
	if !o.sharedIDLogged {
		o.sharedIDLogged = true
		o.log.Error(err, "two candidates share one ID")
		return
	}
	o.log.V(1).Info("two candidates share one ID", "err", err.Error())
}

// writer returns how rec is written, given the record as last seen: the
// verb and the metric's operation, and the lock's method that sends it,
// with the successor a release names. Every write is conditioned on the
// object as last seen.
func (o *observed) writer(rec resourcelock.LeaderElectionRecord, x extras) (verb, op string,
	do func(context.Context, resourcelock.LeaderElectionRecord) (lockRead, error)) {
	verb, op = "update", "acquire"
	do = func(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error) {
		return o.lock.update(ctx, rec, x)
	}
	switch {
	case o.gone || o.rec == nil:
		verb, do = "create", o.lock.create
	case rec.HolderIdentity == "":
		op = "release"
	case o.ours():
		op = "renew"
	}
	return verb, op, do
}

// wrote takes the outcome of a write of rec sent at sent: on success, rec
// is the record as last seen. It returns since: the send time of the first
// write of ours that gave the lock what followers now compare (zero if that
// is unknown).
func (o *observed) wrote(verb, op string, rec resourcelock.LeaderElectionRecord, sent time.Time, r lockRead, err error) (since time.Time, _ error) {
	o.observe(op, sent, err)
	if err != nil {
		if outcomeUnknown(err) {
			// It may have landed: its record is ours if we read it later.
			o.unsure = append(o.unsure, unsureWrite{rec: rec, sent: sent})
			if len(o.unsure) > maxUnsure {
				o.unsure = o.unsure[1:]
			}
		}
		return time.Time{}, o.failed(verb, err)
	}
	// The write was conditioned on the object as last seen, so what
	// followers compared until now is o.visible: if this write left it as
	// it was, their clocks still run from o.since.
	if o.gone || !bytes.Equal(o.visible, r.visible) {
		o.visible, o.since = r.visible, sent
	}
	o.unsure = nil
	o.succeeded()
	o.precise, o.lastChange, o.written, o.freed = r.precise, r.seen, r.precise, false
	written := r.rec
	o.rec, o.uid, o.gone, o.successor, o.request = &written, r.uid, false, r.successor, r.request
	o.deletedLogged = ""
	return o.since, nil
}

func (o *observed) observe(op string, begin time.Time, err error) {
	if o.metrics == nil {
		return
	}
	result := "success"
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	o.metrics.observe(op, result, time.Since(begin))
}

// failed wraps err with the verb and object, and logs it: at error level when
// it differs from the previous failure, at V(1) when it repeats, and at V(1)
// for the outcomes of normal operation (lost race, a request cancelled
// because Run ended).
func (o *observed) failed(verb string, err error) error {
	err = fmt.Errorf("%s %s %s: %w", verb, o.kind, o.lock.describe(), err)
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		o.log.V(1).Info("lost a write race for the lock", "lock", o.lock.describe(), "err", err.Error())
	case errors.Is(err, context.Canceled):
		// Run ended with the request in flight: our own doing, as on
		// every shutdown, not a failure of the API server.
		o.log.V(1).Info("lock request cancelled", "lock", o.lock.describe(), "err", err.Error())
	case o.failures[err.Error()]:
		o.log.V(1).Info("lock request failed again", "err", err.Error())
	default:
		// A leader's attempt can fail twice in different words (the
		// optimistic update, then the read): each message is logged once
		// until a request succeeds again.
		if o.failures == nil || len(o.failures) >= maxDistinctFailures {
			o.failures = map[string]bool{}
		}
		o.failures[err.Error()] = true
		o.log.Error(err, "lock request failed; retrying", "lock", o.lock.describe())
	}
	return err
}

// outcomeUnknown reports whether a failed write may still have been applied:
// the API server did not answer it with a status of its own.
func outcomeUnknown(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsInternalError(err)
	}
	return true
}

// maxDistinctFailures bounds the failure messages remembered for logging.
const maxDistinctFailures = 8

func (o *observed) succeeded() {
	if len(o.failures) > 0 {
		o.failures = nil
		o.log.Info("lock requests succeed again", "lock", o.lock.describe())
	}
}
