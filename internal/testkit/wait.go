package testkit

import (
	"testing"
	"testing/synctest"
	"time"
)

// Settle advances virtual time by d in small steps, letting every goroutine
// of the bubble run at each. Call it inside a synctest bubble.
func Settle(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
	}
}

// WaitFor advances virtual time until cond holds, and fails the test, naming
// what it waited for, after limit. Call it inside a synctest bubble.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for begin := time.Now(); !cond(); {
		if time.Since(begin) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
	}
}
