package e2e

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k8s-elector/elector/command"
	"github.com/k8s-elector/elector/test/e2e/internal/childwatch"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// The command's timings, as the library derives them from the TTL.
var (
	// defaultGrace is -exec-grace at its default.
	defaultGrace = command.DefaultGrace(timings)
	// driftMargin is what the fence keeps before valid_until.
	driftMargin = timings.DriftMargin
)

// Timing of the command scenarios (k8s-elector -- command), from the TTL of
// 6s.
const (
	// releasedWithin bounds a handover from a leader that released the
	// lock, from its command's exit to the next leader's command's start:
	// well under a TTL, which a lock that was not released takes to run
	// out (watch-mode followers take a released lock within milliseconds).
	releasedWithin = ttl / 2
	// deathSlack is what a loaded 2-core machine may add to a signal's
	// delivery, the elector's timers and a process's exit.
	deathSlack = time.Second
	// earlyTolerance is how much before its grace period a child that
	// ignores SIGTERM may be read dead: it records the SIGTERM a moment
	// after the elector sent it.
	earlyTolerance = 100 * time.Millisecond
	// pdeathsigWithin is the bound on the death of the command of
	// an elector that was SIGKILLed.
	pdeathsigWithin = 100 * time.Millisecond
	// sampleInterval is how often /proc is read for the children.
	sampleInterval = 10 * time.Millisecond
	// childExitAfter is how long a child that exits on its own runs.
	childExitAfter = 3 * time.Second
	// childStopDelay is how long a child takes to stop after SIGTERM, where
	// the scenario checks that the lock is released only once it has.
	childStopDelay = 500 * time.Millisecond
	// cmdElection is the election of every command scenario, each in a
	// namespace of its own.
	cmdElection = "command"
)

// cmdSuite is what the command scenarios share: the child program and one
// /proc sampler for all of them (each finds its own children by a marker).
type cmdSuite struct {
	child   string
	sampler *childwatch.Sampler
}

// TestCommand runs k8s-elector -- leaderchild in fleets of three electors and
// injects faults. The child records its PID, its token and its start and
// stop on CLOCK_MONOTONIC in a shared log, and writes with its token to a
// fenced store (history.Store) that the test serves over HTTP; a sampler
// reads from /proc every 10ms which children are alive (a zombie is dead).
// Over every scenario: never two children alive at once (except under
// SIGSTOP, the documented limit, where exactly one overlap is required),
// every new child's token greater than the last one's, no stale write
// accepted by the store, every child's environment as documented, and the
// invariants of TestFault over the electors' answers.
//
// The scenarios run in parallel as TestFault's do.
func TestCommand(t *testing.T) {
	parallelParent(t)
	s := &cmdSuite{child: buildLeaderChild(t)}
	s.sampler = childwatch.NewSampler(s.child, sampleInterval)
	t.Cleanup(func() {
		s.sampler.Stop()
		t.Logf("the /proc sampler's longest gap between two readings: %s", s.sampler.MaxGap().Round(time.Millisecond))
	})
	scenarios := []struct {
		name string
		run  func(t *testing.T, s *cmdSuite)
	}{
		{"leader SIGTERM", commandLeaderTerminated},
		{"leader SIGKILL", commandLeaderKilled},
		{"leader blackholed", func(t *testing.T, s *cmdSuite) { commandLeaderBlackholed(t, s, false) }},
		{"leader blackholed, child ignores SIGTERM", func(t *testing.T, s *cmdSuite) { commandLeaderBlackholed(t, s, true) }},
		{"child ignores SIGTERM", commandChildIgnoresSIGTERM},
		{"child exits 0, default policy resign", func(t *testing.T, s *cmdSuite) { commandChildExits(t, s, "", 0) }},
		{"child exits 3, resign", func(t *testing.T, s *cmdSuite) { commandChildExits(t, s, "resign", 3) }},
		{"child exits 0, exit", func(t *testing.T, s *cmdSuite) { commandChildExits(t, s, "exit", 0) }},
		{"child exits 3, exit", func(t *testing.T, s *cmdSuite) { commandChildExits(t, s, "exit", 3) }},
		{"leader SIGSTOP past the TTL", commandLeaderPaused},
	}
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			parallel(t)
			sc.run(t, s)
		})
	}
}

// buildLeaderChild builds cmd/leaderchild into a temporary directory and
// returns its absolute path, the argv[0] the sampler looks for.
func buildLeaderChild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "leaderchild")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/leaderchild")
	var out []byte
	var err error
	heavy(func() { out, err = cmd.CombinedOutput() })
	if err != nil {
		t.Fatalf("building cmd/leaderchild: %v\n%s", err, out)
	}
	return bin
}

// childStore is the fenced store the children write to, over HTTP.
type childStore struct {
	srv   *httptest.Server
	mu    sync.Mutex
	store *history.Store
	log   []childWrite
}

// childWrite is one write a child sent: Mono is when it sent it, Received
// when the store took it.
type childWrite struct {
	childwatch.WriteRequest
	Received int64
	Accepted bool
}

func (w childWrite) token() history.Token {
	return history.Token{UID: w.UID, Transitions: w.Transitions}
}

