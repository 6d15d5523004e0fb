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

// lockObserver learns what the tracked lock reads and writes. Every call comes
// from the goroutine that runs the election.
type lockObserver interface {
	// observed is called with every record read or successfully written,
	// once the tracked lock holds it (see current).
	observed(rec resourcelock.LeaderElectionRecord)
	// absent is called when a read finds no lock object.
	absent()
	// wrote is called after a successful create or update. since is the
	// send time of the first write of ours that gave the lock what followers
	// now compare (see trackedLock): every follower counts the lease from
	// then or later. It is zero when that moment is unknown.
	wrote(rec resourcelock.LeaderElectionRecord, since time.Time)
}

// trackedLock is the resourcelock.Interface that client-go's LeaderElector
// drives. It bounds every request, tells the Elector what each request saw,
// logs API errors once per change instead of once per retry, and refuses a
// release write that would blank another holder's record.
//
// It also keeps the two clocks that make leadership safe:
//
//   - What followers can see. A plain client-go follower restarts its expiry
//     clock only when the record it compares changes, and that record has
//     whole-second times: a renewal sent in the same second as the previous
//     one changes nothing it can see. So the leader's lease counts from the
//     send time of the first write that produced the record as followers
//     compare it (since), not from its latest write.
//   - What this candidate saw. client-go is handed the precise record, so
//     that as a follower it counts expiry from the last renewal of any
//     precision; with the watch, a record whose lease has run out by that
//     count is handed over as free, so that the takeover comes at expiry
//     rather than at the next retry.
//
// It is used from one goroutine only (client-go calls the lock from the
// goroutine running LeaderElector.Run, and the Elector releases from the same
// goroutine afterwards), so it needs no locking.
type trackedLock struct {
	inner   objectLock
	kind    string
	id      string
	ttl     time.Duration // this candidate's own lease duration
	timeout time.Duration
	obs     lockObserver
	log     logr.Logger
	metrics *metrics // nil in tests of the lock alone
	// writing, if set, is called with true before a write is sent and with
	// false once its outcome has been observed.
	writing func(bool)
	// freeWhenExpired hands client-go an expired record as released (with
	// the watch, whose kicks make a candidate try at expiry).
	freeWhenExpired bool

	// last is the record as last read or written: it is what the inner lock's
	// cached object holds, and so what its next update is conditioned on.
	// It is the election's record: every other part reads it from here.
	last       *resourcelock.LeaderElectionRecord
	uid        types.UID // of the object that holds last
	gone       bool      // the last read found no lock object
	goneSince  time.Time // when a read first found it missing
	precise    []byte    // last's precise form
	lastChange time.Time // when this candidate first saw precise
	visible    []byte    // last's visible form
	since      time.Time // see lockObserver.wrote
	failures   map[string]bool
	// deletedHeldBy is the holder of a lock found deleted, once logged.
	deletedHeldBy string
	// written is the precise form of the record this candidate last wrote.
	written        []byte
	sharedIDLogged bool
	// unsure is the record of our last write whose outcome is unknown (it
	// timed out or the connection broke), until a write succeeds, and the
	// time it was sent.
	unsure     *resourcelock.LeaderElectionRecord
	unsureSent time.Time
}

var _ resourcelock.Interface = (*trackedLock)(nil)

func (l *trackedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	begin := time.Now()
	r, err := l.inner.get(ctx)
	if r.cached {
		l.metrics.cachedRead()
	} else {
		l.observe("get", begin, err)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			if !l.gone {
				// The watch saw the deletion when it delivered it; a read
				// from the API server, now.
				l.gone, l.goneSince = true, r.seen
				if !r.cached {
					l.goneSince = time.Now()
				}
			}
			l.obs.absent()
			if holder, left := l.heldByAnother(); left > 0 {
				// client-go would create the lock at once. Its holder may
				// still be acting: it was deleted, not released, and it may
				// have renewed after our last read.
				if l.deletedHeldBy != holder {
					l.deletedHeldBy = holder
					l.log.Info("lock object deleted while another candidate held it; not creating it before that lease runs out",
						"lock", l.inner.describe(), "holder", holder, "wait", left.Round(time.Millisecond))
				}
				return nil, nil, fmt.Errorf("get %s %s: deleted while %q held it; waiting for that lease to run out", l.kind, l.inner.describe(), holder)
			}
		}
		return nil, nil, l.failed("get", err)
	}
	l.succeeded()
	l.checkSharedID(r)
	l.remember(r)
	l.obs.observed(r.rec)
	rec := r.rec
	if l.freeWhenExpired && rec.HolderIdentity != "" && rec.HolderIdentity != l.id && !time.Now().Before(l.expiry()) {
		// Expired by this candidate's count, which client-go's would reach
		// later: at its own next read after the renewal.
		rec.HolderIdentity = ""
	}
	return &rec, r.precise, nil
}

