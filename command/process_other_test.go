//go:build !linux

package command

import (
	"strings"
	"testing"
	"time"

	elector "github.com/k8s-elector/elector"
)

// TestNewNeedsLinux: elsewhere, New refuses with the reason.
func TestNewNeedsLinux(t *testing.T) {
	_, err := New(Config{Name: "sh", Election: "example", Namespace: "default", ID: "a", Timings: elector.DefaultTimings(10 * time.Second)})
	if err == nil || !strings.Contains(err.Error(), "command: running a command needs Linux") {
		t.Fatalf("New: %v, want the Linux requirement", err)
	}
}
