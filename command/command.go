// Package command runs a program as an Elector's leader work: the program
// runs while the candidate leads, and only then.
//
//	c, err := command.New(command.Config{
//		Name: "/app/my-singleton", Args: []string{"--flag", "value"},
//		Election: "my-singleton", Namespace: "default", ID: id,
//		Timings: elector.DefaultTimings(ttl),
//	})
//	if err != nil {
//		return err
//	}
//	e, err := elector.New("my-singleton", append(opts, c.Options()...)...)
//	if err != nil {
//		return err
//	}
//	err = c.Run(ctx, e) // instead of e.Run(ctx)
//
// The command starts when a term starts, in a process group of its own,
// with stdin closed (/dev/null), this process's stdout and stderr, and its
// environment plus the election's (EnvElection, EnvNamespace, EnvID) and
// the term's fencing token (EnvLockUID, EnvLeaderTransitions).
//
// When the term ends, for any reason, the process group gets SIGTERM, and
// SIGKILL after the grace period (Config.Grace); whatever is left of the
// group when the command exits is killed too. Options gives the Elector
// that grace period as its stop grace (elector.WithStopGrace), so the term
// ends early enough for the command to be dead before anyone else can lead:
// if renewals stop, it ends the grace period and the drift margin (TTL/50)
// before ValidUntil, and SIGKILL comes at the latest that margin before
// ValidUntil. The Elector releases the lock only after the command has
// exited, since it waits for its started-leading function. The command is
// started with the parent-death signal, so it dies with this process even
// when that is killed with SIGKILL. When the command exits on its own, what
// follows is Config.Exit's. As PID 1 (the init process of a container), Run
// also reaps the orphans the kernel hands it.
//
// Run publishes the command's Status in the Elector's (elector.Elector.Report,
// under StatusKey), so that GET / says "command":{"state":"running","pid":42}.
//
// A Command that is itself frozen (SIGSTOP, a frozen cgroup) cannot stop its
// command: writes that must never overlap still need the fencing token. It
// needs Linux.
package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	elector "github.com/k8s-elector/elector"
)

// The environment variables the command gets, on top of this process's own
// environment.
const (
	EnvElection          = "ELECTOR_ELECTION"           // the election's name
	EnvNamespace         = "ELECTOR_NAMESPACE"          // the lock object's namespace
	EnvID                = "ELECTOR_ID"                 // this candidate's ID
	EnvLockUID           = "ELECTOR_LOCK_UID"           // the term's fencing token: the lock object's UID,
	EnvLeaderTransitions = "ELECTOR_LEADER_TRANSITIONS" // and its transition count (see elector.Status)
)

// StatusKey is the key under which Run reports the command's Status to the
// Elector (elector.Elector.Report): the field of GET / that carries it.
const StatusKey = "command"

// ExitPolicy says what happens when the command exits on its own while the
// term lasts (Config.Exit).
type ExitPolicy string

// The exit policies.
const (
	// ExitResign steps down at once: the Elector releases the lock so that
	// another candidate takes over, stays out of the election for one TTL,
	// and campaigns again, starting the command anew if it leads.
	ExitResign ExitPolicy = "resign"
	// ExitStop ends the Elector's Run, which releases the lock (unless the
	// Elector was built with elector.WithReleaseOnCancel(false)), and makes
	// Run return an *ExitError with the command's exit code, so that a
	// process supervisor (the kubelet) restarts the whole container.
	ExitStop ExitPolicy = "exit"
)

// State is what the command is doing.
type State string

// The states of a command.
const (
	NotRunning State = "not_running"
	Running    State = "running"
	// Stopping: the term ended, the command's process group got SIGTERM,
	// and it has not exited yet.
	Stopping State = "stopping"
)

// Status is the state of the command, as Status returns it and Run reports
// it to the Elector under StatusKey.
type Status struct {
	State State `json:"state"`
	// PID is the command's process ID while it runs or stops, else 0.
	PID int `json:"pid,omitempty"`
}

// ExitError is what Run returns under ExitStop when the command exited on
// its own.
type ExitError struct {
	// Code is the command's exit code, or 128 plus the signal number if a
	// signal ended it, as shells report it; 127 if it could not be found
	// when the term started, 126 if it could not be started otherwise.
	Code int
	// Status is how the command ended, such as "exit status 3" or
	// "signal: killed".
	Status string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("command: the command exited on its own (%s)", e.Status)
}

