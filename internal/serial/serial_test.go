package serial

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunsInOrderWithoutOverlap(t *testing.T) {
	q := New()
	var got []int
	var running atomic.Int32
	var overlap atomic.Bool
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		q.Push(func() {
			defer wg.Done()
			if running.Add(1) != 1 {
				overlap.Store(true)
			}
			got = append(got, i) // safe only if calls never overlap
			running.Add(-1)
		})
	}
	wg.Wait()
	q.Close()
	if overlap.Load() {
		t.Fatal("queued functions ran concurrently")
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("function %d ran at position %d, want in queue order", v, i)
		}
	}
	if len(got) != 1000 {
		t.Fatalf("got %d calls, want 1000", len(got))
	}
}

func TestCloseDrainsThenStops(t *testing.T) {
	q := New()
	ran := 0
	q.Push(func() { ran++ })
	q.Push(func() { ran++ })
	q.Close()                     // returns: closed and drained
	q.Push(func() { ran += 100 }) // dropped: after Close
	q.Close()
	if ran != 2 {
		t.Fatalf("ran = %d, want 2", ran)
	}
}

func TestPushNeverBlocks(t *testing.T) {
	q := New()
	block := make(chan struct{})
	q.Push(func() { <-block }) // the worker is busy
	for range 10000 {
		q.Push(func() {})
	}
	close(block)
	q.Close()
}

// TestIdleQueueHasNoGoroutine: the worker ends once the queue is empty, and
// the next Push starts another.
func TestIdleQueueHasNoGoroutine(t *testing.T) {
	q := New()
	ran := make(chan struct{})
	q.Push(func() { close(ran) })
	<-ran
	for {
		q.mu.Lock()
		idle := q.drained == nil
		q.mu.Unlock()
		if idle {
			break
		}
		runtime.Gosched()
	}
	again := make(chan struct{})
	q.Push(func() { close(again) })
	<-again
	q.Close()
}
