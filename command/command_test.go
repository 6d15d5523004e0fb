//go:build linux

package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// TestCommandRunsForTheTerm follows one command through a term: it starts
// with the term's token in its environment, Status (the Command's and the
// Elector's, in GET /) reports it running and then stopping, and at
// shutdown the lock is released only once it has exited.
func TestCommandRunsForTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{onTerm: 300 * time.Millisecond}
		a := start(t, c, "a", procs, nil)
		testkit.WaitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
		p := procs.last()
		s := a.e.Status()
		want := Status{State: Running, PID: p.pid()}
		if got, _ := reported(t, a.e); !s.IsLeader || got != want || a.cmd.Status() != want {
			t.Fatalf("status %+v with the command %+v (Command.Status %+v), want leading with the command running as %d",
				s, got, a.cmd.Status(), p.pid())
		}
		body, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if w := fmt.Sprintf(`"command":{"state":"running","pid":%d}`, p.pid()); !strings.Contains(string(body), w) {
			t.Errorf("GET / body %s, want %s in it", body, w)
		}
		for _, kv := range []string{
			EnvElection + "=" + testElection, EnvNamespace + "=default", EnvID + "=a",
			EnvLockUID + "=" + s.LockUID, fmt.Sprintf("%s=%d", EnvLeaderTransitions, s.LeaderTransitions),
		} {
			if !slices.Contains(p.env, kv) {
				t.Errorf("the command's environment lacks %s", kv)
			}
		}
		if s.LockUID == "" {
			t.Error("the term's token has no lock UID: the fake cluster sets one")
		}
		if n := testutil.ToFloat64(a.cmd.metrics.starts); n != 1 {
			t.Errorf("starts metric %v, want 1", n)
		}

		a.cancel()
		a.cancel = nil
		testkit.WaitFor(t, time.Second, "the command gets SIGTERM", func() bool { term, _, _ := p.times(); return !term.IsZero() })
		stopping := Status{State: Stopping, PID: p.pid()}
		if got, _ := reported(t, a.e); got != stopping || a.cmd.Status() != stopping {
			t.Errorf("command status while stopping %+v (Command.Status %+v), want stopping", got, a.cmd.Status())
		}
		if h := lockHolder(t, c.Client(), elector.LockLeases).HolderIdentity; h != "a" {
			t.Errorf("lock holder %q while the command stops, want a: the lock is released only once it has exited", h)
		}
		if err := <-a.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		term, kill, ended := p.times()
		if !kill.IsZero() || ended.Sub(term) != 300*time.Millisecond {
			t.Errorf("command ended %s after SIGTERM, killed at %v: want 300ms, not killed", ended.Sub(term), kill)
		}
		if h := lockHolder(t, c.Client(), elector.LockLeases).HolderIdentity; h != "" {
			t.Errorf("lock holder %q after shutdown, want released", h)
		}
		notRunning := Status{State: NotRunning}
		if got, _ := reported(t, a.e); got != notRunning || a.cmd.Status() != notRunning {
			t.Errorf("command status after Run %+v (Command.Status %+v), want not running", got, a.cmd.Status())
		}
		if n := testutil.ToFloat64(a.cmd.metrics.exits.WithLabelValues("0")); n != 1 {
			t.Errorf("exits{code=0} %v, want 1", n)
		}
	})
}

// TestRunReportsNotRunningAtOnce: a follower's Elector reports the command
// not running from the start of Run, before any term.
func TestRunReportsNotRunningAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		b := startPlain(t, c, "b")
		testkit.WaitFor(t, testTTL, "b leads", func() bool { return b.e.Status().IsLeader })
		procs := &fakeStarter{}
		a := start(t, c, "a", procs, nil)
		synctest.Wait()
		if got, ok := reported(t, a.e); !ok || got != (Status{State: NotRunning}) {
			t.Errorf("a follower reports the command %+v (reported: %v), want not_running", got, ok)
		}
		if err := a.cmd.Signal(syscall.SIGHUP); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Signal on a follower: %v, want ErrNotRunning", err)
		}
		if n := len(procs.all()); n != 0 {
			t.Errorf("a follower started %d commands", n)
		}
	})
}