// Errors returned by Signal and Run.
var (
	ErrNotRunning     = errors.New("command: not running")
	ErrAlreadyRunning = errors.New("command: already running")
)

// errNotBuilt is returned by Run on a Command that New did not build.
var errNotBuilt = errors.New("command: the Command was not built with New")

// Config is a command and what it needs to know of the election it runs
// in. Name, Election, Namespace, ID and Timings are required.
type Config struct {
	// Name is the program to run, looked up in $PATH unless it contains a
	// slash, and Args its arguments.
	Name string
	Args []string
	// Election, Namespace and ID are the election's name and namespace and
	// this candidate's ID, as given to the Elector: the command gets them
	// in its environment, and the metrics carry them as constant labels.
	// Run checks ID against the Elector's.
	Election, Namespace, ID string
	// Timings are the Elector's timings, such as elector.DefaultTimings(ttl)
	// for an Elector built with elector.WithTTL(ttl) and no other timing
	// option. They bound the grace period; their StopGrace is ignored.
	Timings elector.Timings
	// Grace is how long the command has to exit after SIGTERM before it
	// gets SIGKILL. It must be shorter than the TTL and at most
	// Timings.MaxStopGrace: the term, which ends this long plus the drift
	// margin before ValidUntil, must outlast the longest gap between the
	// renewals that followers see (Timings.HoldSpan). 0 means
	// DefaultGrace(Timings).
	Grace time.Duration
	// Exit is what happens when the command exits on its own while the
	// term lasts, or cannot be started: ExitResign or ExitStop. Either way,
	// the exit code is logged and counted in the metrics. "" means
	// ExitResign.
	Exit ExitPolicy
	// Logger logs the command's starts, stops and exits, named "command"
	// and with the election and identity. Default: the logger of the
	// started-leading function's context, which is the Elector's.
	Logger logr.Logger
}

// DefaultGrace returns the grace period of a Config whose Grace is 0: a
// third of the TTL, or t.MaxStopGrace if that is shorter (TTLs below 3s
// with the default timings). It is not positive when the TTL leaves no
// room for a grace period, which New reports.
func DefaultGrace(t elector.Timings) time.Duration {
	return min(t.TTL/3, t.MaxStopGrace)
}

// A Command runs a program as the leader work of one Elector. Build it
// with New, build the Elector with its Options, and run both with Run. All
// methods are safe for concurrent use; a Command runs at most one Run at a
// time.
type Command struct {
	path    string   // resolved by New
	argv    []string // the command as given
	env     []string // the election's variables, without the term's token
	id      string
	grace   time.Duration
	exit    ExitPolicy
	log     logr.Logger // Config.Logger, named; zero for the context's
	start   startFunc   // tests start fake processes
	metrics *metrics

	running atomic.Bool // a Run is running

	mu   sync.Mutex // guards the two below; taken after the reaper's
	run  *run       // the current Run's state, nil outside Run
	proc process    // the running command, nil between runs

	statusMu sync.Mutex // serialises status changes, so the Elector gets them in order
	status   Status
}

// run is the state of one Run.
type run struct {
	e       *elector.Elector
	timings elector.Timings // the Elector's
	ctx     context.Context // the Elector's Run's; it ends before Run returns
	cancel  context.CancelFunc
	reaper  *reaper        // orphans, when this process is PID 1
	resigns sync.WaitGroup // the step-downs lead started
	exited  atomic.Pointer[ExitError]
}

