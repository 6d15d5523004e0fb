package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestShutdownCutOffIsBounded sends SIGTERM to a leader that cannot reach
// the API server: its release and its last Events cannot be sent, and it
// must still exit 0 within the shutdown budget (renew deadline + 1s), so
// that a Pod's terminationGracePeriodSeconds can be sized from the TTL. (It
// took 6s: the release timed out after a request timeout, then the Event
// flush waited 5s more.)
func TestShutdownCutOffIsBounded(t *testing.T) {
	parallel(t)
	f := startFaultFleet(t, "leases")
	l := f.settle()
	f.mark("blackhole %s, then SIGTERM", l.ID)
	f.proxy(l).Blackhole()
	begin := time.Now()
	if err := l.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := l.Wait(30 * time.Second)
	took := time.Since(begin)
	if err != nil || code != 0 {
		t.Fatalf("%s exited with code %d (%v) after SIGTERM, want 0", l.ID, code, err)
	}
	// The process itself needs a moment to exit; a loaded machine more.
	const slack = time.Second
	budget := renewDeadline + time.Second
	if took > budget+slack {
		t.Errorf("%s exited %s after SIGTERM while cut off, want within the shutdown budget %s (+%s slack)", l.ID, took.Round(time.Millisecond), budget, slack)
	}
	t.Logf("%s exited %s after SIGTERM while cut off from the API server (budget %s)", l.ID, took.Round(time.Millisecond), budget)
}