func newChildStore(t *testing.T) *childStore {
	cs := &childStore{store: history.NewStore()}
	cs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req childwatch.WriteRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cs.mu.Lock()
		ok := cs.store.Write(strconv.Itoa(req.PID), history.Token{UID: req.UID, Transitions: req.Transitions})
		cs.log = append(cs.log, childWrite{WriteRequest: req, Received: childwatch.Mono(), Accepted: ok})
		cs.mu.Unlock()
		_ = json.NewEncoder(w).Encode(childwatch.WriteReply{Accepted: ok})
	}))
	t.Cleanup(cs.srv.Close)
	return cs
}

// writes returns every write so far, in the order the store took them.
func (cs *childStore) writes() []childWrite {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Clone(cs.log)
}

// cmdFleet is a fault fleet whose electors run leaderchild.
type cmdFleet struct {
	*faultFleet
	s      *cmdSuite
	marker string // the children's -marker: the namespace, unique to the test
	events string // the children's shared log
	store  *childStore
}

// cmdOptions are what a scenario adds to the electors' flags and to the
// child's.
type cmdOptions struct {
	extra []string
	child []string
}

// start starts three electors of cmdElection in a new namespace, each
// behind a proxy of its own and running leaderchild while it leads.
func (s *cmdSuite) start(t *testing.T, o cmdOptions) *cmdFleet {
	t.Helper()
	f := &cmdFleet{s: s, events: filepath.Join(t.TempDir(), "events.jsonl")}
	f.faultFleet = newFaultFleet(t, "leases")
	f.marker = f.ns
	f.store = newChildStore(t)
	command := append([]string{s.child, childwatch.MarkerFlag + f.marker, "-log=" + f.events, "-store=" + f.store.srv.URL}, o.child...)
	// The electors' stdin is not /dev/null, so that the child's tells
	// whether its elector gave it /dev/null or its own.
	zero, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zero.Close() })
	for i := range 3 {
		f.add(fleet.Config{
			Binary: binary, Election: cmdElection, Namespace: f.ns, LockType: "leases", TTL: ttl,
			Extra: o.extra, Command: command, Stdin: zero,
		}, fmt.Sprintf("cmd-%d", i), false)
	}
	// Run before the electors' own cleanups, which wait for them: a child
	// holds its elector's stdout and stderr, so one that outlived its
	// elector would hold up that wait. It is a failure, and it must not
	// outlive the test.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the children:\n%s", describeChildren(f.children()))
		}
		for _, e := range f.electors {
			_ = e.Signal(syscall.SIGKILL)
		}
		time.Sleep(pdeathsigWithin + 2*sampleInterval)
		for _, pid := range childwatch.Scan(s.child, f.marker) {
			t.Errorf("child %d still runs after every elector was SIGKILLed: killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return f
}

// elector returns the elector id.
func (f *cmdFleet) elector(id string) *fleet.Elector {
	for _, e := range f.electors {
		if e.ID == id {
			return e
		}
	}
	f.t.Fatalf("no elector %q", id)
	return nil
}

// child is one run of the command: what it recorded of itself and what the
// sampler read of it. Instants are CLOCK_MONOTONIC nanoseconds; 0 is never.
type child struct {
	PID     int
	Elector string
	Token   history.Token
	Env     childwatch.Event // its start event
	Start   int64            // it recorded its start
	SIGTERM int64            // it first got SIGTERM
	Ignored bool             // and ignored it
	Stop    int64            // it exited 0 after SIGTERM
	Exit    int64            // it exited on its own
	Code    int
	Signals []string // forwarded signals, in order
	last    int64    // its last event

	Proc childwatch.Proc
	Seen bool // the sampler read it alive
}

// From is the earliest instant the child is known to have been alive.
func (c child) From() int64 {
	switch {
	case !c.Seen:
		return c.Start
	case c.Start == 0:
		return c.Proc.FirstAlive
	}
	return min(c.Start, c.Proc.FirstAlive)
}

// To is the latest instant the child is known to have been alive: a process
// that was alive at From and at To was alive in between.
func (c child) To() int64 { return max(c.last, c.Proc.LastAlive) }

// Dead is the first instant the sampler read the child dead; 0 if it did not.
func (c child) Dead() int64 { return c.Proc.Dead }

func (c child) String() string {
	s := fmt.Sprintf("child %d of %s, token %s: alive %s–%s", c.PID, c.Elector, c.Token, childwatch.Stamp(c.From()), childwatch.Stamp(c.To()))
	if c.SIGTERM != 0 {
		s += fmt.Sprintf(", SIGTERM %s (ignored %v)", childwatch.Stamp(c.SIGTERM), c.Ignored)
	}
	if c.Stop != 0 {
		s += ", stopped " + childwatch.Stamp(c.Stop)
	}
	if c.Exit != 0 {
		s += fmt.Sprintf(", exited %d %s", c.Code, childwatch.Stamp(c.Exit))
	}
	if c.Dead() != 0 {
		s += ", read dead " + childwatch.Stamp(c.Dead())
		if c.Proc.Zombie {
			s += " (zombie)"
		}
	}
	return s
}

func describeChildren(cs []child) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

// children returns every child of the fleet so far, by From.
func (f *cmdFleet) children() []child {
	events, err := childwatch.ReadEvents(f.events)
	if err != nil {
		f.t.Fatal(err)
	}
	byPID := map[int]*child{}
	var order []int
	get := func(pid int) *child {
		c := byPID[pid]
		if c == nil {
			c = &child{PID: pid}
			byPID[pid] = c
			order = append(order, pid)
		}
		return c
	}
	for _, e := range events {
		c := get(e.PID)
		c.last = max(c.last, e.Mono)
		switch e.Event {
		case childwatch.EventStart:
			c.Env, c.Start, c.Elector = e, e.Mono, e.Elector
			c.Token = history.Token{UID: e.UID, Transitions: e.Transitions}
		case childwatch.EventSIGTERM:
			if c.SIGTERM == 0 {
				c.SIGTERM, c.Ignored = e.Mono, e.Ignored
			}
		case childwatch.EventStop:
			c.Stop = e.Mono
		case childwatch.EventExit:
			c.Exit, c.Code = e.Mono, e.Code
		case childwatch.EventSignal:
			c.Signals = append(c.Signals, e.Signal)
		}
	}
	for _, p := range f.s.sampler.Procs(f.marker) {
		c := get(p.PID)
		c.Proc, c.Seen = p, true
	}
	var out []child
	for _, pid := range order {
		out = append(out, *byPID[pid])
	}
	slices.SortStableFunc(out, func(a, b child) int { return cmp.Compare(a.From(), b.From()) })
	return out
}

// waitChild waits up to limit for a child that recorded its start and that
// ok accepts, and returns it.
func (f *cmdFleet) waitChild(limit time.Duration, what string, ok func(child) bool) child {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, c := range f.children() {
			if c.Start != 0 && ok(c) {
				return c
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no %s within %s; the children:\n%s", what, limit, describeChildren(f.children()))
		}
		time.Sleep(sampleInterval)
	}
}

// childOf waits for the child of e that started after since.
func (f *cmdFleet) childOf(e *fleet.Elector, since int64) child {
	f.t.Helper()
	return f.waitChild(recoverWithin, "child of "+e.ID, func(c child) bool { return c.Elector == e.ID && c.Start > since })
}

// waitDead waits up to limit for the sampler to read c dead.
func (f *cmdFleet) waitDead(c child, limit time.Duration) child {
	f.t.Helper()
	return f.waitChild(limit, fmt.Sprintf("death of child %d", c.PID), func(x child) bool { return x.PID == c.PID && x.Dead() != 0 })
}

// find returns the child pid of cs.
func find(t *testing.T, cs []child, pid int) child {
	t.Helper()
	for _, c := range cs {
		if c.PID == pid {
			return c
		}
	}
	t.Fatalf("no child %d", pid)
	return child{}
}

// childOverlap is a stretch of time in which two children were both alive.
type childOverlap struct {
	A, B     child
	From, To int64
}

func (o childOverlap) String() string {
	return fmt.Sprintf("two children alive for %s from %s: %s; %s", time.Duration(o.To-o.From).Round(time.Millisecond),
		childwatch.Stamp(o.From), o.A, o.B)
}

// checkChildren checks the children over the whole scenario, with h the
// electors' answers, and returns them with the overlaps it found; exactly
// wantOverlaps are required, none but under SIGSTOP. Stale writes accepted
// by the store are a failure unless an overlap was expected; then they are
// returned for the scenario to judge.
func (f *cmdFleet) checkChildren(h history.History, wantOverlaps int) ([]child, []childOverlap, []string) {
	t := f.t
	t.Helper()
	cs := f.children()
	ids := map[string]int{}
	for _, e := range f.electors {
		ids[e.ID] = e.PID()
	}
	for _, c := range cs {
		switch {
		case c.Start == 0:
			t.Errorf("child %d never recorded its start (seen alive %s–%s)", c.PID, childwatch.Stamp(c.Proc.FirstAlive), childwatch.Stamp(c.Proc.LastAlive))
			continue
		case !c.Seen:
			t.Errorf("the sampler never read %s alive: it cannot see the children", c)
		}
		// The environment and the process the documentation promises.
		env := c.Env
		if env.Election != cmdElection || env.Namespace != f.ns {
			t.Errorf("%s: ELECTOR_ELECTION=%q ELECTOR_NAMESPACE=%q, want %q and %q", c, env.Election, env.Namespace, cmdElection, f.ns)
		}
		if pid, ok := ids[env.Elector]; !ok {
			t.Errorf("%s: ELECTOR_ID=%q names no elector", c, env.Elector)
		} else if env.PPID != pid {
			t.Errorf("%s: its parent is %d, want its elector %d", c, env.PPID, pid)
		}
		if env.UID == "" || strconv.FormatInt(env.Transitions, 10) != env.RawToken {
			t.Errorf("%s: ELECTOR_LOCK_UID=%q ELECTOR_LEADER_TRANSITIONS=%q, want a UID and a number", c, env.UID, env.RawToken)
		}
		if env.PGID != c.PID {
			t.Errorf("%s: process group %d, want one of its own (%d)", c, env.PGID, c.PID)
		}
		if env.Stdin != "/dev/null" {
			t.Errorf("%s: stdin is %q, want /dev/null", c, env.Stdin)
		}
		// Its elector reported its token while leading, and the child as
		// its running command.
		var leading, running bool
		for _, a := range h.Of(c.Elector) {
			leading = leading || a.Leading() && a.Token() == c.Token
			running = running || a.OK() && fleet.Command(a.Status).State == command.Running && fleet.Command(a.Status).PID == c.PID
		}
		if !leading {
			t.Errorf("%s: its elector never answered is_leader with that token", c)
		}
		if !running {
			t.Errorf("%s: its elector's GET / never named it as the running command", c)
		}
	}

	// Never two children alive at once.
	var overlaps []childOverlap
	for i, a := range cs {
		for _, b := range cs[i+1:] {
			if from, to := max(a.From(), b.From()), min(a.To(), b.To()); from < to {
				overlaps = append(overlaps, childOverlap{A: a, B: b, From: from, To: to})
			}
		}
	}
	if len(overlaps) != wantOverlaps {
		for _, o := range overlaps {
			t.Error(o)
		}
		if wantOverlaps > 0 {
			t.Errorf("%d times two children were alive at once, want %d", len(overlaps), wantOverlaps)
		}
	}

	// Every new child's token is greater than the last one's: the same lock
	// UID with more transitions, or a UID not seen before.
	started := slices.Clone(cs)
	slices.SortStableFunc(started, func(a, b child) int { return cmp.Compare(a.Start, b.Start) })
	epoch := map[string]int{}
	var prev *child
	for i := range started {
		c := &started[i]
		if c.Start == 0 {
			continue
		}
		if _, ok := epoch[c.Token.UID]; !ok {
			epoch[c.Token.UID] = len(epoch)
		} else if prev != nil && (c.Token.UID != prev.Token.UID || c.Token.Transitions <= prev.Token.Transitions) {
			t.Errorf("token did not grow: %s started after %s", c, prev)
		}
		prev = c
	}
	newer := func(a, b history.Token) bool {
		ea, eb := epoch[a.UID], epoch[b.UID]
		return ea > eb || ea == eb && a.Transitions > b.Transitions
	}

	// No stale write accepted: every write the store accepted was sent
	// before any child with a newer token started.
	writes := f.store.writes()
	var stale []string
	accepted := 0
	for _, w := range writes {
		if !w.Accepted {
			continue
		}
		accepted++
		for _, c := range started {
			if c.Start != 0 && newer(c.Token, w.token()) && c.Start < w.Mono {
				stale = append(stale, fmt.Sprintf("the store accepted child %d's write with token %s sent at %s, after %s",
					w.PID, w.token(), childwatch.Stamp(w.Mono), c))
				break
			}
		}
	}
	if wantOverlaps == 0 {
		for _, s := range stale {
			t.Error(s)
		}
	}
	if accepted == 0 {
		t.Error("the store accepted no write: no child wrote")
	}
	t.Logf("%d children; the store accepted %d writes (%d stale) and rejected %d; %d times two children were alive at once",
		len(cs), accepted, len(stale), len(writes)-accepted, len(overlaps))
	return cs, overlaps, stale
}

// metric returns the value of the series name of e's GET /metrics whose
// labels include labels (k="v", ...), and whether there is one.
func metric(t *testing.T, e *fleet.Elector, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + e.Addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", e.ID, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(ls, l)
		}
		if !all {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("GET /metrics on %s: %q: %v", e.ID, line, err)
		}
		return v, true
	}
	return 0, false
}

