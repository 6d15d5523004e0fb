package elector

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// groupRequestLimit is how many lock requests a Group's elections have in
// flight at once. When a Group starts, each of its elections reads and
// writes its lock at the same moment; unbounded, a thousand of them hold a
// thousand responses, buffers and deep stacks at once, and the process
// keeps that memory long after. The API server queues what exceeds its own
// limits anyway (priority and fairness). Sixty-four requests at a time
// still carry a thousand leaders' renewals with room to spare: they take a
// few milliseconds each, and a thousand leaders renew about three hundred
// times a second at the default TTL.
const groupRequestLimit = 64

// requestLimit bounds the requests in flight of the elections that share
// it, and sends each from a goroutine of its own: the deep stack of a
// request then grows there and ends with it, and an election's own
// goroutine, parked between its steps most of the time, stays small.
type requestLimit struct{ slots chan struct{} }

func newRequestLimit(n int) *requestLimit {
	return &requestLimit{slots: make(chan struct{}, n)}
}

// do runs f once a slot is free, on a goroutine that it waits for. If ctx
// ends first, it returns ctx's error without running f. A nil limit runs f
// at once on the caller's goroutine.
func (r *requestLimit) do(ctx context.Context, f func()) error {
	if r == nil {
		f()
		return nil
	}
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting to send a lock request: %w", context.Cause(ctx))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { <-r.slots }()
		f()
	}()
	<-done
	return nil
}

// limitedClient sends a typed client's requests through a requestLimit.
type limitedClient[T any] struct {
	api   objectClient[T]
	limit *requestLimit
}

// limited returns api with its requests sent through limit; api itself if
// limit is nil.
func limited[T any](api objectClient[T], limit *requestLimit) objectClient[T] {
	if limit == nil {
		return api
	}
	return limitedClient[T]{api: api, limit: limit}
}

func (c limitedClient[T]) Get(ctx context.Context, name string, opts metav1.GetOptions) (obj *T, err error) {
	if lerr := c.limit.do(ctx, func() { obj, err = c.api.Get(ctx, name, opts) }); lerr != nil {
		return nil, lerr
	}
	return obj, err
}

func (c limitedClient[T]) Create(ctx context.Context, o *T, opts metav1.CreateOptions) (obj *T, err error) {
	if lerr := c.limit.do(ctx, func() { obj, err = c.api.Create(ctx, o, opts) }); lerr != nil {
		return nil, lerr
	}
	return obj, err
}

func (c limitedClient[T]) Update(ctx context.Context, o *T, opts metav1.UpdateOptions) (obj *T, err error) {
	if lerr := c.limit.do(ctx, func() { obj, err = c.api.Update(ctx, o, opts) }); lerr != nil {
		return nil, lerr
	}
	return obj, err
}