// TestCommandIgnoringSIGTERMIsKilledAfterGrace stops a command that ignores
// SIGTERM: SIGKILL comes exactly the grace period later, at once and after
// many renewals, when the ValidUntil the command read at its start is long
// past: the bound on SIGKILL follows the renewals.
func TestCommandIgnoringSIGTERMIsKilledAfterGrace(t *testing.T) {
	for _, after := range []time.Duration{0, 3 * testTTL} {
		t.Run(fmt.Sprintf("after-%s", after), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := electortest.NewCluster()
				procs := &fakeStarter{onTerm: -1}
				a := start(t, c, "a", procs, func(cfg *Config) { cfg.Grace = 700 * time.Millisecond })
				testkit.WaitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
				testkit.Settle(after)
				a.stop(t)
				if n := len(procs.all()); n != 1 {
					t.Fatalf("%d commands started, want 1: the term lasted", n)
				}
				term, kill, _ := procs.last().times()
				if kill.Sub(term) != 700*time.Millisecond {
					t.Errorf("SIGKILL %s after SIGTERM, want the grace period, 700ms", kill.Sub(term))
				}
				if n := testutil.ToFloat64(a.cmd.metrics.kills); n != 1 {
					t.Errorf("kills metric %v, want 1", n)
				}
				if n := testutil.ToFloat64(a.cmd.metrics.exits.WithLabelValues("137")); n != 1 {
					t.Errorf("exits{code=137} %v, want 1", n)
				}
			})
		})
	}
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
				a := start(t, c, "a", procs, nil)
				testkit.WaitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
				b := startPlain(t, c, "b")
				testkit.Settle(2 * testRetry)
				exited := time.Now()
				procs.last().exit(code)
				testkit.WaitFor(t, testTTL, "b leads", func() bool { return b.e.Status().IsLeader })
				if took := time.Since(exited); took > maxRetryWait {
					t.Errorf("b led %s after the command exited, want a release (within a retry, %s)", took, maxRetryWait)
				}
				if n := testutil.ToFloat64(a.cmd.metrics.exits.WithLabelValues(fmt.Sprint(code))); n != 1 {
					t.Errorf("exits{code=%d} %v, want 1", code, n)
				}
				// a stays out for a TTL, then campaigns again: it leads
				// once b is gone.
				testkit.Settle(testTTL)
				b.stop(t)
				testkit.WaitFor(t, 2*testTTL, "a leads again with a new command", func() bool {
					return a.e.Status().IsLeader && len(procs.all()) == 2
				})
			})
		})
		t.Run(fmt.Sprintf("exit/code-%d", code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := electortest.NewCluster()
				procs := &fakeStarter{onTerm: 0}
				a := start(t, c, "a", procs, func(cfg *Config) { cfg.Exit = ExitStop })
				testkit.WaitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
				procs.last().exit(code)
				err := <-a.done
				a.cancel = nil
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Code != code {
					t.Fatalf("Run returned %v, want an ExitError with code %d", err, code)
				}
				if want := fmt.Sprintf("command: the command exited on its own (exit status %d)", code); err.Error() != want {
					t.Errorf("Run's error says %q, want %q", err, want)
				}
				if h := lockHolder(t, c.Client(), elector.LockLeases).HolderIdentity; h != "" {
					t.Errorf("lock holder %q after the command exited, want released", h)
				}
			})
		})
	}
}

