// Package serial runs functions one at a time, in the order they were queued,
// without ever blocking the code that queues them. The queue runs them on a
// goroutine of its own that exists only while functions wait: an idle queue
// costs no goroutine, which matters to a process with a thousand of them (a
// Group's elections). Close waits for that goroutine to end.
package serial

import "sync"

// Queue is an unbounded FIFO of functions. The zero value is not usable;
// call New.
type Queue struct {
	mu      sync.Mutex
	items   []func()
	closed  bool
	drained chan struct{} // closed when the running worker ends; nil while none runs
}

// New returns an empty, open queue.
func New() *Queue { return &Queue{} }

// Push queues f, and starts the queue's worker if it is idle. It never
// blocks. After Close it drops f.
func (q *Queue) Push(f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.items = append(q.items, f)
	if q.drained == nil {
		q.drained = make(chan struct{})
		go q.work(q.drained)
	}
}

// Close stops the queue from taking more functions, and returns once it has
// run everything queued before Close. It may be called more than once.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	drained := q.drained
	q.mu.Unlock()
	if drained != nil {
		<-drained
	}
}

// work runs the queued functions until none is left, then ends.
func (q *Queue) work(drained chan struct{}) {
	defer close(drained)
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.drained = nil
			q.items = nil // let a long queue's array go
			q.mu.Unlock()
			return
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		f()
	}
}