// wantMetric checks one series of e's metrics.
func wantMetric(t *testing.T, e *fleet.Elector, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := metric(t, e, name, labels...)
	switch {
	case !ok && want != 0:
		t.Errorf("%s's GET /metrics has no %s%v, want %v", e.ID, name, labels, want)
	case got != want:
		t.Errorf("%s's %s%v = %v, want %v", e.ID, name, labels, got, want)
	}
}

func ms(d int64) string { return time.Duration(d).Round(time.Millisecond).String() }

// SIGTERM to the leading elector: its child gets SIGTERM and takes
// childStopDelay to exit, and the lock is released only then, so the next
// leader's child starts after it, and soon. Before that, SIGHUP, SIGUSR1 and
// SIGUSR2 to the elector reach the child and change nothing else.
func commandLeaderTerminated(t *testing.T, s *cmdSuite) {
	f := s.start(t, cmdOptions{child: []string{"-stop-delay=" + childStopDelay.String()}})
	l := f.settle()
	c := f.childOf(l, 0)
	f.mark("SIGHUP, SIGUSR1, SIGUSR2 to %s", l.ID)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := l.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	c = f.waitChild(deathSlack, "forwarded signals", func(x child) bool { return x.PID == c.PID && len(x.Signals) >= 3 })
	if got := slices.Sorted(slices.Values(c.Signals)); !slices.Equal(got, []string{"SIGHUP", "SIGUSR1", "SIGUSR2"}) {
		t.Errorf("the child got %v, want SIGHUP, SIGUSR1 and SIGUSR2", c.Signals)
	}
	time.Sleep(retry)
	if latest, _ := f.rec.Latest(l.ID); !latest.Leading() || fleet.Command(latest.Status).PID != c.PID {
		t.Errorf("after the forwarded signals, %s answers is_leader=%v command=%+v, want it leading with child %d", l.ID, latest.Leading(), fleet.Command(latest.Status), c.PID)
	}

	term := f.mark("SIGTERM %s", l.ID)
	if err := l.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next := f.waitChild(ttl, "child of another elector", func(x child) bool { return x.Elector != l.ID && x.Start > childwatch.MonoOf(term) })
	code, err := l.Wait(2 * ttl)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", l.ID, code)
	}
	time.Sleep(retry)
	h := f.check(term)
	cs, _, _ := f.checkChildren(h, 0)
	c = find(t, cs, c.PID)
	switch {
	case c.SIGTERM == 0 || c.Stop == 0:
		t.Errorf("%s: want it to have got SIGTERM and exited on it", c)
	case c.Dead() == 0:
		t.Errorf("%s: still alive after its elector exited", c)
	case c.Stop >= next.Start || c.To() >= next.From():
		t.Errorf("%s: still alive when %s started", c, next)
	}
	took := next.Start - childwatch.MonoOf(term)
	if took > int64(releasedWithin) {
		t.Errorf("%s started %s after the SIGTERM, want within %s: the lock was not released", next, ms(took), releasedWithin)
	}
	if c.Stop != 0 {
		t.Logf("SIGTERM to %s: its child stopped %s later, and %s's child started %s after the SIGTERM",
			l.ID, ms(c.Stop-childwatch.MonoOf(term)), next.Elector, ms(took))
	}
	if !strings.Contains(l.Logs(), "released lock") {
		t.Errorf("%s did not log that it released the lock", l.ID)
	}
}