// TestCommandThatCannotStartStepsDown: a command that fails to start counts
// as an exit with 127 (not found) and steps down like one.
func TestCommandThatCannotStartStepsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{fail: fmt.Errorf("fork/exec /x: %w", os.ErrNotExist)}
		a := start(t, c, "a", procs, nil)
		testkit.WaitFor(t, testTTL, "a start is tried", func() bool {
			return testutil.ToFloat64(a.cmd.metrics.exits.WithLabelValues("127")) == 1
		})
		testkit.WaitFor(t, testTTL, "the lock is released", func() bool {
			return lockHolder(t, c.Client(), elector.LockLeases).HolderIdentity == ""
		})
		if a.e.Status().IsLeader {
			t.Errorf("a still leads after its command could not start")
		}
		if got, _ := reported(t, a.e); got != (Status{State: NotRunning}) {
			t.Errorf("command status %+v after a failed start, want not running", got)
		}
	})
}

// TestSignalForwardsToTheRunningCommand: Signal reaches the command's
// process alone while it runs, and says ErrNotRunning otherwise.
func TestSignalForwardsToTheRunningCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{onTerm: 0}
		a := start(t, c, "a", procs, nil)
		if err := a.cmd.Signal(syscall.SIGHUP); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Signal before the term: %v, want ErrNotRunning", err)
		}
		testkit.WaitFor(t, testTTL, "a command runs", func() bool { return procs.last() != nil })
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
			if err := a.cmd.Signal(sig); err != nil {
				t.Errorf("Signal(%v): %v", sig, err)
			}
		}
		p := procs.last()
		p.mu.Lock()
		got := slices.Clone(p.other)
		p.mu.Unlock()
		if want := []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}; !slices.Equal(got, want) {
			t.Errorf("the command got %v, want %v (negative: sent to the group)", got, want)
		}
		if err := a.cmd.Signal(notASignal{}); err == nil || !strings.Contains(err.Error(), "not a system signal") {
			t.Errorf("Signal of a foreign os.Signal: %v, want an error", err)
		}
		a.stop(t)
		if err := a.cmd.Signal(syscall.SIGHUP); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Signal after Run: %v, want ErrNotRunning", err)
		}
		var zero *Command
		if err := zero.Signal(syscall.SIGHUP); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Signal on a nil Command: %v, want ErrNotRunning", err)
		}
	})
}

// notASignal is an os.Signal that is no system signal.
type notASignal struct{}

func (notASignal) String() string { return "not a signal" }
func (notASignal) Signal()        {}

// TestCommandStatusIsRunningBeforeTheCommandActs: Status says the command
// runs from before it is started, so a command that acts at once is never
// seen acting while Status says not_running.
func TestCommandStatusIsRunningBeforeTheCommandActs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{}
		e, cmd := newPair(t, c.Client(), "a", elector.LockLeases, testTTL, procs, nil)
		var during, duringOwn atomic.Value
		// Set before Run starts, so read by lead without a data race.
		cmd.start = func(path string, argv, env []string) (process, error) {
			// As the command's first act sees it.
			s, _ := reported(t, e)
			during.Store(s.State)
			duringOwn.Store(cmd.Status().State)
			return procs.start(path, argv, env)
		}
		runCandidate(t, "a", e, cmd)
		testkit.WaitFor(t, testTTL, "the command starts", func() bool { return procs.last() != nil })
		if during := during.Load(); during != Running {
			t.Errorf("the Elector's Status said %q while the command started, want %q", during, Running)
		}
		if during := duringOwn.Load(); during != Running {
			t.Errorf("Command.Status said %q while the command started, want %q", during, Running)
		}
	})
}

