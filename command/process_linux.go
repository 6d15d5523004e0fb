package command

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"unsafe"
)

// supported reports whether this platform can run a command.
const supported = true

// execProcess is a command started by startProcess.
type execProcess struct{ cmd *exec.Cmd }

// startProcess starts the command in a process group of its own, which the
// kernel kills with SIGKILL when the thread that started it exits: the
// Command holds that thread while the command runs, so the command dies
// with this process, even by SIGKILL.
func startProcess(path string, argv, env []string) (process, error) {
	cmd := &exec.Cmd{
		Path: path,
		Args: argv,
		Env:  env,
		// Stdin nil is /dev/null. Files are handed over as they are, with
		// no goroutine copying output.
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return execProcess{cmd}, nil
}

func (p execProcess) pid() int { return p.cmd.Process.Pid }

func (p execProcess) signal(sig syscall.Signal, group bool) error {
	if !group {
		return p.cmd.Process.Signal(sig)
	}
	// The process group has the command's PID as its ID.
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p execProcess) wait() exitStatus {
	err := p.cmd.Wait()
	st := exitStatus{status: "exit status 0"}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		st.status = ee.ProcessState.String()
		st.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.code = 128 + int(ws.Signal())
		}
	default:
		st.code, st.status = 1, err.Error()
	}
	return st
}

// reaper reaps the orphans that the kernel hands to PID 1: a process that
// is the init process of a container must, or they stay zombies. It leaves
// the command itself to the Command, which waits for it. It reaps only
// when the process is PID 1; a nil reaper does nothing.
type reaper struct {
	mu    sync.Mutex // held while a command starts, and while reaping
	child func() int // the command's PID, 0 when none
	kick  chan struct{}
}

func newReaper(child func() int) *reaper {
	if os.Getpid() != 1 {
		return nil
	}
	return &reaper{child: child, kick: make(chan struct{}, 1)}
}

// run reaps on every SIGCHLD until ctx ends.
func (r *reaper) run(ctx context.Context) {
	if r == nil {
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		r.reap()
		select {
		case <-sigs:
		case <-r.kick:
		case <-ctx.Done():
			return
		}
	}
}

// rescan asks run to look again: the command was waited for, so the
// orphans behind it can be reaped.
func (r *reaper) rescan() {
	if r == nil {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// starting holds off reaping while the command starts, so that a command
// that exits at once is not reaped before the Command knows its PID.
func (r *reaper) starting() (done func()) {
	if r == nil {
		return func() {}
	}
	r.mu.Lock()
	return r.mu.Unlock
}

// reap reaps every exited child but the command. It looks before it reaps
// (WNOWAIT), and stops at the command, which the Command reaps; the
// orphans behind it wait for the next rescan.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		pid, err := peekExited()
		if err != nil || pid <= 0 || pid == r.child() {
			return
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// siginfo is the kernel's siginfo_t, 128 bytes; for SIGCHLD, si_pid follows
// three ints, aligned to a pointer.
type siginfo struct{ _ [16]uint64 }

const siPidOffset = 12 + 4*(unsafe.Sizeof(uintptr(0))/8)

// peekExited returns the PID of an exited child without reaping it, or 0 if
// none has exited.
func peekExited() (int, error) {
	const pAll = 0
	var info siginfo
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, uintptr(unsafe.Pointer(&info)),
			syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), siPidOffset))), nil
		case syscall.EINTR:
			continue
		default:
			return 0, errno
		}
	}
}
