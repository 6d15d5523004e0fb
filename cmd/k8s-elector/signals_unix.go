//go:build unix

package main

import (
	"os"
	"syscall"
)

// forwardedSignals are passed on to the command run while leading.
var forwardedSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}
