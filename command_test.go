package elector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/k8s-elector/elector/electortest"
)

// fakeProc is a command on virtual time: it records the signals it gets and
// exits as told.
type fakeProc struct {
	n      int
	env    []string
	onTerm time.Duration // exits this long after SIGTERM; < 0 ignores it

	mu      sync.Mutex
	started time.Time
	term    time.Time // first SIGTERM
	kill    time.Time // first SIGKILL
	ended   time.Time
	other   []syscall.Signal // any other signal
	st      exitStatus
	exited  chan struct{}
}

func (p *fakeProc) pid() int { return 1000 + p.n }

func (p *fakeProc) signal(sig syscall.Signal, group bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended.IsZero() {
		return syscall.ESRCH
	}
	switch sig {
	case syscall.SIGTERM:
		if p.term.IsZero() {
			p.term = time.Now()
			if p.onTerm >= 0 {
				time.AfterFunc(p.onTerm, func() { p.exit(0) })
			}
		}
	case syscall.SIGKILL:
		if p.kill.IsZero() {
			p.kill = time.Now()
		}
		p.exitLocked(128 + int(syscall.SIGKILL))
	default:
		if group {
			sig = -sig // marks a signal sent to the group
		}
		p.other = append(p.other, sig)
	}
	return nil
}

func (p *fakeProc) exit(code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exitLocked(code)
}

func (p *fakeProc) exitLocked(code int) {
	if !p.ended.IsZero() {
		return
	}
	p.ended = time.Now()
	p.st = exitStatus{code: code, status: fmt.Sprintf("exit status %d", code)}
	close(p.exited)
}

func (p *fakeProc) wait() exitStatus {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// times returns when the process got SIGTERM and SIGKILL and when it ended
// (zero for what did not happen).
func (p *fakeProc) times() (term, kill, ended time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.term, p.kill, p.ended
}

// fakeStarter starts fakeProcs and keeps them in order.
type fakeStarter struct {
	onTerm time.Duration
	fail   error // Start fails with it, when set

	mu    sync.Mutex
	procs []*fakeProc
}

func (f *fakeStarter) start(path string, argv, env []string) (commandProcess, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	p := &fakeProc{n: len(f.procs), env: env, onTerm: f.onTerm, started: time.Now(), exited: make(chan struct{})}
	f.procs = append(f.procs, p)
	return p, nil
}

func (f *fakeStarter) all() []*fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.procs)
}

func (f *fakeStarter) last() *fakeProc {
	ps := f.all()
	if len(ps) == 0 {
		return nil
	}
	return ps[len(ps)-1]
}

// withStarter makes the Elector start fake processes.
func withStarter(f *fakeStarter) Option {
	return optionFunc(func(o *options) { o.startProcess = f.start })
}

// commandOpts is a command as the tests run it: sh, which exists, with the
// fake starter.
func commandOpts(f *fakeStarter, opts ...Option) []Option {
	return append([]Option{WithCommand("sh", "-c", "exit 0"), withStarter(f)}, opts...)
}

// settle advances virtual time by d in small steps.
func settle(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
	}
}

// waitFor advances virtual time until cond holds, and fails after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for begin := time.Now(); !cond(); {
		if time.Since(begin) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
	}
}

// TestCommandFenceStopsBeforeValidUntil freezes a leader that runs a command
// (every request hangs, as a partition or a stuck API server would have it)
// after each of its renewals in turn, over start offsets across second
// boundaries, with a command that exits on SIGTERM and one that ignores it.
// Followers count the lease from what they saw, so for every schedule: the
// command gets SIGTERM no later than valid_until - grace, SIGKILL (if it is
// needed) before valid_until, it is dead before valid_until, and neither a
// plain client-go follower nor an Elector follower acquires before it is
// dead.
func TestCommandFenceStopsBeforeValidUntil(t *testing.T) {
	schedules := 0
	var margins []time.Duration
	for _, ttl := range []time.Duration{2 * time.Second, 6 * time.Second} {
		for _, lock := range []LockType{LockLeases, LockConfigMaps, LockConfigMapsLeases} {
			for _, onTerm := range []time.Duration{0, -1} {
				name := fmt.Sprintf("%s/%s/exits-on-SIGTERM", ttl, lock)
				if onTerm < 0 {
					name = fmt.Sprintf("%s/%s/ignores-SIGTERM", ttl, lock)
				}
				t.Run(name, func(t *testing.T) {
					for offset := time.Duration(0); offset < time.Second; offset += 300 * time.Millisecond {
						for k := 1; k <= 2; k++ {
							schedules++
							synctest.Test(t, func(t *testing.T) {
								margins = append(margins, fenceSchedule(t, lock, ttl, onTerm, offset, k))
							})
							if t.Failed() {
								t.Fatalf("schedule: start +%s, frozen after renewal %d", offset, k)
							}
						}
					}
				})
			}
		}
	}
	if len(margins) > 0 {
		slices.Sort(margins)
		t.Logf("%d schedules; the command was dead this long before valid_until: least %s, median %s",
			schedules, margins[0], margins[len(margins)/2])
	}
}

