package elector

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/cache"
)

// The candidate registry: how a leader knows whom to hand the lock to.
//
// Every candidate keeps a Lease of its own beside the lock, its candidate
// Lease, labelled with the election: its ID as the holder, whether it is
// ready to lead (its candidacy gate is open) and its priority as
// annotations. It writes it when it starts, when its readiness changes, and
// every candidateRenewal, and deletes it when it stops: an idle candidate
// sends one request every candidateRenewal (0.1 per minute), and nothing
// polls. Only the leader reads the others, with one watch that lives as
// long as its term; so at a release it knows, without a request, the
// candidates that are ready and were alive within candidateTTL, and names
// the best: the highest priority, then the one heard from last.
//
// A candidate that crashed less than candidateTTL ago can still be named;
// it does not take the lock, and the others take it when the successor's
// window ends (handover.go). Without the permissions for candidate Leases
// (an older Role), a candidate logs it once and does without: releases
// then name no successor, as before.
const (
	candidateRenewal = 10 * time.Minute
	candidateTTL     = 25 * time.Minute

	candidateLabel    = "k8s-elector.io/candidate-for"
	readyAnnotation   = "k8s-elector.io/ready"
	readySinceAnno    = "k8s-elector.io/ready-since"
	priorityAnnotaton = "k8s-elector.io/priority"
)

// registry is this candidate's entry in the election's candidates and,
// while it leads, its view of the others. Its run is a background worker of
// Run; the loop tells it when terms start and end (lead) and when the
// gate's answer may have changed (kick), and asks it for a successor.
type registry struct {
	leases    coordinationv1client.LeaseInterface
	clientset any // for the watch's list semantics
	name      string
	election  string // the label value
	id        string
	priority  int
	ready     func() bool
	timeout   time.Duration
	log       logr.Logger

	// The kind of Lease it keeps: a candidate's, or a Group member's
	// (group.go), which stands for the member in each of the Group's
	// elections.
	label    string        // the label key, whose value is election
	renewal  time.Duration // how often it writes its own Lease
	leaseTTL time.Duration // the lease duration its Lease says
	// members, in a Group, returns the Group's member Leases: the
	// candidates of every election of the Group. The registry then keeps
	// no Lease of its own and opens no watch.
	members func() map[string]*coordinationv1.Lease

	kicks    chan struct{}
	leadC    chan bool
	finished chan struct{}
	once     sync.Once

	mu       sync.Mutex
	others   map[string]*coordinationv1.Lease // while leading: by name
	outUntil time.Time                        // a resignation's cooldown: not ready until then
}

func newRegistry(leases coordinationv1client.LeaseInterface, clientset any, election, id string, priority int,
	ready func() bool, timeout time.Duration, log logr.Logger) *registry {
	return &registry{
		leases: leases, clientset: clientset, name: leaseName(election, "candidate", id), election: labelValue(election),
		id: id, priority: priority, ready: ready, timeout: timeout, log: log,
		label: candidateLabel, renewal: candidateRenewal, leaseTTL: candidateTTL,
		kicks: make(chan struct{}, 1), leadC: make(chan bool, 1), finished: make(chan struct{}),
	}
}

// leaseName is the name of the Lease of kind ("candidate", "member") of
// id in election (or group): the election, the kind and the ID joined if
// that is a valid name, else with a hash for the ID, or for both.
func leaseName(election, kind, id string) string {
	if name := election + "-" + kind + "-" + id; len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(id))
	if name := election + "-" + kind + "-" + hex.EncodeToString(sum[:8]); len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	sum = sha256.Sum256([]byte(election + "\x00" + id))
	return "k8s-elector-" + kind + "-" + hex.EncodeToString(sum[:16])
}

// labelValue is election as a label value: itself if valid, else a hash.
func labelValue(election string) string {
	if len(validation.IsValidLabelValue(election)) == 0 {
		return election
	}
	sum := sha256.Sum256([]byte(election))
	return hex.EncodeToString(sum[:16])
}

// kick tells the registry that readiness may have changed.
func (r *registry) kick() {
	if r == nil {
		return
	}
	select {
	case r.kicks <- struct{}{}:
	default:
	}
}

// stayOut marks this candidate not ready until until, a resignation's
// cooldown, so that no leader names it meanwhile.
func (r *registry) stayOut(until time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.outUntil = until
	r.mu.Unlock()
	r.kick()
}

// readyNow is whether this candidate may be named a successor now, and when
// that changes with the cooldown (zero: not by itself).
func (r *registry) readyNow(now time.Time) (bool, time.Time) {
	r.mu.Lock()
	until := r.outUntil
	r.mu.Unlock()
	if now.Before(until) {
		return false, until
	}
	return r.ready(), time.Time{}
}

