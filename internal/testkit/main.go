package testkit

import (
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// Main runs the tests of a package, then fails if any goroutine is left
// (goleak). Call it from TestMain.
//
// Under the race detector it runs them on one thread (GOMAXPROCS=1). With
// Go 1.26, tests that run many synctest bubbles under -race crash a few
// times in twenty here, inside the runtime's synctest.Run, where it fires a
// bubble's timers on the thread's g0 with g0's race context: ThreadSanitizer
// "CHECK failed: ... slot_locked" or a SIGSEGV (golang/go#78156, open). On
// one thread they have not crashed. The race detector decides races by
// happens-before, not by threads running at the same instant, so it still
// reports the unsynchronized accesses the tests reach.
func Main(m *testing.M) {
	if raceEnabled {
		runtime.GOMAXPROCS(1)
	}
	goleak.VerifyTestMain(m)
}