// fenceSchedule runs one schedule of the sweep and returns how long before
// valid_until the command was dead.
func fenceSchedule(t *testing.T, lock LockType, ttl, onTerm, offset time.Duration, k int) time.Duration {
	time.Sleep(offset)
	r := newFreezeRig(k)
	procs := &fakeStarter{onTerm: onTerm}
	a, err := New(testElection, commandOpts(procs, WithClient(r.leader), WithID("a"), WithLockType(lock), WithTTL(ttl))...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.run(a)()
	waitFor(t, ttl, "the command starts", func() bool { return procs.last() != nil })
	grace := a.cmd.grace
	validUntil, taken := r.race(t, a, lock, ttl)
	if n := len(procs.all()); n != 1 {
		t.Fatalf("the leader started %d commands, want 1", n)
	}
	term, kill, ended := procs.last().times()
	switch {
	case term.IsZero() || ended.IsZero():
		t.Fatalf("the command got SIGTERM at %v and ended at %v: want both before the takeover", term, ended)
	case term.After(validUntil.Add(-grace)):
		t.Errorf("SIGTERM came %s after valid_until - grace", term.Sub(validUntil.Add(-grace)))
	case onTerm < 0 && (kill.IsZero() || !kill.Before(validUntil)):
		t.Errorf("a command that ignores SIGTERM got SIGKILL at %v, want before valid_until %v", kill, validUntil)
	case !ended.Before(validUntil):
		t.Errorf("the command ended %s after valid_until", ended.Sub(validUntil))
	case !taken.After(ended):
		t.Errorf("a follower acquired %s before the command ended", ended.Sub(taken))
	}
	if onTerm >= 0 && !kill.IsZero() {
		t.Errorf("a command that exits on SIGTERM got SIGKILL too")
	}
	return validUntil.Sub(ended)
}

// TestCommandRunsForTheTerm follows one command through a term: it starts
// with the term's token in its environment, Status reports it running and
// then stopping, and at shutdown the lock is released only once it has
// exited.
func TestCommandRunsForTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{onTerm: 300 * time.Millisecond}
		a := start(t, c, "a", LockLeases, commandOpts(procs)...)
		waitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
		p := procs.last()
		s := a.e.Status()
		if !s.IsLeader || s.Command != (CommandStatus{State: CommandRunning, PID: p.pid()}) {
			t.Fatalf("status %+v, want leading with the command running as %d", s, p.pid())
		}
		for _, kv := range []string{
			EnvElection + "=" + testElection, EnvNamespace + "=default", EnvID + "=a",
			EnvLockUID + "=" + s.LockUID, fmt.Sprintf("%s=%d", EnvLeaderTransitions, s.LeaderTransitions),
		} {
			if !slices.Contains(p.env, kv) {
				t.Errorf("the command's environment lacks %s", kv)
			}
		}
		if n := testutil.ToFloat64(a.e.metrics.commandStarts); n != 1 {
			t.Errorf("starts metric %v, want 1", n)
		}

		a.cancel()
		a.cancel = nil
		waitFor(t, time.Second, "the command gets SIGTERM", func() bool { term, _, _ := p.times(); return !term.IsZero() })
		if got := a.e.Status().Command; got != (CommandStatus{State: CommandStopping, PID: p.pid()}) {
			t.Errorf("command status while stopping %+v, want stopping", got)
		}
		if h := lockHolder(t, c.Client(), LockLeases).HolderIdentity; h != "a" {
			t.Errorf("lock holder %q while the command stops, want a: the lock is released only once it has exited", h)
		}
		if err := <-a.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		term, kill, ended := p.times()
		if !kill.IsZero() || ended.Sub(term) != 300*time.Millisecond {
			t.Errorf("command ended %s after SIGTERM, killed at %v: want 300ms, not killed", ended.Sub(term), kill)
		}
		if h := lockHolder(t, c.Client(), LockLeases).HolderIdentity; h != "" {
			t.Errorf("lock holder %q after shutdown, want released", h)
		}
		if got := a.e.Status().Command; got != (CommandStatus{State: CommandNotRunning}) {
			t.Errorf("command status after Run %+v, want not running", got)
		}
		if n := testutil.ToFloat64(a.e.metrics.commandExits.WithLabelValues("0")); n != 1 {
			t.Errorf("exits{code=0} %v, want 1", n)
		}
	})
}

