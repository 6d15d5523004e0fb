package elector

import "syscall"

// exitStatus is how a process ended.
type exitStatus struct {
	code   int    // as ExitError.Code
	status string // as ExitError.Status
}

// commandProcess is a started command; the supervisor waits for it exactly once.
type commandProcess interface {
	pid() int
	// signal sends sig to the process group, or with group false to the
	// process alone.
	signal(sig syscall.Signal, group bool) error
	// wait blocks until the process has exited and is reaped.
	wait() exitStatus
}

// startFunc starts path with argv and env in a process group of its own,
// with stdin closed and the Elector's stdout and stderr.
type startFunc func(path string, argv, env []string) (commandProcess, error)
