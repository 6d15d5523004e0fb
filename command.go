package elector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// The environment variables a command run under WithCommand gets, on top of
// the Elector's own environment.
const (
	EnvElection          = "ELECTOR_ELECTION"           // the election's name
	EnvNamespace         = "ELECTOR_NAMESPACE"          // the lock object's namespace
	EnvID                = "ELECTOR_ID"                 // this candidate's ID
	EnvLockUID           = "ELECTOR_LOCK_UID"           // the term's fencing token: the lock object's UID,
	EnvLeaderTransitions = "ELECTOR_LEADER_TRANSITIONS" // and its transition count (see Status)
)

// CommandExit says what an Elector does when its command exits on its own
// while the term lasts (WithCommandExit).
type CommandExit string

// The policies of WithCommandExit.
const (
	// CommandExitResign steps down at once: the Elector releases the lock so
	// that another candidate takes over, stays out of the election for one
	// TTL, and campaigns again, starting the command anew if it leads.
	CommandExitResign CommandExit = "resign"
	// CommandExitStop releases the lock and makes Run return an *ExitError
	// with the command's exit code, so that a process supervisor (the
	// kubelet) restarts the whole container.
	CommandExitStop CommandExit = "exit"
)

// ErrNoCommand is returned by SignalCommand when no command runs.
var ErrNoCommand = errors.New("elector: no command running")

// ExitError is what Run returns under CommandExitStop when the command
// exited on its own.
type ExitError struct {
	// Code is the command's exit code, or 128 plus the signal number if a
	// signal ended it, as shells report it.
	Code int
	// Status is how the command ended, such as "exit status 3" or
	// "signal: killed".
	Status string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("elector: the command exited on its own (%s)", e.Status)
}

// supervisor runs the Elector's command as its leader work: it starts the
// command when a term starts and stops it when the term ends, and it owns
// what Status reports about it. The term ends early enough for the command
// to be dead before its lease ends: see options.ahead.
type supervisor struct {
	path    string   // resolved by New
	argv    []string // the command as given
	env     []string // the election's variables, without the term's token
	grace   time.Duration
	margin  time.Duration // SIGKILL comes this long before valid_until at the latest
	exit    CommandExit
	ttl     time.Duration
	start   startFunc
	inbox   *inbox
	views   *views
	metrics *metrics
	reaper  *reaper // orphans, when the Elector is PID 1

	mu   sync.Mutex
	proc commandProcess // the running command, nil between runs

	exited atomic.Pointer[ExitError] // set under CommandExitStop; taken by Run
}

