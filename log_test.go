package elector

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/k8s-elector/elector/internal/testkit"
)

// TestCancelledLockRequestIsNoError: a request cut off because its pass or
// Run ended, as on every shutdown, is logged at V(1), never as an error; a
// request that fails on its own still is.
func TestCancelledLockRequestIsNoError(t *testing.T) {
	var sink testkit.Log
	l := &observed{log: sink.Logger(), kind: "lease", lock: &stubLock{}}
	_ = l.failed("get", fmt.Errorf("Get \"https://127.0.0.1:1/\": %w", context.Canceled))
	if n := sink.ErrorsContaining("lock request"); n != 0 {
		t.Errorf("a cancelled request logged %d error lines, want none:\n%s", n, &sink)
	}
	_ = l.failed("get", errors.New("connection refused"))
	if n := sink.ErrorsContaining("lock request failed"); n != 1 {
		t.Errorf("a failed request logged %d error lines, want 1:\n%s", n, &sink)
	}
}
