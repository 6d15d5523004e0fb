// Package serial runs functions one at a time, in the order they were queued,
// on a goroutine owned by the caller, without ever blocking the code that
// queues them.
package serial

import "sync"

// Queue is an unbounded FIFO of functions. The zero value is not usable;
// call New.
type Queue struct {
	mu     sync.Mutex
	items  []func()
	closed bool
	wake   chan struct{}
}

// New returns an empty, open queue.
func New() *Queue {
	return &Queue{wake: make(chan struct{}, 1)}
}

// Push queues f. It never blocks. After Close it drops f.
func (q *Queue) Push(f func()) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, f)
	q.mu.Unlock()
	q.signal()
}

// Close stops the queue from taking more functions. Run returns once it has
// run everything queued before Close.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// Run runs queued functions in order, one at a time, until the queue is
// closed and drained. Call it once, on a goroutine of your own.
func (q *Queue) Run() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			<-q.wake
			continue
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		f()
	}
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