// lead is the started-leading function: it runs the command for the term of
// ctx and returns once the command has exited.
func (s *supervisor) lead(ctx context.Context) {
	t, _ := ctx.Value(termKey{}).(*term)
	if t == nil {
		return
	}
	log := logr.FromContextOrDiscard(ctx).WithName("command")
	// Linux sends the parent-death signal when the thread that started the
	// child exits, not the process: hold this goroutine's thread for as
	// long as the command runs, so that no other goroutine can end it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	env := append(append(os.Environ(), s.env...),
		EnvLockUID+"="+t.token.LockUID,
		EnvLeaderTransitions+"="+strconv.Itoa(t.token.LeaderTransitions))
	started := s.reaper.starting() // before s.mu: the reaper locks in that order
	// Running from before the start: the command may act before start
	// returns, and Status must never say not_running while it does.
	s.views.update(func(v *view) { v.command = CommandStatus{State: CommandRunning} })
	s.mu.Lock()
	p, err := s.start(s.path, s.argv, env)
	if err == nil {
		s.proc = p
	}
	s.mu.Unlock()
	started()
	if err != nil {
		s.views.update(func(v *view) { v.command = CommandStatus{State: CommandNotRunning} })
		st := exitStatus{code: 126, status: err.Error()}
		if errors.Is(err, os.ErrNotExist) {
			st.code = 127
		}
		log.Error(err, "cannot start the command", "command", s.path)
		s.metrics.commandExited(st.code)
		s.exitedOnItsOwn(ctx, log, st)
		return
	}
	pid := p.pid()
	s.metrics.commandStarts.Inc()
	s.views.update(func(v *view) { v.command = CommandStatus{State: CommandRunning, PID: pid} })
	log.Info("started the command", "pid", pid, "leaderTransitions", t.token.LeaderTransitions)

	done := make(chan exitStatus, 1)
	go func() { done <- p.wait() }()
	select {
	case st := <-done:
		s.finish(log, p, st)
		s.exitedOnItsOwn(ctx, log, st)
		return
	case <-ctx.Done():
	}

	s.views.update(func(v *view) { v.command = CommandStatus{State: CommandStopping, PID: pid} })
	// SIGKILL after the grace period, and before the lease ends whatever
	// the grace period: a follower can take over from then.
	killAt := time.Now().Add(s.grace)
	if u := t.until.Load(); u != nil {
		if k := u.Add(-s.margin); k.Before(killAt) {
			killAt = k
		}
	}
	log.Info("stopping the command", "pid", pid, "killIn", time.Until(killAt).Round(time.Millisecond))
	if err := p.signal(syscall.SIGTERM, true); err != nil {
		log.V(1).Info("cannot signal the command", "signal", "SIGTERM", "err", err.Error())
	}
	kill := time.NewTimer(time.Until(killAt))
	defer kill.Stop()
	var st exitStatus
	select {
	case st = <-done:
	case <-kill.C:
		log.Info("the command did not stop in time: killing it", "pid", pid)
		if err := p.signal(syscall.SIGKILL, true); err != nil {
			log.V(1).Info("cannot signal the command", "signal", "SIGKILL", "err", err.Error())
		}
		s.metrics.commandKills.Inc()
		st = <-done
	}
	s.finish(log, p, st)
}

// finish accounts for the exit of p: whatever is left of its process group
// is killed, so that nothing the command started outlives it.
func (s *supervisor) finish(log logr.Logger, p commandProcess, st exitStatus) {
	_ = p.signal(syscall.SIGKILL, true) // usually ESRCH: the group is gone
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	s.reaper.rescan()
	s.metrics.commandExited(st.code)
	s.views.update(func(v *view) { v.command = CommandStatus{State: CommandNotRunning} })
	log.Info("the command exited", "pid", p.pid(), "code", st.code, "status", st.status)
}

// exitedOnItsOwn applies the exit policy to a command that ended (or could
// not start) while its term lasted.
func (s *supervisor) exitedOnItsOwn(ctx context.Context, log logr.Logger, st exitStatus) {
	if ctx.Err() != nil {
		return // the term ended as it exited: nothing to step down from
	}
	if s.exit == CommandExitStop {
		log.Info("the command exited while leading: releasing the lock and stopping", "code", st.code)
		s.exited.Store(&ExitError{Code: st.code, Status: st.status})
		s.inbox.poke()
		return
	}
	log.Info("the command exited while leading: stepping down", "code", st.code, "cooldown", s.ttl)
	s.inbox.ask(&resignRequest{cooldown: s.ttl, done: make(chan error, 1)})
}

// pid returns the running command's PID, or 0.
func (s *supervisor) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid()
}

// takeExit returns the exit Run must return, if any.
func (s *supervisor) takeExit() *ExitError {
	if s == nil {
		return nil
	}
	return s.exited.Swap(nil)
}

// signal sends sig to the running command's process, or returns
// ErrNoCommand.
func (s *supervisor) signal(sig os.Signal) error {
	if s == nil {
		return ErrNoCommand
	}
	ss, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("elector: cannot send %v: not a system signal", sig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ErrNoCommand
	}
	if err := s.proc.signal(ss, false); err != nil {
		return fmt.Errorf("elector: signal the command: %w", err)
	}
	return nil
}