// current returns the record the lock holds as last read or written, the UID
// of its object, and whether the lock has been read at all. A lock found
// missing holds the empty record.
func (l *trackedLock) current() (rec resourcelock.LeaderElectionRecord, uid types.UID, known bool) {
	if l.gone || l.last == nil {
		return resourcelock.LeaderElectionRecord{}, "", l.gone
	}
	return *l.last, l.uid, true
}

// expiry is when the lease of the last record seen runs out for this
// candidate: a lease duration after it saw the record change, plus the drift
// margin, in case its clock runs faster than the holder's.
func (l *trackedLock) expiry() time.Time {
	lease := time.Duration(l.last.LeaseDurationSeconds) * time.Second
	return l.lastChange.Add(lease + driftMargin(lease))
}

// checkSharedID reports a record that names this candidate but is not the
// one it last wrote: another process runs with the same ID. Both then
// believe they lead, and the lock cannot tell them apart.
func (l *trackedLock) checkSharedID(r lockRead) {
	if l.written == nil || r.rec.HolderIdentity != l.id || bytes.Equal(l.written, r.precise) {
		return
	}
	if l.unsure != nil && record.Encode(*l.unsure) == record.Encode(r.rec) {
		return // our own write, whose answer we did not get (or part of it)
	}
	err := fmt.Errorf("%s %s names this candidate's ID %q but was not written by it (renewed at %s): "+
		"another process runs with the same ID, and both believe they lead; give every candidate a unique -id",
		l.kind, l.inner.describe(), l.id, r.rec.RenewTime.UTC().Format(time.RFC3339))
	if !l.sharedIDLogged {
		l.sharedIDLogged = true
		l.log.Error(err, "two candidates share one ID")
		return
	}
	l.log.V(1).Info("two candidates share one ID", "err", err.Error())
}

// remember makes r the last record seen. A change of what followers compare
// that no write of ours explains starts at an unknown time: a write of the
// same record then gives no lease until the record changes again.
func (l *trackedLock) remember(r lockRead) {
	if !bytes.Equal(l.precise, r.precise) || l.last == nil {
		l.precise, l.lastChange = r.precise, r.seen
	}
	if !bytes.Equal(l.visible, r.visible) {
		l.visible, l.since = r.visible, time.Time{}
		if l.unsure != nil && bytes.Equal(l.inner.visibleOf(*l.unsure), r.visible) {
			l.since = l.unsureSent // our own write, whose answer we did not get
		}
	}
	rec := r.rec
	l.last, l.uid, l.gone = &rec, r.uid, false
	l.deletedHeldBy = ""
}

// heldByAnother returns, for a lock found missing, the holder of the last
// record seen, if it is another candidate, and how long this candidate waits
// before it creates the lock: the record's lease duration, but no longer than
// its own TTL, from when it found the lock missing. The holder renewed at
// the latest just before the deletion, and perhaps after this candidate last
// read the lock, so the wait cannot count from the last change it saw. A
// deleted lock is a reset by whoever deleted it: a holder with a longer
// lease than this candidate's is not waited for.
func (l *trackedLock) heldByAnother() (string, time.Duration) {
	if l.last == nil || l.last.HolderIdentity == "" || l.last.HolderIdentity == l.id {
		return "", 0
	}
	return l.last.HolderIdentity, time.Until(l.goneSince.Add(deletedWait(l.last.LeaseDurationSeconds, l.ttl)))
}

// deletedWait is how long a candidate waits before it creates a lock it
// found deleted while another held it with a lease of leaseSeconds.
func deletedWait(leaseSeconds int, ttl time.Duration) time.Duration {
	return min(time.Duration(leaseSeconds)*time.Second, ttl)
}

func (l *trackedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return l.write(ctx, "create", rec, l.inner.create)
}