// TestRunRefusesAnElectorWithoutTheOptions: Run refuses an Elector that was
// not built with the Command's Options, one with another ID, a nil one, and
// a second Run at once; a Command not built with New refuses to run.
func TestRunRefusesAnElectorWithoutTheOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		cmd, err := New(testConfig("a", testTTL))
		if err != nil {
			t.Fatal(err)
		}
		cmd.start = (&fakeStarter{}).start
		plain, err := elector.New(testElection, elector.WithClient(c.Client()), elector.WithID("a"), elector.WithTTL(testTTL))
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Run(context.Background(), plain); err == nil || !strings.Contains(err.Error(), "stop grace is 0s, not the command's grace period 2s") {
			t.Errorf("Run with an Elector built without the Options: %v, want the stop grace refused", err)
		}
		other, err := elector.New(testElection, append([]elector.Option{elector.WithClient(c.Client()), elector.WithID("b"),
			elector.WithTTL(testTTL)}, cmd.Options()...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Run(context.Background(), other); err == nil || !strings.Contains(err.Error(), `the Elector's ID is "b", not Config.ID "a"`) {
			t.Errorf("Run with an Elector of another ID: %v, want it refused", err)
		}
		if err := cmd.Run(context.Background(), nil); err == nil {
			t.Error("Run with a nil Elector = nil, want an error")
		}
		var zero Command
		if err := zero.Run(context.Background(), other); !errors.Is(err, errNotBuilt) {
			t.Errorf("Run on a zero Command: %v, want %v", err, errNotBuilt)
		}
		if s := zero.Status(); s != (Status{State: NotRunning}) {
			t.Errorf("a zero Command's status %+v, want not running", s)
		}

		e, err := elector.New(testElection, append([]elector.Option{elector.WithClient(c.Client()), elector.WithID("a"),
			elector.WithTTL(testTTL)}, cmd.Options()...)...)
		if err != nil {
			t.Fatal(err)
		}
		first := runCandidate(t, "a", e, cmd)
		synctest.Wait()
		if err := cmd.Run(context.Background(), e); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("a second Run at once: %v, want ErrAlreadyRunning", err)
		}
		first.stop(t)
	})
}

// TestElectorRunWithoutCommandRunStartsNothing: an Elector built with the
// Options but run with its own Run leads without starting the command,
// which would have no one to report to or step down through.
func TestElectorRunWithoutCommandRunStartsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		procs := &fakeStarter{}
		e, _ := newPair(t, c.Client(), "a", elector.LockLeases, testTTL, procs, nil)
		a := runCandidate(t, "a", e, nil)
		testkit.WaitFor(t, testTTL, "a leads", func() bool { return e.Status().IsLeader })
		testkit.Settle(testRetry)
		if n := len(procs.all()); n != 0 {
			t.Errorf("%d commands started without Command.Run, want none", n)
		}
		a.stop(t)
	})
}