// SIGKILL to the leading elector: the kernel kills its child with it.
func commandLeaderKilled(t *testing.T, s *cmdSuite) {
	f := s.start(t, cmdOptions{})
	l := f.settle()
	c := f.childOf(l, 0)
	// Beside the sampler, which a loaded machine may delay, the child's
	// /proc entry is read every millisecond from just before the kill.
	direct := watchDeath(c.PID, 2*time.Second)
	killed := f.mark("SIGKILL %s", l.ID)
	k := childwatch.Mono()
	if err := l.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c = f.waitDead(c, 2*time.Second)
	dead := c.Dead()
	if d := <-direct; d != 0 && d < dead {
		dead = d
	}
	if died := dead - k; died > int64(pdeathsigWithin) {
		t.Errorf("%s: read dead %s after its elector's SIGKILL (last read alive %s after), want within %s",
			c, ms(died), ms(c.Proc.LastAlive-k), pdeathsigWithin)
	}
	t.Logf("SIGKILL to %s: its child was read dead %s later (the sampler: %s; last read alive %s after)", l.ID,
		time.Duration(dead-k).Round(100*time.Microsecond), time.Duration(c.Dead()-k).Round(100*time.Microsecond),
		time.Duration(c.Proc.LastAlive-k).Round(100*time.Microsecond))
	next := f.waitChild(2*ttl+faultSlack, "child of another elector", func(x child) bool { return x.Elector != l.ID && x.Start > k })
	t.Logf("%s's child started %s after the SIGKILL", next.Elector, ms(next.Start-k))
	time.Sleep(retry)
	h := f.check(killed)
	f.checkChildren(h, 0)
}