// lead tells the registry that a term started or ended.
func (r *registry) lead(leading bool) {
	if r == nil {
		return
	}
	select {
	case <-r.leadC: // replace a value not yet taken
	default:
	}
	r.leadC <- leading
}

// finish asks run to delete the candidate Lease and return.
func (r *registry) finish() { r.once.Do(func() { close(r.finished) }) }

// run keeps the candidate Lease and, while leading, the watch of the
// others, until finish (then it deletes the candidate Lease) or ctx ends.
func (r *registry) run(ctx context.Context) {
	var stopWatch func()
	defer func() {
		if stopWatch != nil {
			stopWatch()
		}
	}()
	var own *coordinationv1.Lease
	var wroteReady bool
	var readySince time.Time // of the current streak of readiness, as written
	disabled := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	back := time.NewTimer(time.Hour) // the end of a cooldown
	back.Stop()
	defer back.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.finished:
			if own != nil {
				dctx, cancel := context.WithTimeout(ctx, r.timeout)
				err := r.leases.Delete(dctx, own.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &own.UID}})
				cancel()
				if err != nil && !apierrors.IsNotFound(err) {
					r.log.V(1).Info("could not delete the candidate Lease; it expires on its own", "lease", own.Name, "err", err.Error())
				}
			}
			return
		case leading := <-r.leadC:
			switch {
			case leading && stopWatch == nil && !disabled:
				stopWatch = r.watch(ctx)
			case !leading && stopWatch != nil:
				stopWatch()
				stopWatch = nil
			}
			continue
		case <-r.kicks:
			ready, until := r.readyNow(time.Now())
			if !until.IsZero() {
				back.Reset(time.Until(until))
			}
			if disabled || own == nil || ready == wroteReady {
				continue
			}
		case <-back.C:
			if disabled || own == nil || r.ready() == wroteReady {
				continue
			}
		case <-timer.C:
		}
		if disabled {
			continue
		}
		ready, _ := r.readyNow(time.Now())
		since := readySince
		if ready && (!wroteReady || own == nil) {
			since = time.Now()
		}
		lease, err := r.write(ctx, own, ready, since)
		switch {
		case err == nil:
			own, wroteReady, readySince = lease, ready, since
			timer.Reset(r.renewal + rand.N(r.renewal/10))
		case apierrors.IsForbidden(err):
			disabled = true
			r.log.Info("no permission for candidate Leases: graceful releases name no successor; "+
				"give the Role create on leases and get, update, delete, list and watch on the election's candidate Leases (see deploy/base)",
				"err", err.Error())
		default:
			r.log.V(1).Info("could not write the candidate Lease; retrying", "err", err.Error())
			own = nil // read it again
			// Jittered: a herd of candidates that failed together does
			// not retry together. A member Lease that spreads a Group's
			// leadership lasts a TTL: it is retried at its renewal.
			retry := time.Minute + rand.N(time.Minute)
			if r.renewal < time.Minute {
				retry = r.renewal
			}
			timer.Reset(retry)
		}
	}
}

// write creates or updates the candidate Lease: ready, since when if so.
func (r *registry) write(ctx context.Context, own *coordinationv1.Lease, ready bool, since time.Time) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if own == nil {
		got, err := r.leases.Get(ctx, r.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		default:
			own = got
		}
	}
	now := metav1.NewMicroTime(time.Now())
	ttl := int32(r.leaseTTL / time.Second)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:   r.name,
			Labels: map[string]string{r.label: r.election},
			Annotations: map[string]string{
				readyAnnotation:   strconv.FormatBool(ready),
				priorityAnnotaton: strconv.Itoa(r.priority),
			},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &r.id, LeaseDurationSeconds: &ttl, AcquireTime: &now, RenewTime: &now},
	}
	if ready {
		lease.Annotations[readySinceAnno] = since.UTC().Format(time.RFC3339Nano)
	}
	if own == nil {
		return r.leases.Create(ctx, lease, metav1.CreateOptions{})
	}
	lease.ResourceVersion, lease.UID = own.ResourceVersion, own.UID
	lease.Spec.AcquireTime = own.Spec.AcquireTime
	return r.leases.Update(ctx, lease, metav1.UpdateOptions{})
}

