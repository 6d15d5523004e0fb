package elector

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotLeader is returned by Resign and ResignFor when this candidate does
// not lead, Run not running included.
var ErrNotLeader = errors.New("elector: not leader")

// inbox takes the requests of other goroutines to the loop: a resignation
// (Resign, the gate's step-down) and a wake-up (the
// gate's answer changed).
type inbox struct {
	wake chan struct{} // buffered: a pending wake-up
	// woken is called after each wake-up: the running loop's driver.
	woken atomic.Pointer[func()]

	mu     sync.Mutex
	resign *resignRequest
	// successor is the candidate to name when Run's context ends, if it is
	// not empty: a Group that spreads leadership chooses it.
	successor string
}

// resignRequest asks the loop to step down; it answers nil once the lock
// is released, or ErrNotLeader.
type resignRequest struct {
	cooldown time.Duration
	to       string     // the successor to name, or empty
	done     chan error // buffered: the loop never blocks on it
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

// poke wakes the loop.
func (b *inbox) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
	if f := b.woken.Load(); f != nil {
		(*f)()
	}
}

// notify makes poke call f, the driver of the loop that runs, or nothing
// when f is nil.
func (b *inbox) notify(f func()) {
	if f == nil {
		b.woken.Store(nil)
		return
	}
	b.woken.Store(&f)
}

// ask queues req, or returns the request already pending.
func (b *inbox) ask(req *resignRequest) *resignRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.resign != nil {
		return b.resign
	}
	b.resign = req
	b.poke()
	return req
}

// handOff sets the successor to name when Run's context ends.
func (b *inbox) handOff(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.successor = id
}

// handOffTo returns the successor to name when Run's context ends, and
// forgets it.
func (b *inbox) handOffTo() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.successor
	b.successor = ""
	return id
}

// take returns the pending request, if any.
func (b *inbox) take() *resignRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	req := b.resign
	b.resign = nil
	return req
}
