package elector

import (
	"context"
	"errors"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// lockRead is what one read or successful write of the lock showed.
type lockRead struct {
	rec resourcelock.LeaderElectionRecord
	// visible is the record as a plain client-go LeaderElector compares it to
	// decide whether the holder renewed: whole-second times. It is what a
	// plain client-go follower, or the original k8s-elector, sees change.
	visible []byte
	// precise is the record at the precision the object stores it (a Lease
	// has microseconds): it changes with every renewal.
	precise []byte
	uid     types.UID // of the object that holds the record
	cached  bool      // served by the watch, without a request
	seen    time.Time // when this candidate received it
	// successor is the candidate a release names (handover.go), or empty.
	successor string
	// request and refused are the handover request on the object and the
	// leader's last refusal, as written (handover.go), or empty.
	request, refused string
}

// extras are what a write of ours puts on the lock object besides the
// record: the successor a release names, and a refusal of a handover
// request. Every write of ours removes the handover request it answers.
type extras struct {
	successor string
	refused   []handoverRefusal
}

// objectLock reads and writes the leader record in the lock object(s). Every
// write is conditioned on the resourceVersion of the object as last read or
// written, so a stale view can only make it fail with a conflict.
type objectLock interface {
	get(ctx context.Context) (lockRead, error)
	create(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error)
	// update writes rec with x; a release (empty holder) may name a
	// successor, and every other write clears the name.
	update(ctx context.Context, rec resourcelock.LeaderElectionRecord, x extras) (lockRead, error)
	// annotate sets one annotation on the object as last read, and nothing
	// else: a handover request.
	annotate(ctx context.Context, key, value string) (lockRead, error)
	// visibleOf is lockRead.visible for an object that holds rec, without
	// any request: what followers compare once a write of rec has landed.
	visibleOf(rec resourcelock.LeaderElectionRecord) []byte
	// describe names the lock object(s): namespace/name.
	describe() string
}

// objectClient is what a lock needs of a typed client; client-go's Lease,
// ConfigMap and Endpoints clients all satisfy it.
type objectClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error)
	Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error)
	Update(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error)
}

// kindLock is the lock on one object of type T. With the watch, its reads
// come from the watch's cache, which its own requests keep current.
type kindLock[T any, P objectPtr[T]] struct {
	namespace string
	name      string
	api       objectClient[T]
	codec     recordCodec[P]
	cache     *lockCache[T, P] // nil without the watch

	// obj is the object as last read or written; its resourceVersion makes
	// every update a compare-and-swap.
	obj P
}

var _ objectLock = (*kindLock[coordinationv1.Lease, *coordinationv1.Lease])(nil)

func (l *kindLock[T, P]) get(ctx context.Context) (lockRead, error) {
	if obj, at, ok := l.cache.get(); ok {
		if obj == nil {
			return lockRead{cached: true, seen: at}, apierrors.NewNotFound(l.cache.gr, l.name)
		}
		r, err := l.read(obj, at)
		r.cached = true
		return r, err
	}
	obj, err := l.api.Get(ctx, l.name, metav1.GetOptions{})
	seen := l.cache.wrote(l.own(obj, err), err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(obj, seen)
}

func (l *kindLock[T, P]) read(obj P, seen time.Time) (lockRead, error) {
	rec, visible, precise, err := l.codec.decode(obj, l.describe())
	if err != nil {
		return lockRead{}, err
	}
	l.obj = obj
	ann := obj.GetAnnotations()
	return lockRead{rec: rec, visible: visible, precise: precise, uid: obj.GetUID(), seen: seen, successor: successorOf(obj, rec),
		request: ann[handoverRequestAnnotation], refused: ann[handoverRefusedAnnotation]}, nil
}

func (l *kindLock[T, P]) create(ctx context.Context, rec resourcelock.LeaderElectionRecord) (lockRead, error) {
	obj := P(new(T))
	obj.SetNamespace(l.namespace)
	obj.SetName(l.name)
	l.codec.encode(obj, rec)
	created, err := l.api.Create(ctx, obj, metav1.CreateOptions{})
	l.cache.wrote(l.own(created, err), err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(created, time.Now())
}

func (l *kindLock[T, P]) update(ctx context.Context, rec resourcelock.LeaderElectionRecord, x extras) (lockRead, error) {
	if l.obj == nil {
		return lockRead{}, errors.New("lock not read yet: call Get or Create first")
	}
	// A shallow copy is enough: encode replaces what it changes, so the
	// cached object stays as the server sent it.
	cp := *l.obj
	obj := P(&cp)
	l.codec.encode(obj, rec)
	setSuccessor(obj, rec, x.successor)
	answerRequest(obj, x.refused)
	updated, err := l.api.Update(ctx, obj, metav1.UpdateOptions{})
	l.cache.wrote(l.own(updated, err), err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(updated, time.Now())
}

func (l *kindLock[T, P]) annotate(ctx context.Context, key, value string) (lockRead, error) {
	if l.obj == nil {
		return lockRead{}, errors.New("lock not read yet: call Get first")
	}
	cp := *l.obj
	obj := P(&cp)
	editAnnotations(obj, func(ann map[string]string) { ann[key] = value })
	updated, err := l.api.Update(ctx, obj, metav1.UpdateOptions{})
	l.cache.wrote(l.own(updated, err), err)
	if err != nil {
		return lockRead{}, err
	}
	return l.read(updated, time.Now())
}

func (l *kindLock[T, P]) visibleOf(rec resourcelock.LeaderElectionRecord) []byte {
	obj := P(new(T))
	l.codec.encode(obj, rec)
	_, visible, _, _ := l.codec.decode(obj, l.describe())
	return visible
}

// own takes an object the API server answered with, if err is nil, as the
// informers take theirs: without the managed fields, which the election
// never reads (stripManagedFields).
func (l *kindLock[T, P]) own(obj *T, err error) P {
	if err == nil {
		P(obj).SetManagedFields(nil)
	}
	return obj
}

func (l *kindLock[T, P]) describe() string { return l.namespace + "/" + l.name }