// New returns the Command that c describes. It validates c and reports all
// problems at once, joined (errors.Join), each with the value and what is
// accepted; its only I/O is looking the program up. It fails on platforms
// other than Linux.
func New(c Config) (*Command, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("command: "+format, args...))
	}
	var path string
	switch name := c.Name; {
	case !supported:
		bad("running a command needs Linux: only its parent-death signal makes the command die with this process")
	case strings.TrimSpace(name) == "":
		bad("the command is empty: want a program to run, such as %q", "/usr/local/bin/my-singleton")
	default:
		p, err := exec.LookPath(name)
		if ee, ok := errors.AsType[*exec.Error](err); ok {
			err = ee.Err // its message quotes the command again
		}
		if err != nil {
			bad("the command %q cannot be run: %v", name, err)
		}
		path = p
	}
	for _, f := range []struct{ name, value, want string }{
		{"Election", c.Election, "the election's name"},
		{"Namespace", c.Namespace, "the lock object's namespace"},
		{"ID", c.ID, "this candidate's ID, as given to the Elector"},
	} {
		if f.value == "" {
			bad("Config.%s is empty: want %s, for the command's environment", f.name, f.want)
		}
	}
	exit := c.Exit
	if exit == "" {
		exit = ExitResign
	}
	if exit != ExitResign && exit != ExitStop {
		bad("command exit policy %q is not supported: want %s or %s", exit, ExitResign, ExitStop)
	}
	grace, err := checkGrace(c.Grace, c.Timings)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	election := c.Namespace + "/" + c.Election
	cmd := &Command{
		path:    path,
		argv:    append([]string{c.Name}, c.Args...),
		env:     []string{EnvElection + "=" + c.Election, EnvNamespace + "=" + c.Namespace, EnvID + "=" + c.ID},
		id:      c.ID,
		grace:   grace,
		exit:    exit,
		start:   startProcess,
		metrics: newMetrics(election, c.ID),
		status:  Status{State: NotRunning},
	}
	if c.Logger.GetSink() != nil {
		cmd.log = c.Logger.WithName("command").WithValues("election", election, "identity", c.ID)
	}
	return cmd, nil
}

// checkGrace checks the grace period g against the timings t, and returns
// it with the default filled in.
func checkGrace(g time.Duration, t elector.Timings) (time.Duration, error) {
	bad := func(format string, args ...any) (time.Duration, error) {
		return 0, fmt.Errorf("command: "+format, args...)
	}
	if t.TTL <= 0 {
		return bad("Config.Timings has no TTL: want the Elector's timings, such as elector.DefaultTimings(ttl)")
	}
	ttl, longest, hold := t.TTL, t.MaxStopGrace, t.HoldSpan
	switch {
	case g < 0:
		return bad("command grace period %s is negative: want 0 (for the default, TTL/3) or more", g)
	case g >= ttl:
		return bad("command grace period %s must be shorter than the TTL %s", g, ttl)
	case longest <= 0:
		return bad("TTL %s leaves no room for a command grace period with a renew interval of %s: "+
			"the lease less twice its drift margin (%s) must outlast the longest gap between renewals that followers see (%s)",
			ttl, t.RenewInterval, ttl-2*t.DriftMargin, hold)
	case g > longest:
		return bad("command grace period %s is too long for a TTL of %s: the command is stopped the grace period "+
			"and the drift margin (%s) before the lease ends, and that must outlast the longest gap between "+
			"renewals that followers see (%s): want at most %s",
			g, ttl, t.DriftMargin, hold, longest)
	case g == 0:
		return DefaultGrace(t), nil
	}
	return g, nil
}

// Options returns the options that make an Elector run the command: its
// started-leading function, and the grace period as the stop grace. Pass
// them to elector.New, after any WithOnStartedLeading or WithStopGrace of
// one's own, which they replace.
func (c *Command) Options() []elector.Option {
	if c == nil {
		return nil
	}
	return []elector.Option{elector.WithOnStartedLeading(c.lead), elector.WithStopGrace(c.grace)}
}

// Grace returns the grace period, the default filled in.
func (c *Command) Grace() time.Duration {
	if c == nil {
		return 0
	}
	return c.grace
}

// Metrics returns the command's Prometheus metrics, to serve beside the
// Elector's (elector.WithMetricsGatherers).
func (c *Command) Metrics() prometheus.Gatherer {
	if c == nil || c.metrics == nil {
		return prometheus.Gatherers{}
	}
	return c.metrics.registry
}

// Status returns the command's state. It never blocks for long and is safe
// to call from any goroutine, before, during and after Run.
func (c *Command) Status() Status {
	if c == nil {
		return Status{State: NotRunning}
	}
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	if c.status.State == "" {
		return Status{State: NotRunning}
	}
	return c.status
}

// Signal sends sig to the command: to its process alone, not its process
// group, so that a signal it handles (SIGHUP to reload, say) does not kill
// the helpers it started. It returns ErrNotRunning if no command runs. The
// command-line tool forwards SIGHUP, SIGUSR1 and SIGUSR2 with it.
func (c *Command) Signal(sig os.Signal) error {
	if c == nil {
		return ErrNotRunning
	}
	ss, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("command: cannot send %v: not a system signal", sig)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return ErrNotRunning
	}
	if err := c.proc.signal(ss, false); err != nil {
		return fmt.Errorf("command: signal the command: %w", err)
	}
	return nil
}