// TestCommandIgnoringSIGTERMIsKilledAfterGrace stops a command that ignores
// SIGTERM: SIGKILL comes exactly the grace period later.
func TestCommandIgnoringSIGTERMIsKilledAfterGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{onTerm: -1}
		a := start(t, c, "a", LockLeases, commandOpts(procs, WithCommandGrace(700*time.Millisecond))...)
		waitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
		a.stop(t)
		term, kill, _ := procs.last().times()
		if kill.Sub(term) != 700*time.Millisecond {
			t.Errorf("SIGKILL %s after SIGTERM, want the grace period, 700ms", kill.Sub(term))
		}
		if n := testutil.ToFloat64(a.e.metrics.commandKills); n != 1 {
			t.Errorf("kills metric %v, want 1", n)
		}
		if n := testutil.ToFloat64(a.e.metrics.commandExits.WithLabelValues("137")); n != 1 {
			t.Errorf("exits{code=137} %v, want 1", n)
		}
	})
}

// TestCommandExitPolicies lets the command exit on its own with 0 and 3.
// Under resign, the leader releases at once, another candidate takes over,
// and the first rejoins after a TTL; under exit, Run returns the exit code
// after releasing.
func TestCommandExitPolicies(t *testing.T) {
	for _, code := range []int{0, 3} {
		t.Run(fmt.Sprintf("resign/code-%d", code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := electortest.NewCluster()
				procs := &fakeStarter{onTerm: 0}
				a := start(t, c, "a", LockLeases, commandOpts(procs)...)
				waitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
				b := start(t, c, "b", LockLeases)
				settle(2 * testRetry)
				exited := time.Now()
				procs.last().exit(code)
				waitFor(t, testTTL, "b leads", func() bool { return b.e.Status().IsLeader })
				if took := time.Since(exited); took > maxRetryWait {
					t.Errorf("b led %s after the command exited, want a release (within a retry, %s)", took, maxRetryWait)
				}
				if n := testutil.ToFloat64(a.e.metrics.commandExits.WithLabelValues(fmt.Sprint(code))); n != 1 {
					t.Errorf("exits{code=%d} %v, want 1", code, n)
				}
				// a stays out for a TTL, then campaigns again: it leads
				// once b is gone.
				settle(testTTL)
				b.stop(t)
				waitFor(t, 2*testTTL, "a leads again with a new command", func() bool {
					return a.e.Status().IsLeader && len(procs.all()) == 2
				})
			})
		})
		t.Run(fmt.Sprintf("exit/code-%d", code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := electortest.NewCluster()
				procs := &fakeStarter{onTerm: 0}
				a := start(t, c, "a", LockLeases, commandOpts(procs, WithCommandExit(CommandExitStop))...)
				waitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
				procs.last().exit(code)
				err := <-a.done
				a.cancel = nil
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Code != code {
					t.Fatalf("Run returned %v, want an ExitError with code %d", err, code)
				}
				if h := lockHolder(t, c.Client(), LockLeases).HolderIdentity; h != "" {
					t.Errorf("lock holder %q after the command exited, want released", h)
				}
			})
		})
	}
}

// TestCommandThatCannotStartSteppsDown: a command that fails to start counts
// as an exit with 127 (not found) and steps down like one.
func TestCommandThatCannotStartStepsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{fail: fmt.Errorf("fork/exec /x: %w", os.ErrNotExist)}
		a := start(t, c, "a", LockLeases, commandOpts(procs)...)
		waitFor(t, testTTL, "a start is tried", func() bool {
			return testutil.ToFloat64(a.e.metrics.commandExits.WithLabelValues("127")) == 1
		})
		waitFor(t, testTTL, "the lock is released", func() bool { return lockHolder(t, c.Client(), LockLeases).HolderIdentity == "" })
		if a.e.Status().IsLeader {
			t.Errorf("a still leads after its command could not start")
		}
	})
}

