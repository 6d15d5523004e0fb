//go:build !linux

package command

import (
	"context"
	"errors"
)

// supported reports whether this platform can run a command: the Command
// needs Linux's parent-death signal to keep its promise that the command
// dies with this process.
const supported = false

func startProcess(string, []string, []string) (process, error) {
	return nil, errors.New("command: running a command needs Linux")
}

type reaper struct{}

func newReaper(func() int) *reaper        { return nil }
func (r *reaper) run(context.Context)     {}
func (r *reaper) rescan()                 {}
func (r *reaper) starting() (done func()) { return func() {} }