// Run runs e, built with c's Options, until ctx is cancelled, with the
// command as its leader work; call it instead of e.Run. It reports the
// command's Status to e under StatusKey, from not_running at once, and, as
// PID 1, reaps orphans until it returns.
//
// It returns what e.Run returns, but under ExitStop when the command exited
// on its own while leading: then it ends e.Run, which releases the lock, and
// returns an *ExitError. It refuses an Elector that was not built with c's
// Options (its stop grace is not c's grace period) or that has another ID.
// Every goroutine Run starts has exited when it returns.
func (c *Command) Run(ctx context.Context, e *elector.Elector) error {
	if c == nil || c.start == nil {
		return errNotBuilt
	}
	if e == nil {
		return errors.New("command: the Elector is nil: pass the one built with the Command's Options")
	}
	t := e.Timings()
	if t.StopGrace != c.grace {
		return fmt.Errorf("command: the Elector's stop grace is %s, not the command's grace period %s: "+
			"build the Elector with the Command's Options", t.StopGrace, c.grace)
	}
	if id := e.Status().Node; id != c.id {
		return fmt.Errorf("command: the Elector's ID is %q, not Config.ID %q: the command would get the wrong one", id, c.id)
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer c.running.Store(false)
	if err := c.setStatus(e, Status{State: NotRunning}); err != nil {
		return fmt.Errorf("command: cannot report the command's status to the Elector: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{e: e, timings: t, ctx: ctx, cancel: cancel, reaper: newReaper(c.pid)}
	c.mu.Lock()
	c.run = r
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.run = nil
		c.mu.Unlock()
	}()
	// The reaper outlives e.Run's context: the command it stops after
	// that may leave orphans too.
	reapCtx, stopReaper := context.WithCancel(context.WithoutCancel(ctx))
	var reaping sync.WaitGroup
	if r.reaper != nil {
		reaping.Go(func() { r.reaper.run(reapCtx) })
	}

	err := e.Run(ctx)
	cancel() // ends the step-downs still waiting for the Elector
	r.resigns.Wait()
	stopReaper()
	reaping.Wait()
	if x := r.exited.Load(); x != nil {
		return x
	}
	return err
}

// current returns the state of the running Run, or nil.
func (c *Command) current() *run {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.run
}

// setStatus makes s the command's status, in Status and in the Elector's.
func (c *Command) setStatus(e *elector.Elector, s Status) error {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	c.status = s
	return e.Report(StatusKey, s)
}

// pid returns the running command's PID, or 0.
func (c *Command) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.pid()
}

// logger returns the logger of the command's lines.
func (c *Command) logger(ctx context.Context) logr.Logger {
	if c.log.GetSink() != nil {
		return c.log
	}
	return logr.FromContextOrDiscard(ctx).WithName("command")
}

// lookAgain is how soon lead reads the term's ValidUntil again when it
// looked at the instant the term was due to end and found it neither
// extended nor ended: the two timers raced.
const lookAgain = 10 * time.Millisecond

// lead is the started-leading function: it runs the command for the term
// of ctx and returns once the command has exited.
func (c *Command) lead(ctx context.Context) {
	tok, ok := elector.TermFromContext(ctx)
	if !ok {
		return
	}
	log := c.logger(ctx)
	r := c.current()
	if r == nil {
		log.Error(errors.New("command: the Elector runs without Command.Run"), "not starting the command: run the Elector with Command.Run")
		return
	}
	// SIGKILL comes before the lease ends whatever the grace period, at
	// the latest the drift margin before ValidUntil. The term hides
	// ValidUntil once it has ended, so lead keeps the last it read.
	validUntil := tok.ValidUntil()
	if validUntil.IsZero() {
		log.V(1).Info("the term ended before the command could start")
		return
	}
	// Linux sends the parent-death signal when the thread that started the
	// child exits, not the process: hold this goroutine's thread for as
	// long as the command runs, so that no other goroutine can end it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	env := append(append(os.Environ(), c.env...),
		EnvLockUID+"="+tok.LockUID,
		EnvLeaderTransitions+"="+strconv.Itoa(tok.LeaderTransitions))
	started := r.reaper.starting() // before c.mu: the reaper locks in that order
	// Running from before the start: the command may act before start
	// returns, and Status must never say not_running while it does.
	c.report(log, r, Status{State: Running})
	c.mu.Lock()
	p, err := c.start(c.path, c.argv, env)
	if err == nil {
		c.proc = p
	}
	c.mu.Unlock()
	started()
	if err != nil {
		c.report(log, r, Status{State: NotRunning})
		st := exitStatus{code: 126, status: err.Error()}
		if errors.Is(err, os.ErrNotExist) {
			st.code = 127
		}
		log.Error(err, "cannot start the command", "command", c.path)
		c.metrics.exited(st.code)
		c.exitedOnItsOwn(ctx, log, r, st)
		return
	}
	pid := p.pid()
	c.metrics.starts.Inc()
	c.report(log, r, Status{State: Running, PID: pid})
	log.Info("started the command", "pid", pid, "leaderTransitions", tok.LeaderTransitions)

	done := make(chan exitStatus, 1)
	go func() { done <- p.wait() }() // lead receives from done before it returns
	// The term ends, unless renewed, the grace period and the drift margin
	// before ValidUntil: look at ValidUntil again then, and so keep the
	// last one before the term ends, without polling.
	ahead := c.grace + r.timings.DriftMargin
	look := time.NewTimer(time.Until(validUntil.Add(-ahead)))
	defer look.Stop()
	for wait := true; wait; {
		select {
		case st := <-done:
			c.finish(log, r, p, st)
			c.exitedOnItsOwn(ctx, log, r, st)
			return
		case <-ctx.Done():
			wait = false
		case <-look.C:
			u := tok.ValidUntil()
			if u.IsZero() {
				continue // the term ended: ctx says so next
			}
			if u.After(validUntil) {
				validUntil = u
			}
			d := time.Until(validUntil.Add(-ahead))
			if d <= 0 {
				d = lookAgain
			}
			look.Reset(d)
		}
	}

	c.report(log, r, Status{State: Stopping, PID: pid})
	// SIGKILL after the grace period, and before the lease ends whatever
	// the grace period: a follower can take over from then.
	killAt := time.Now().Add(c.grace)
	if k := validUntil.Add(-r.timings.DriftMargin); k.Before(killAt) {
		killAt = k
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
		c.metrics.kills.Inc()
		st = <-done
	}
	c.finish(log, r, p, st)
}

