package main

import (
	"testing"
	"time"
)

// TestWriterWithoutStore checks that a child given no store sends nothing
// and stops at once, as often as it is told to.
func TestWriterWithoutStore(t *testing.T) {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(time.Millisecond)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("run without a store: still running after 10s, want it to return at once")
	}
	halted := make(chan struct{})
	go func() {
		w.halt()
		w.halt() // the stop on SIGTERM, then on -exit-after: no panic
		close(halted)
	}()
	select {
	case <-halted:
	case <-time.After(10 * time.Second):
		t.Fatal("halt: still waiting after 10s")
	}
}