// TestNewValidatesTheConfig covers every bad Config, all reported at once,
// and the default grace period, which the Options pass on as the stop
// grace.
func TestNewValidatesTheConfig(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "data")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"empty", func(c *Config) { c.Name = "" }, "command: the command is empty"},
		{"blank", func(c *Config) { c.Name = "  " }, "command: the command is empty"},
		{"not found", func(c *Config) { c.Name = "no-such-command-k8s-elector" }, `command: the command "no-such-command-k8s-elector" cannot be run: executable file not found in $PATH`},
		{"not executable", func(c *Config) { c.Name = notExec }, fmt.Sprintf("command: the command %q cannot be run: permission denied", notExec)},
		{"directory", func(c *Config) { c.Name = dir }, fmt.Sprintf("command: the command %q cannot be run: is a directory", dir)},
		{"negative grace", func(c *Config) { c.Grace = -time.Second }, "command: command grace period -1s is negative"},
		{"grace of a TTL", func(c *Config) { c.Timings = elector.DefaultTimings(6 * time.Second); c.Grace = 6 * time.Second },
			"command: command grace period 6s must be shorter than the TTL 6s"},
		{"grace too long", func(c *Config) { c.Timings = elector.DefaultTimings(6 * time.Second); c.Grace = 3 * time.Second },
			"command: command grace period 3s is too long for a TTL of 6s"},
		{"no room", func(c *Config) { c.Timings = elector.DefaultTimings(time.Second) }, "command: TTL 1s leaves no room for a command grace period"},
		{"no timings", func(c *Config) { c.Timings = elector.Timings{} }, "command: Config.Timings has no TTL"},
		{"exit policy", func(c *Config) { c.Exit = "restart" }, `command: command exit policy "restart" is not supported: want resign or exit`},
		{"no election", func(c *Config) { c.Election = "" }, "command: Config.Election is empty"},
		{"no namespace", func(c *Config) { c.Namespace = "" }, "command: Config.Namespace is empty"},
		{"no ID", func(c *Config) { c.ID = "" }, "command: Config.ID is empty"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("a", 10*time.Second)
			tc.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
	t.Run("all at once", func(t *testing.T) {
		_, err := New(Config{Grace: -time.Second, Timings: elector.DefaultTimings(testTTL), Exit: "restart"})
		if err == nil {
			t.Fatal("New of an empty Config = nil, want errors")
		}
		for _, want := range []string{"the command is empty", "Config.Election is empty", "Config.Namespace is empty",
			"Config.ID is empty", "is not supported", "is negative"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("New: %v, want %q among the errors", err, want)
			}
		}
	})
	if os.Geteuid() == 0 {
		t.Log("running as root: the permission check still holds, since the file has no execute bit")
	}
	for _, tc := range []struct {
		ttl, grace, want time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second / 3},
		{6 * time.Second, 0, 2 * time.Second},
		{4 * time.Second, 0, 4 * time.Second / 3},
		{3 * time.Second, 0, time.Second},
		{2 * time.Second, 0, elector.DefaultTimings(2 * time.Second).MaxStopGrace},
		{6 * time.Second, 2500 * time.Millisecond, 2500 * time.Millisecond},
	} {
		cfg := testConfig("a", tc.ttl)
		cfg.Grace = tc.grace
		cmd, err := New(cfg)
		if err != nil {
			t.Fatalf("TTL %s, grace %s: %v", tc.ttl, tc.grace, err)
		}
		if cmd.Grace() != tc.want {
			t.Errorf("TTL %s, grace %s: got grace %s, want %s", tc.ttl, tc.grace, cmd.Grace(), tc.want)
		}
		if tc.grace == 0 && DefaultGrace(cfg.Timings) != tc.want {
			t.Errorf("DefaultGrace(TTL %s) = %s, want %s", tc.ttl, DefaultGrace(cfg.Timings), tc.want)
		}
		e, err := elector.New(testElection, append([]elector.Option{elector.WithClient(electortest.NewCluster().Client()),
			elector.WithID("a"), elector.WithTTL(tc.ttl)}, cmd.Options()...)...)
		if err != nil {
			t.Fatalf("TTL %s, grace %s: the Elector refuses the Options: %v", tc.ttl, tc.grace, err)
		}
		if g := e.Timings().StopGrace; g != tc.want {
			t.Errorf("TTL %s, grace %s: the Elector's stop grace %s, want %s", tc.ttl, tc.grace, g, tc.want)
		}
	}
}

// TestMetricsHaveTheirNamesAndLabels: the metrics keep the names, help
// texts and constant labels that GET /metrics has always served.
func TestMetricsHaveTheirNamesAndLabels(t *testing.T) {
	cmd, err := New(testConfig("a", testTTL))
	if err != nil {
		t.Fatal(err)
	}
	cmd.metrics.exited(3)
	want := `
# HELP k8s_elector_command_exits_total Exits of the command, by exit code (128 plus the signal number for a signal; 126 and 127 when it could not be started).
# TYPE k8s_elector_command_exits_total counter
k8s_elector_command_exits_total{code="3",election="default/example",identity="a"} 1
# HELP k8s_elector_command_kills_total Times the command was sent SIGKILL because it had not exited within its grace period.
# TYPE k8s_elector_command_kills_total counter
k8s_elector_command_kills_total{election="default/example",identity="a"} 0
# HELP k8s_elector_command_starts_total Times the command run while leading (the arguments after --) was started.
# TYPE k8s_elector_command_starts_total counter
k8s_elector_command_starts_total{election="default/example",identity="a"} 0
`
	if err := testutil.GatherAndCompare(cmd.Metrics(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	var zero *Command
	if mfs, err := zero.Metrics().Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("a nil Command's metrics: %v, %v; want none", mfs, err)
	}
}
