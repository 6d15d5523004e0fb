package command

import "syscall"

// exitStatus is how a process ended.
type exitStatus struct {
	code   int    // as ExitError.Code
	status string // as ExitError.Status
}

// process is a started command; the Command waits for it exactly once.
type process interface {
	pid() int
	// signal sends sig to the process group, or with group false to the
	// process alone.
	signal(sig syscall.Signal, group bool) error
	// wait blocks until the process has exited and is reaped.
	wait() exitStatus
}

// startFunc starts path with argv and env in a process group of its own,
// with stdin closed and this process's stdout and stderr.
type startFunc func(path string, argv, env []string) (process, error)
