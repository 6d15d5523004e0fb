package serial

import (
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunsInOrderWithoutOverlap(t *testing.T) {
	q := New()
	done := make(chan struct{})
	go func() { defer close(done); q.Run() }()

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
	<-done
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
	q.Close()
	q.Push(func() { ran += 100 }) // dropped: after Close
	q.Run()                       // returns: closed and drained
	if ran != 2 {
		t.Fatalf("ran = %d, want 2", ran)
	}
}

func TestPushNeverBlocks(t *testing.T) {
	q := New() // nobody runs it
	for range 10000 {
		q.Push(func() {})
	}
	q.Close()
	q.Run()
}
