package elector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// ErrHandover is wrapped by the errors of RequestHandover that say the
// handover cannot happen (the leader refused it, nobody leads, or another
// candidate than the one asked for took over), as opposed to errors reading
// or writing the lock.
var ErrHandover = errors.New("cannot hand over")

// RequestHandover asks the leader of the election to hand over, through the
// lock object, and waits until a new leader leads: it returns its ID. With
// to empty the leader chooses the best other ready candidate, as at any
// graceful release; otherwise it hands over to to, and refuses if to is not
// a ready candidate of the election. It needs nothing but get and update on
// the lock object. It returns an error wrapping ErrHandover, with one line
// saying why, if nobody leads, the leader refuses, or another candidate
// took over; and ctx's error, with who still leads, when ctx ends first.
func RequestHandover(ctx context.Context, client kubernetes.Interface, lockType LockType, namespace, election, to string) (string, error) {
	if to != "" {
		if err := checkID(to); err != nil {
			return "", fmt.Errorf("handover to: %w", err)
		}
	}
	if !slices.Contains(lockTypes(), lockType) {
		return "", fmt.Errorf("lock type %q is not one of %v", lockType, lockTypes())
	}
	lock := newObjectLock(lockType, namespace, election, "", client, nil, nil)
	name := namespace + "/" + election
	id := strconv.FormatUint(rand.Uint64(), 36)
	req, _ := json.Marshal(handoverRequest{ID: id, To: to})
	var leader string
	for {
		r, err := lock.get(ctx)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return "", fmt.Errorf("%w: election %s has no lock object: nobody leads", ErrHandover, name)
			}
			return "", err
		}
		holder := r.rec.HolderIdentity
		switch {
		case leader != "" && holder != leader:
			// Our request lost a race with a write that moved the lock.
			now := holder + " leads now"
			if holder == "" {
				now = leader + " released the lock"
			}
			return "", fmt.Errorf("%w: another handover of election %s went first: %s", ErrHandover, name, now)
		case holder == "" && r.successor != "":
			return "", fmt.Errorf("%w: another handover of election %s is under way, to %s", ErrHandover, name, r.successor)
		case holder == "" || time.Since(r.rec.RenewTime.Time) > time.Duration(r.rec.LeaseDurationSeconds)*time.Second+time.Minute:
			return "", fmt.Errorf("%w: nobody leads election %s", ErrHandover, name)
		case holder == to:
			return "", fmt.Errorf("%w: %s leads election %s already", ErrHandover, to, name)
		}
		leader = holder
		if _, err = lock.annotate(ctx, handoverRequestAnnotation, string(req)); err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			return "", err
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %s still leads election %s", ctx.Err(), leader, name)
		case <-tick.C:
		}
		r, err := lock.get(ctx)
		if err != nil {
			continue // a blip; the deadline bounds the wait
		}
		for _, refusal := range parseRefusals(r.refused) {
			if refusal.ID == id {
				return "", fmt.Errorf("%w: %s refused: %s", ErrHandover, leader, refusal.Reason)
			}
		}
		switch holder := r.rec.HolderIdentity; {
		case holder == "" || holder == leader:
		case to != "" && holder != to:
			return "", fmt.Errorf("%w: %s did not take over in time: %s leads election %s", ErrHandover, to, holder, name)
		default:
			return holder, nil
		}
	}
}
