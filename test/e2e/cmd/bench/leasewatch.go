package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// leaseState is one state of a Lease as the bench's watch delivered it.
type leaseState struct {
	holder string
	renew  time.Time // spec.renewTime
	probe  string    // the bench's probeAnnotation (deliveries)
	at     time.Time // when the bench received it
}

// leaseWatch follows one Lease through the admin client's watch, as a
// follower on the watch sees it, and keeps every state it delivered: it is
// how the bench times a crash failover for any elector, with or without an
// HTTP API.
type leaseWatch struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new state
	seen    []leaseState
}

// watchLease starts following the Lease name in the bench's namespace; stop
// ends it. The Lease need not exist yet.
func (b *bench) watchLease(ctx context.Context, name string) *leaseWatch {
	w := &leaseWatch{name: name, done: make(chan struct{}), changed: make(chan struct{})}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		w.run(ctx, b)
	}()
	return w
}

func (w *leaseWatch) stop() {
	w.cancel()
	<-w.done
}

// run lists the Lease, then watches it from the list's resourceVersion,
// and lists again when the watch ends with an error (such as 410 Gone). A
// list repeats the state last seen, which add ignores.
func (w *leaseWatch) run(ctx context.Context, b *bench) {
	leases := b.client.CoordinationV1().Leases(b.namespace)
	sel := fields.OneTermEqualSelector("metadata.name", w.name).String()
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			l, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				_ = sleep(ctx, 100*time.Millisecond)
				continue
			}
			for i := range l.Items {
				w.add(&l.Items[i])
			}
			rv = l.ResourceVersion
		}
		wi, err := leases.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
		if err != nil {
			rv = ""
			_ = sleep(ctx, 100*time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				if l, ok := ev.Object.(*coordinationv1.Lease); ok {
					rv = l.ResourceVersion
					w.add(l)
				}
			case watch.Deleted:
				if l, ok := ev.Object.(*coordinationv1.Lease); ok {
					rv = l.ResourceVersion
				}
				w.add(nil)
			case watch.Error:
				rv = ""
			}
		}
		wi.Stop()
	}
}

// add records the state of l (nil: deleted) if its holder, renew time or
// probe differs from the last one seen.
func (w *leaseWatch) add(l *coordinationv1.Lease) {
	s := leaseState{at: time.Now()}
	if l != nil {
		if h := l.Spec.HolderIdentity; h != nil {
			s.holder = *h
		}
		if r := l.Spec.RenewTime; r != nil {
			s.renew = r.Time
		}
		s.probe = l.Annotations[probeAnnotation]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.seen); n > 0 && w.seen[n-1].holder == s.holder && w.seen[n-1].renew.Equal(s.renew) && w.seen[n-1].probe == s.probe {
		return
	}
	w.seen = append(w.seen, s)
	close(w.changed)
	w.changed = make(chan struct{})
}

// next waits up to limit for the first state that arrived at or after since
// and for which ok is true.
func (w *leaseWatch) next(ctx context.Context, since time.Time, limit time.Duration, what string, ok func(leaseState) bool) (leaseState, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for i := 0; ; {
		w.mu.Lock()
		for ; i < len(w.seen); i++ {
			if s := w.seen[i]; !s.at.Before(since) && ok(s) {
				w.mu.Unlock()
				return s, nil
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return leaseState{}, fmt.Errorf("lease %s: %s: not within %s; last states seen:\n%s", w.name, what, limit, w.describe(5))
		case <-ctx.Done():
			return leaseState{}, ctx.Err()
		}
	}
}

// writes returns how many states arrived in [from, to]: each is a write of
// the Lease (a renewal, a release, an acquisition).
func (w *leaseWatch) writes(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.seen {
		if !s.at.Before(from) && !s.at.After(to) {
			n++
		}
	}
	return n
}

// describe lists the last n states seen, for errors.
func (w *leaseWatch) describe(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, s := range w.seen[max(0, len(w.seen)-n):] {
		fmt.Fprintf(&b, "  at %s: holder=%q renewTime=%s\n", s.at.Format(time.StampMilli), s.holder, s.renew.Format(time.StampMicro))
	}
	return b.String()
}