// watchDeath reads the state of process pid every millisecond for up to
// limit, and sends the first instant it read it dead (a zombie, or gone), or
// 0.
func watchDeath(pid int, limit time.Duration) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			state, _, err := childwatch.ReadStat(pid)
			if now := childwatch.Mono(); err != nil || state == 'Z' || state == 'X' {
				out <- now
				return
			}
			time.Sleep(time.Millisecond)
		}
		out <- 0
	}()
	return out
}

// The leading elector is cut off from the API server for 2 × TTL: its term
// ends before its lease, and its child is dead before the valid_until it
// last reported (with ignoreTerm, the child ignores SIGTERM and is killed by
// then); the next leader's child starts only after it.
func commandLeaderBlackholed(t *testing.T, s *cmdSuite, ignoreTerm bool) {
	var o cmdOptions
	if ignoreTerm {
		o.child = []string{"-ignore-term"}
	}
	f := s.start(t, o)
	l := f.settle()
	c := f.childOf(l, 0)
	cut := f.mark("blackhole %s for 2 × TTL", l.ID)
	f.proxy(l).Blackhole()
	time.Sleep(2 * ttl)
	healed := f.mark("heal %s", l.ID)
	f.proxy(l).Pass()
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)
	cs, _, _ := f.checkChildren(h, 0)
	c = find(t, cs, c.PID)

	var last history.Sample
	for _, a := range h.Of(l.ID) {
		if a.Leading() && a.Start.Before(healed) {
			last = a
		}
	}
	if last.Status.ValidUntil.IsZero() {
		t.Fatalf("%s never answered is_leader", l.ID)
	}
	vu := childwatch.MonoOf(last.Status.ValidUntil)
	t.Logf("%s's last is_leader answer (%s) had valid_until %s", l.ID, childwatch.Stamp(childwatch.MonoOf(last.End)), childwatch.Stamp(vu))
	switch {
	case c.Dead() == 0:
		t.Errorf("%s: still alive after its elector was cut off for 2 × TTL", c)
	case c.To() >= vu || c.Dead() >= vu:
		t.Errorf("%s: alive until %s, read dead %s, want dead before valid_until %s", c, childwatch.Stamp(c.To()), childwatch.Stamp(c.Dead()), childwatch.Stamp(vu))
	}
	// The term ends, and the child gets SIGTERM, grace + TTL/50 before
	// valid_until at the latest.
	if termBy := vu - int64(defaultGrace+driftMargin); c.SIGTERM == 0 || c.SIGTERM > termBy+int64(earlyTolerance) {
		t.Errorf("%s: want SIGTERM by %s, grace + TTL/50 before valid_until", c, childwatch.Stamp(termBy))
	}
	switch {
	case ignoreTerm && (c.Stop != 0 || !c.Ignored):
		t.Errorf("%s: want it to have ignored SIGTERM", c)
	case !ignoreTerm && c.Stop == 0:
		t.Errorf("%s: want it to have stopped on SIGTERM", c)
	}
	if c.SIGTERM != 0 && c.Dead() != 0 {
		t.Logf("fence: %s's child got SIGTERM %s and was read dead %s before valid_until", l.ID, ms(vu-c.SIGTERM), ms(vu-c.Dead()))
	}
	kills := 0.0
	if ignoreTerm {
		kills = 1
	}
	wantMetric(t, l, kills, "k8s_elector_command_kills_total")

	var next *child
	for _, x := range cs {
		if x.Elector != l.ID && x.Start > childwatch.MonoOf(cut) {
			next = &x
			break
		}
	}
	switch {
	case next == nil:
		t.Errorf("no other elector's child started after %s was cut off", l.ID)
	case next.From() <= vu:
		t.Errorf("%s started before %s's valid_until %s", next, l.ID, childwatch.Stamp(vu))
	default:
		t.Logf("%s's child started %s after valid_until", next.Elector, ms(next.From()-vu))
	}
}