func (l *trackedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	// A release is decided from the last read or write and is conditioned on
	// that object's resourceVersion. Blanking the holder is allowed only if
	// that record names us: then a successful write proves nobody else wrote
	// in between.
	if rec.HolderIdentity == "" && (l.last == nil || l.last.HolderIdentity != l.id) {
		holder := ""
		if l.last != nil {
			holder = l.last.HolderIdentity
		}
		return fmt.Errorf("%w: not releasing %s %s held by %q", errNotHolder, l.kind, l.inner.describe(), holder)
	}
	return l.write(ctx, "update", rec, l.inner.update)
}

func (l *trackedLock) write(ctx context.Context, verb string, rec resourcelock.LeaderElectionRecord,
	do func(context.Context, resourcelock.LeaderElectionRecord) (lockRead, error)) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	op := "acquire"
	switch {
	case rec.HolderIdentity == "":
		op = "release"
	case l.last != nil && l.last.HolderIdentity == l.id:
		op = "renew"
	}
	if l.writing != nil {
		l.writing(true)
		defer l.writing(false)
	}
	// A pass that was ended (a kick, a resignation) must not write any
	// more: a client may send a request even with a cancelled context, and
	// an acquisition that lands after its pass ended starts a term that
	// ends at once.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s %s: %w", verb, l.kind, l.inner.describe(), err)
	}
	sent := time.Now()
	r, err := do(ctx, rec)
	l.observe(op, sent, err)
	if err != nil {
		if outcomeUnknown(err) {
			// It may have landed: its record is ours if we read it later.
			l.unsure, l.unsureSent = &rec, sent
		}
		return l.failed(verb, err)
	}
	// The write was conditioned on the object as last read or written, so
	// what followers compared until now is l.visible: if this write left it
	// as it was, their clocks still run from l.since.
	if !bytes.Equal(l.visible, r.visible) {
		l.visible, l.since = r.visible, sent
	}
	since := l.since
	l.unsure = nil
	l.succeeded()
	l.precise, l.lastChange = r.precise, r.seen
	written := r.rec
	l.last, l.uid, l.gone = &written, r.uid, false
	l.deletedHeldBy = ""
	l.written = r.precise
	l.obs.observed(r.rec)
	l.obs.wrote(r.rec, since)
	return nil
}

func (l *trackedLock) observe(op string, begin time.Time, err error) {
	if l.metrics == nil {
		return
	}
	result := "success"
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	l.metrics.observe(op, result, time.Since(begin))
}

// failed wraps err with the verb and object, and logs it: at error level when
// it differs from the previous failure, at V(1) when it repeats, and at V(1)
// for the outcomes of normal operation (object not created yet, lost race,
// a request cancelled because its pass or Run ended).
func (l *trackedLock) failed(verb string, err error) error {
	err = fmt.Errorf("%s %s %s: %w", verb, l.kind, l.inner.describe(), err)
	switch {
	case apierrors.IsNotFound(err) && verb == "get":
		l.log.V(1).Info("lock object does not exist yet", "lock", l.inner.describe())
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		l.log.V(1).Info("lost a write race for the lock", "lock", l.inner.describe(), "err", err.Error())
	case errors.Is(err, context.Canceled):
		// The pass or Run ended with the request in flight: our own doing,
		// as on every shutdown, not a failure of the API server.
		l.log.V(1).Info("lock request cancelled", "lock", l.inner.describe(), "err", err.Error())
	case l.failures[err.Error()]:
		l.log.V(1).Info("lock request failed again", "err", err.Error())
	default:
		// A leader's attempt can fail twice in different words (the
		// optimistic update, then the read): each message is logged once
		// until a request succeeds again.
		if l.failures == nil || len(l.failures) >= maxDistinctFailures {
			l.failures = map[string]bool{}
		}
		l.failures[err.Error()] = true
		l.log.Error(err, "lock request failed; retrying", "lock", l.inner.describe())
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

func (l *trackedLock) succeeded() {
	if len(l.failures) > 0 {
		l.failures = nil
		l.log.Info("lock requests succeed again", "lock", l.inner.describe())
	}
}

// RecordEvent records nothing: Events are the Elector's (WithEvents).
func (l *trackedLock) RecordEvent(string) {}
func (l *trackedLock) Identity() string   { return l.id }
func (l *trackedLock) Describe() string   { return l.inner.describe() }