// report publishes s from lead, which has no one to return an error to: it
// logs it. Run's first report was accepted, so no other is refused.
func (c *Command) report(log logr.Logger, r *run, s Status) {
	if err := c.setStatus(r.e, s); err != nil {
		log.Error(err, "cannot report the command's status", "state", s.State)
	}
}

// finish accounts for the exit of p: whatever is left of its process group
// is killed, so that nothing the command started outlives it.
func (c *Command) finish(log logr.Logger, r *run, p process, st exitStatus) {
	_ = p.signal(syscall.SIGKILL, true) // usually ESRCH: the group is gone
	c.mu.Lock()
	c.proc = nil
	c.mu.Unlock()
	r.reaper.rescan()
	c.metrics.exited(st.code)
	c.report(log, r, Status{State: NotRunning})
	log.Info("the command exited", "pid", p.pid(), "code", st.code, "status", st.status)
}

// exitedOnItsOwn applies the exit policy to a command that ended (or could
// not start) while its term lasted.
func (c *Command) exitedOnItsOwn(ctx context.Context, log logr.Logger, r *run, st exitStatus) {
	if ctx.Err() != nil {
		return // the term ended as it exited: nothing to step down from
	}
	if c.exit == ExitStop {
		log.Info("the command exited while leading: releasing the lock and stopping", "code", st.code)
		r.exited.CompareAndSwap(nil, &ExitError{Code: st.code, Status: st.status})
		r.cancel()
		return
	}
	cooldown := r.timings.TTL
	log.Info("the command exited while leading: stepping down", "code", st.code, "cooldown", cooldown)
	// Not from here: the step-down waits for this function to return.
	r.resigns.Go(func() {
		err := r.e.ResignFor(r.ctx, cooldown)
		switch {
		case err == nil:
		case errors.Is(err, elector.ErrNotLeader), r.ctx.Err() != nil:
			// The term or the Run ended meanwhile: nothing to step
			// down from.
			log.V(1).Info("not stepping down", "reason", err.Error())
		default:
			log.Error(err, "cannot step down")
		}
	})
}
