package elector

import "sync"

// driver gives an election loop a goroutine only while it has something to
// do. Every input of the loop wakes it: the watch, the inbox, the end of a
// term, its timer and the end of Run's context. A wake-up starts a goroutine
// that takes the loop's turns until none is due, and ends; a wake-up while it
// runs makes it take one more turn. So at most one goroutine runs the loop at
// a time, and an idle election has none: a Group of a thousand idle
// elections keeps no thousand parked goroutines and their stacks.
type driver struct {
	// turn takes the loop's inputs until none is due; it returns true once
	// the loop has finished, and is never called again then.
	turn func() (finished bool)

	mu       sync.Mutex
	started  bool // turn is set: wake-ups before it wait for it
	running  bool // a goroutine takes turns
	again    bool // woken while it ran: one more turn
	finished bool
}

// start sets the loop's turn and takes the first.
func (d *driver) start(turn func() (finished bool)) {
	d.mu.Lock()
	d.turn, d.started = turn, true
	d.mu.Unlock()
	d.wake()
}

// wake makes the loop take a turn: now, on a goroutine of its own, or, if
// one is taking a turn, after it. It never blocks.
func (d *driver) wake() {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.started || d.finished:
	case d.running:
		d.again = true
	default:
		d.running = true
		go d.run()
	}
}

// run takes turns until none is due or the loop has finished.
func (d *driver) run() {
	for {
		finished := d.turn()
		d.mu.Lock()
		if finished || !d.again {
			d.running, d.finished = false, finished
			d.mu.Unlock()
			return
		}
		d.again = false
		d.mu.Unlock()
	}
}
