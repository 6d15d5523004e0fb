//go:build linux

package main

import (
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// withoutFileAccessOverride runs f on an OS thread without the capabilities
// that let root read and search any file (CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH), so that a chmod 000 file is unreadable to f even when
// the tests run as root. Linux keeps capabilities per thread, so f must do
// its file access on the calling goroutine. The thread is never unlocked: it
// ends with the test's goroutine instead of running other goroutines with
// fewer capabilities.
func withoutFileAccessOverride(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	const (
		linuxCapabilityVersion3 = 0x20080522
		capDACOverride          = 1
		capDACReadSearch        = 2
	)
	hdr := struct {
		version uint32
		pid     int32 // 0: this thread
	}{version: linuxCapabilityVersion3}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		t.Skipf("cannot read this thread's capabilities to drop CAP_DAC_OVERRIDE: capget: %v", errno)
	}
	data[0].effective &^= 1<<capDACOverride | 1<<capDACReadSearch
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		t.Skipf("cannot drop CAP_DAC_OVERRIDE on this thread: capset: %v", errno)
	}
	f()
}
