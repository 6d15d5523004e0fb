//go:build !unix

package main

import "os"

// forwardedSignals are passed on to the command run while leading: none
// where there is no SIGHUP or SIGUSR1 (running a command needs Linux).
var forwardedSignals []os.Signal
