//go:build !linux

package elector

import (
	"context"
	"errors"
)

// commandSupported reports whether this platform can run a command: the
// supervisor needs Linux's parent-death signal to keep its promise that the
// command dies with the Elector.
const commandSupported = false

func startProcess(string, []string, []string) (commandProcess, error) {
	return nil, errors.New("elector: running a command needs Linux")
}

type reaper struct{}

func newReaper(func() int) *reaper        { return nil }
func (r *reaper) run(context.Context)     {}
func (r *reaper) rescan()                 {}
func (r *reaper) starting() (done func()) { return func() {} }