// TestSignalCommandForwardsToTheRunningCommand: SignalCommand reaches the
// command while it runs, and says ErrNoCommand otherwise.
func TestSignalCommandForwardsToTheRunningCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{onTerm: 0}
		a := start(t, c, "a", LockLeases, commandOpts(procs)...)
		if err := a.e.SignalCommand(syscall.SIGHUP); !errors.Is(err, ErrNoCommand) {
			t.Errorf("SignalCommand before the term: %v, want ErrNoCommand", err)
		}
		waitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
			if err := a.e.SignalCommand(sig); err != nil {
				t.Errorf("SignalCommand(%v): %v", sig, err)
			}
		}
		p := procs.last()
		p.mu.Lock()
		got := slices.Clone(p.other)
		p.mu.Unlock()
		if want := []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}; !slices.Equal(got, want) {
			t.Errorf("the command got %v, want %v", got, want)
		}
		plain := start(t, c, "b", LockLeases)
		if err := plain.e.SignalCommand(syscall.SIGHUP); !errors.Is(err, ErrNoCommand) {
			t.Errorf("SignalCommand without WithCommand: %v, want ErrNoCommand", err)
		}
	})
}

// TestCommandOptionsAreValidated covers every bad command option, and the
// default grace period.
func TestCommandOptionsAreValidated(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "data")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := electortest.NewCluster().Client()
	bad := []struct {
		name string
		opts []Option
		want string
	}{
		{"empty", []Option{WithCommand("")}, "the command is empty"},
		{"blank", []Option{WithCommand("  ")}, "the command is empty"},
		{"not found", []Option{WithCommand("no-such-command-k8s-elector")}, `the command "no-such-command-k8s-elector" cannot be run: executable file not found in $PATH`},
		{"not executable", []Option{WithCommand(notExec)}, fmt.Sprintf("the command %q cannot be run: permission denied", notExec)},
		{"directory", []Option{WithCommand(dir)}, fmt.Sprintf("the command %q cannot be run: is a directory", dir)},
		{"negative grace", []Option{WithCommand("sh"), WithCommandGrace(-time.Second)}, "command grace period -1s is negative"},
		{"grace of a TTL", []Option{WithCommand("sh"), WithTTL(6 * time.Second), WithCommandGrace(6 * time.Second)}, "command grace period 6s must be shorter than the TTL 6s"},
		{"grace too long", []Option{WithCommand("sh"), WithTTL(6 * time.Second), WithCommandGrace(3 * time.Second)}, "command grace period 3s is too long for a TTL of 6s"},
		{"exit policy", []Option{WithCommand("sh"), WithCommandExit("restart")}, `command exit policy "restart" is not supported: want resign or exit`},
		{"with started-leading", []Option{WithCommand("sh"), WithOnStartedLeading(func(context.Context) {})}, "both WithCommand and WithOnStartedLeading are set"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(testElection, append([]Option{WithClient(client)}, tc.opts...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if os.Geteuid() == 0 {
		t.Log("running as root: the permission check still holds, since the file has no execute bit")
	}
	for _, tc := range []struct {
		ttl, grace, want time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second / 3},
		{6 * time.Second, 0, 2 * time.Second},
		{4 * time.Second, 0, 4 * time.Second / 3},
		{3 * time.Second, 0, maxStopGrace(3*time.Second, 500*time.Millisecond)},
		{2 * time.Second, 0, maxStopGrace(2*time.Second, 2*time.Second/6)},
		{6 * time.Second, 2500 * time.Millisecond, 2500 * time.Millisecond},
	} {
		e, err := New(testElection, WithClient(client), WithTTL(tc.ttl), WithCommand("sh"), WithCommandGrace(tc.grace))
		if err != nil {
			t.Fatalf("TTL %s, grace %s: %v", tc.ttl, tc.grace, err)
		}
		if e.cmd.grace != tc.want {
			t.Errorf("TTL %s, grace %s: got grace %s, want %s", tc.ttl, tc.grace, e.cmd.grace, tc.want)
		}
	}
}

// childParentEnv makes the test binary a parent that starts a command the
// way the supervisor does, prints its PID and waits to be killed: see
// TestMain.
const childParentEnv = "ELECTOR_TEST_COMMAND_PARENT"

// runCommandParent is the parent process of TestCommandDiesWithTheElector.
func runCommandParent() {
	goruntime.LockOSThread()
	p, err := startProcess("/bin/sleep", []string{"sleep", "60"}, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(p.pid())
	p.wait()
}