// watch runs the watch of the election's candidate Leases until the
// returned function is called, which waits for it to end.
func (r *registry) watch(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	selector := labels.SelectorFromSet(labels.Set{candidateLabel: r.election})
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector.String()
			return r.leases.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector.String()
			return r.leases.Watch(ctx, o)
		},
	}
	put := func(obj any, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, deleted = d.Obj, true
		}
		l, ok := obj.(*coordinationv1.Lease)
		if !ok || !selector.Matches(labels.Set(l.Labels)) {
			return // a fake clientset's watch does not select
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if deleted {
			delete(r.others, l.Name)
		} else {
			r.others[l.Name] = l
		}
	}
	r.mu.Lock()
	r.others = map[string]*coordinationv1.Lease{}
	r.mu.Unlock()
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, r.clientset),
		ObjectType:    &coordinationv1.Lease{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { put(obj, false) },
			UpdateFunc: func(_, obj any) { put(obj, false) },
			DeleteFunc: func(obj any) { put(obj, true) },
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		informer.RunWithContext(ctx)
	}()
	return func() {
		cancel()
		<-done
		r.mu.Lock()
		r.others = nil
		r.mu.Unlock()
	}
}

// refuse returns why the lock cannot be handed to id at now, or "" if id
// is a ready candidate heard from within its TTL.
func (r *registry) refuse(id string, now time.Time) string {
	if r == nil {
		return "this leader knows no candidates"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	others := r.peers()
	if others == nil {
		return "this leader knows no candidates: it cannot read their candidate Leases (see deploy/base's Role)"
	}
	for _, l := range others {
		if ptrValue(l.Spec.HolderIdentity) != id {
			continue
		}
		ttl := time.Duration(ptrValue(l.Spec.LeaseDurationSeconds)) * time.Second
		switch {
		case l.Spec.RenewTime == nil || !now.Before(l.Spec.RenewTime.Add(ttl)):
			return fmt.Sprintf("candidate %s has not been heard from within %s", id, ttl)
		case l.Annotations[readyAnnotation] != "true":
			return fmt.Sprintf("candidate %s is not ready", id)
		}
		return ""
	}
	return fmt.Sprintf("no candidate %s in this election", id)
}

// peers returns the other candidates' Leases by name: those the watch
// delivered while leading, or a Group's members; nil if none are known.
// r.mu is held.
func (r *registry) peers() map[string]*coordinationv1.Lease {
	if r.members != nil {
		return r.members()
	}
	return r.others
}

// candidateEntry is another candidate as its candidate Lease says.
type candidateEntry struct {
	id         string
	priority   int
	renewed    time.Time
	readySince time.Time
}

// readyOthers returns the other candidates that are ready and were heard from
// within their TTL at now.
func (r *registry) readyOthers(now time.Time) []candidateEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cands []candidateEntry
	for _, l := range r.peers() {
		id := ptrValue(l.Spec.HolderIdentity)
		if id == "" || id == r.id || l.Annotations[readyAnnotation] != "true" || l.Spec.RenewTime == nil {
			continue
		}
		ttl := time.Duration(ptrValue(l.Spec.LeaseDurationSeconds)) * time.Second
		if !now.Before(l.Spec.RenewTime.Add(ttl)) {
			continue // not heard from within its TTL
		}
		p, err := strconv.Atoi(l.Annotations[priorityAnnotaton])
		if err != nil {
			continue
		}
		since, err := time.Parse(time.RFC3339Nano, l.Annotations[readySinceAnno])
		if err != nil {
			since = now // unknown: as if it just became ready
		}
		cands = append(cands, candidateEntry{id: id, priority: p, renewed: l.Spec.RenewTime.Time, readySince: since})
	}
	return cands
}

// best returns the best of cands: the highest priority, then heard from
// last, then the first ID; "" if there is none.
func best(cands []candidateEntry) string {
	if len(cands) == 0 {
		return ""
	}
	return slices.MinFunc(cands, func(a, b candidateEntry) int {
		switch {
		case a.priority != b.priority:
			return b.priority - a.priority
		case !a.renewed.Equal(b.renewed):
			return b.renewed.Compare(a.renewed)
		}
		return cmp.Compare(a.id, b.id)
	}).id
}

// successor returns the candidate to hand the lock to at now, other than
// this one: ready, alive, the best; or "" if none is known.
func (r *registry) successor(now time.Time) string {
	if r == nil {
		return ""
	}
	return best(r.readyOthers(now))
}

// preemptor returns the candidate that should take over from this leader
// at now: ready for at least steady, alive, with a priority above this
// one's; the best of them, or "". Equal priorities never preempt, and a
// candidate whose readiness flaps faster than steady never does.
func (r *registry) preemptor(now time.Time, steady time.Duration) string {
	if r == nil {
		return ""
	}
	cands := slices.DeleteFunc(r.readyOthers(now), func(c candidateEntry) bool {
		return c.priority <= r.priority || now.Sub(c.readySince) < steady
	})
	return best(cands)
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