// A child that ignores SIGTERM is SIGKILLed at the end of -exec-grace
// (1s) when its elector resigns; meanwhile GET / reports it stopping, and
// the lock is released once it is dead.
func commandChildIgnoresSIGTERM(t *testing.T, s *cmdSuite) {
	const grace = time.Second
	f := s.start(t, cmdOptions{extra: []string{"-exec-grace=" + grace.String(), "-allow-resign"}, child: []string{"-ignore-term"}})
	l := f.settle()
	c := f.childOf(l, 0)
	resigned := f.mark("POST /resign to %s", l.ID)
	resp, err := (&http.Client{Timeout: 2 * ttl}).Post("http://"+l.Addr+"/resign", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /resign: %s %s", resp.Status, body)
	}
	c = f.waitDead(c, grace+deathSlack)
	next := f.waitChild(releasedWithin, "child of another elector", func(x child) bool { return x.Elector != l.ID && x.Start > childwatch.MonoOf(resigned) })
	time.Sleep(retry)
	wantMetric(t, l, 1, "k8s_elector_command_kills_total")
	h := f.check(resigned)
	cs, _, _ := f.checkChildren(h, 0)
	c = find(t, cs, c.PID)

	if c.SIGTERM == 0 || !c.Ignored || c.Stop != 0 {
		t.Fatalf("%s: want it to have got SIGTERM, ignored it, and been killed", c)
	}
	died := c.Dead() - c.SIGTERM
	switch {
	case died < int64(grace-earlyTolerance):
		t.Errorf("%s: read dead %s after SIGTERM, before the grace period of %s", c, ms(died), grace)
	case died > int64(grace+deathSlack):
		t.Errorf("%s: read dead %s after SIGTERM, want at the grace period of %s (+%s slack)", c, ms(died), grace, deathSlack)
	}
	t.Logf("the child that ignores SIGTERM was read dead %s after it (grace %s)", ms(died), grace)
	// While it stops, GET / says so and does not claim leadership.
	stopping := 0
	for _, a := range h.Of(l.ID) {
		if a.OK() && fleet.Command(a.Status).State == command.Stopping {
			stopping++
			if a.Status.IsLeader || fleet.Command(a.Status).PID != c.PID {
				t.Errorf("%s answered is_leader=%v command=%+v while stopping child %d", l.ID, a.Status.IsLeader, fleet.Command(a.Status), c.PID)
			}
		}
	}
	if stopping == 0 {
		t.Errorf("%s never answered command state %q during the %s grace period", l.ID, command.Stopping, grace)
	}
	if latest, _ := f.rec.Latest(l.ID); fleet.Command(latest.Status) != (command.Status{State: command.NotRunning}) {
		t.Errorf("%s's command after the kill: %+v, want not_running without a pid", l.ID, fleet.Command(latest.Status))
	}
	// The lock was released after the child died: the next one started
	// soon after (no overlap is checked above).
	if took := next.Start - c.Dead(); took > int64(releasedWithin) {
		t.Errorf("%s started %s after the old child was killed, want within %s: the lock was not released", next, ms(took), releasedWithin)
	}
}

// exitLine matches the elector's log line of a command's exit code.
func exitLine(code int) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^.*command.*"code":` + strconv.Itoa(code) + `\b.*$`)
}

// A child that exits on its own with code, under -exec-exit=policy ("" for
// the default): resign releases the lock at once, another elector's child
// starts, and the elector leads again only after a TTL out; exit releases
// the lock and exits with the child's code.
func commandChildExits(t *testing.T, s *cmdSuite, policy string, code int) {
	o := cmdOptions{child: []string{"-exit-after=" + childExitAfter.String(), "-exit-code=" + strconv.Itoa(code)}}
	if policy != "" {
		o.extra = []string{"-exec-exit=" + policy}
	}
	f := s.start(t, o)
	c := f.waitChild(recoverWithin, "first child", func(child) bool { return true })
	l := f.elector(c.Elector)
	f.mark("%s's child %d runs", l.ID, c.PID)
	c = f.waitChild(childExitAfter+deathSlack, "exit of the first child", func(x child) bool { return x.PID == c.PID && x.Exit != 0 })
	f.mark("%s's child exited %d", l.ID, code)
	next := f.waitChild(releasedWithin, "child of another elector", func(x child) bool { return x.Elector != l.ID && x.Start > c.Exit })
	took := next.Start - c.Exit
	if took > int64(releasedWithin) {
		t.Errorf("%s started %s after %s's child exited, want within %s: the lock was not released", next, ms(took), l.ID, releasedWithin)
	}
	t.Logf("%s's child exited %d; %s's child started %s later", l.ID, code, next.Elector, ms(took))

	if policy == "exit" {
		got, err := l.Wait(releasedWithin)
		switch {
		case err != nil:
			t.Errorf("%s, under -exec-exit=exit: %v", l.ID, err)
		case got != code:
			t.Errorf("%s exited %d after its command exited %d, want %d", l.ID, got, code, code)
		}
		if !strings.Contains(l.Logs(), "released lock") {
			t.Errorf("%s did not log that it released the lock", l.ID)
		}
		// The next one does the same.
		n := f.elector(next.Elector)
		if got, err := n.Wait(childExitAfter + releasedWithin + deathSlack); err != nil || got != code {
			t.Errorf("%s exited %d (%v) after its command exited %d, want %d", n.ID, got, err, code, code)
		}
	} else {
		wantMetric(t, l, 1, "k8s_elector_command_exits_total", fmt.Sprintf(`code="%d"`, code))
		wantMetric(t, l, 1, "k8s_elector_command_starts_total")
		// Leadership goes round as every child exits; the first elector
		// rejoins once its TTL out has passed.
		again := f.waitChild(ttl+childExitAfter+releasedWithin+faultSlack, "second child of "+l.ID,
			func(x child) bool { return x.Elector == l.ID && x.Start > c.Exit })
		out := again.Start - c.Exit
		if out < int64(ttl) {
			t.Errorf("%s ran a child again %s after its child exited, want it out for a TTL (%s)", l.ID, ms(out), ttl)
		}
		t.Logf("%s led again %s after its child exited", l.ID, ms(out))
	}
	if !exitLine(code).MatchString(l.Logs()) {
		t.Errorf("%s did not log its command's exit code %d", l.ID, code)
	}
	time.Sleep(retry)
	h := f.check()
	cs, _, _ := f.checkChildren(h, 0)
	c = find(t, cs, c.PID)
	if c.SIGTERM != 0 {
		t.Errorf("%s: got SIGTERM, want its term ended only by its exit", c)
	}
}

// The leading elector is stopped for longer than its TTL: the documented
// limit. Its child runs on while its supervisor is frozen, so once another
// elector leads, two children are alive at once; the new one has the
// greater token, and the store rejects the old one's writes once it has seen
// the new token; after SIGCONT the old elector stops its child.
func commandLeaderPaused(t *testing.T, s *cmdSuite) {
	f := s.start(t, cmdOptions{})
	l := f.settle()
	c := f.childOf(l, 0)
	stopped := f.mark("SIGSTOP %s for TTL + 2s", l.ID)
	if err := l.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	next := f.waitChild(ttl+jitteredRetry+faultSlack, "child of another elector", func(x child) bool { return x.Elector != l.ID && x.Start > childwatch.MonoOf(stopped) })
	time.Sleep(time.Until(stopped.Add(ttl + 2*time.Second)))
	resumed := f.mark("SIGCONT %s", l.ID)
	if err := l.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c = f.waitDead(c, defaultGrace+deathSlack)
	time.Sleep(retry)
	h := f.check(resumed)
	cs, overlaps, stale := f.checkChildren(h, 1)
	c, next = find(t, cs, c.PID), find(t, cs, next.PID)

	if len(overlaps) == 1 {
		o := overlaps[0]
		if pair := []int{o.A.PID, o.B.PID}; !slices.Contains(pair, c.PID) || !slices.Contains(pair, next.PID) {
			t.Errorf("the overlap is not between the frozen elector's child and the next one: %s", o)
		}
		t.Logf("SIGSTOP past the TTL: two children alive for %s (the old one read dead %s after the new one started), the old one read dead %s after SIGCONT",
			ms(o.To-o.From), ms(c.Dead()-next.From()), ms(c.Dead()-childwatch.MonoOf(resumed)))
	}
	if c.Dead() < childwatch.MonoOf(resumed) {
		t.Errorf("%s: read dead before its elector's SIGCONT at %s", c, resumed.Format("15:04:05.000"))
	}
	if d := c.Dead() - childwatch.MonoOf(resumed); d > int64(defaultGrace+deathSlack) {
		t.Errorf("%s: read dead %s after its elector's SIGCONT, want within the grace period (%s) and slack", c, ms(d), defaultGrace)
	}
	t.Logf("after SIGCONT, the old child got SIGTERM: %v", c.SIGTERM != 0)

	// The store: from its first write with the new token on, every write of
	// the old child is rejected, and the old child did write then.
	var first int64
	rejected := 0
	for _, w := range f.store.writes() {
		switch {
		case first == 0 && w.Accepted && w.token() == next.Token:
			first = w.Received
		case first != 0 && w.PID == c.PID && w.Accepted:
			t.Errorf("the store accepted the old child's write (token %s) after it had seen %s", w.token(), next.Token)
		case first != 0 && w.PID == c.PID:
			rejected++
		}
	}
	if first == 0 {
		t.Errorf("the store never accepted a write with the new token %s", next.Token)
	}
	if rejected == 0 {
		t.Errorf("the store rejected no write of the old child after it saw the new token: the overlap was not fenced")
	}
	t.Logf("the store rejected %d writes of the old child after it saw the new token; %d stale writes were accepted before that", rejected, len(stale))
}

// TestCommandBadInput runs the real binary with a command it cannot run:
// exit 2 with one line of error, without a request to the API server.
func TestCommandBadInput(t *testing.T) {
	parallel(t)
	b := newBadInput(t, "command-bad-input")
	notExecutable := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"-election=command", "-namespace=default", "-kubeconfig=" + b.kubeconfig, "-ttl=" + ttl.String()}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command after --", []string{"--"}, "command"},
		{"command not found", []string{"--", "no-such-command-e2e", "arg"}, "no-such-command-e2e"},
		{"not executable", []string{"--", notExecutable}, notExecutable},
		{"negative grace", []string{"-exec-grace=-1s", "--", "sleep", "60"}, "grace period -1s"},
		{"grace of a TTL", []string{"-exec-grace=" + ttl.String(), "--", "sleep", "60"}, "grace period " + ttl.String()},
		{"unknown exit policy", []string{"-exec-exit=restart", "--", "sleep", "60"}, `exit policy "restart"`},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			b.refused(t, with(base, tc.args...), tc.want)
		})
	}
	b.untouched(t)
	// The same flags with a command that can run do reach the API server:
	// the check above can fail.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := b.command(ctx, with(base, "--", "sleep", "60")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for b.requests.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if b.requests.Load() == 0 {
		t.Errorf("an elector with a command it can run sent the API server no request within 10s")
	}
}

// TestCommandAsPID1 runs the elector as PID 1 of a new PID namespace, with a
// command that leaves an orphan: it is reparented to the elector, which
// must reap it when it exits, and go on running the command.
func TestCommandAsPID1(t *testing.T) {
	parallel(t)
	wrap := []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}
	if out, err := exec.Command(wrap[0], append(wrap[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("cannot run a process as PID 1 of a new PID namespace here (%s true: %v: %s)", strings.Join(wrap, " "), err, strings.TrimSpace(string(out)))
	}
	const orphanSleep = "1.357" // seconds: the orphan's argument, to find it by
	ns := newNamespace(t)
	e := startElector(t, fleet.Config{
		Binary: binary, Kubeconfig: cp.AdminKubeconfig, Election: "pid1", Namespace: ns, LockType: "leases", TTL: ttl,
		Wrap:    wrap,
		Command: []string{"/bin/sh", "-c", "(sleep " + orphanSleep + " &); exec sleep 60"},
	}, "pid1")
	// The elector is unshare's child, PID 1 in its namespace.
	var pid1 int
	deadline := time.Now().Add(5 * time.Second)
	for pid1 == 0 {
		pid1 = childOfPID(e.PID(), "")
		if time.Now().After(deadline) {
			t.Fatalf("no child of unshare (%d) within 5s", e.PID())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if nspid := nsPID(pid1); !strings.HasSuffix(nspid, "\t1") {
		t.Fatalf("the elector (%d) is not PID 1 of its namespace: NSpid %q", pid1, nspid)
	}
	waitLeader(t, ttl, e)
	// The orphan: reparented to PID 1, the elector, it exits after its
	// sleep, and must then be reaped.
	var orphan int
	deadline = time.Now().Add(5 * time.Second)
	for orphan == 0 {
		orphan = childOfPID(pid1, "sleep\x00"+orphanSleep+"\x00")
		if time.Now().After(deadline) {
			t.Fatalf("no orphan sleep %s reparented to the elector (%d) within 5s", orphanSleep, pid1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the elector is %d on the host, PID 1 in its namespace; the orphan %d was reparented to it", pid1, orphan)
	deadline = time.Now().Add(3*time.Second + deathSlack)
	for {
		state, ppid, err := childwatch.ReadStat(orphan)
		if err != nil || ppid != pid1 {
			break // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan %d is still there (state %c) %s after it was seen, want it reaped once it exits", orphan, state, 3*time.Second+deathSlack)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if z := zombiesOf(pid1); len(z) > 0 {
		t.Errorf("zombies under the elector: %v", z)
	}
	// Reaping the orphan did not take the command's exit: it still runs.
	s, err := e.Status(context.Background())
	switch {
	case err != nil:
		t.Fatal(err)
	case !s.IsLeader || fleet.Command(s).State != command.Running:
		t.Errorf("after the orphan was reaped: is_leader=%v command=%+v, want leading with the command running", s.IsLeader, fleet.Command(s))
	}
	t.Logf("command as seen by the elector: %+v (a PID of its namespace)", fleet.Command(s))
	// SIGTERM reaches PID 1 (it handles it), stops the command and exits 0.
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := e.Wait(2 * ttl)
	if err != nil || code != 0 {
		t.Errorf("after SIGTERM, the elector as PID 1 exited %d (%v), want 0", code, err)
	}
}

// childOfPID returns a child of parent whose command line begins with
// cmdline ("" for any), or 0.
func childOfPID(parent int, cmdline string) int {
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if _, ppid, err := childwatch.ReadStat(pid); err != nil || ppid != parent {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(raw), cmdline) {
			return pid
		}
	}
	return 0
}

// zombiesOf returns the children of parent that are zombies.
func zombiesOf(parent int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if state, ppid, err := childwatch.ReadStat(pid); err == nil && ppid == parent && state == 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// nsPID returns the NSpid line of /proc/<pid>/status: its PID in each
// namespace, outermost first.
func nsPID(pid int) string {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return strings.TrimRight(v, " ")
		}
	}
	return ""
}
