package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/k8s-elector/elector/command"
	"github.com/k8s-elector/elector/test/e2e/cmd/bench/internal/childrec"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// The command experiments: k8s-elector [flags] -- benchchild, which records
// when it starts, receives SIGTERM and exits (cmd/bench/internal/benchchild).

// commandResult holds the figures of the command experiments of one mode.
type commandResult struct {
	start     dist // term start (the "became leader" log line) → the command's first statement
	startLog  dist // term start → the "started the command" log line
	handover  dist // SIGTERM to the leader → the new leader's command starts
	toSigterm dist // SIGTERM to the leader → its command receives SIGTERM
	ownExit   dist // the command receives SIGTERM → its last statement
	afterExit dist // the old command's last statement → the new command's first
	lessExit  dist // handover less the command's own exit, per repetition
	cpu       *cpuResult
	killed    int // commands that were running when their elector got SIGKILL
	orphans   int // of those, the ones that outlived it
}

// cpuResult compares two leaders that run a sleeping command with two that
// run none, over the same window.
type cpuResult struct {
	window  time.Duration
	with    [2]procRates
	without [2]procRates
}

// figures returns one figure of the leaders with and without the command.
func (c *cpuResult) figures(get func(procRates) float64) (with, without [2]float64) {
	for i := range 2 {
		with[i], without[i] = get(c.with[i]), get(c.without[i])
	}
	return with, without
}

// procRates are a process's counters per second of a window.
type procRates struct {
	cpu      float64 // utime+stime, ms/s
	sched    float64 // on-CPU time from schedstat, ms/s
	vol      float64 // voluntary context switches/s
	nonvol   float64 // involuntary context switches/s
	resCPU   float64 // what rounding to whole ticks can move a difference of two cpu figures by, ms/s
	resCount float64 // one context switch over the window, 1/s
}

func (p procRates) cpuMS() float64    { return p.cpu }
func (p procRates) schedMS() float64  { return p.sched }
func (p procRates) volPS() float64    { return p.vol }
func (p procRates) nonvolPS() float64 { return p.nonvol }

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, 100
// on every Linux architecture Go supports.
const userHZ = 100

// procCounters are a process's cumulative counters at one instant.
type procCounters struct {
	mono        int64 // childrec.Mono when read
	ticks       int64 // utime+stime, clock ticks, every thread ever
	schedNS     int64 // sum of the live threads' sum_exec_runtime
	vol, nonvol int64 // sum of the live threads' context switches
}

// readProcCounters reads the counters of pid from /proc. utime and stime
// count the whole process; schedstat and the context switches are per thread
// and summed over the threads alive now.
func readProcCounters(pid int) (procCounters, error) {
	c := procCounters{mono: childrec.Mono()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return c, err
	}
	if c.ticks, err = statTicks(pid, b); err != nil {
		return c, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return c, err
	}
	for _, t := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s", pid, t.Name())
		ss, err1 := os.ReadFile(dir + "/schedstat")
		st, err2 := os.ReadFile(dir + "/status")
		if errors.Is(err1, fs.ErrNotExist) || errors.Is(err2, fs.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err := errors.Join(err1, err2); err != nil {
			return c, err
		}
		var ns int64
		if _, err := fmt.Sscan(string(ss), &ns); err != nil {
			return c, fmt.Errorf("%s/schedstat: %w", dir, err)
		}
		c.schedNS += ns
		if err := addSwitches(&c, dir, st); err != nil {
			return c, err
		}
	}
	return c, nil
}

// statTicks returns utime+stime of pid from b, the text of its
// /proc/<pid>/stat.
func statTicks(pid int, b []byte) (int64, error) {
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("pid %d: unexpected /proc/%d/stat %q", pid, pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: /proc/%d/stat: %w", pid, pid, err)
		}
		ticks += n
	}
	return ticks, nil
}

// addSwitches adds the context switches of st, the text of the status file
// of the thread whose directory is dir, to c.
func addSwitches(c *procCounters, dir string, st []byte) error {
	for line := range strings.Lines(string(st)) {
		for name, dst := range map[string]*int64{"voluntary_ctxt_switches:": &c.vol, "nonvoluntary_ctxt_switches:": &c.nonvol} {
			if rest, ok := strings.CutPrefix(line, name); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
				if err != nil {
					return fmt.Errorf("%s/status: %w", dir, err)
				}
				*dst += n
			}
		}
	}
	return nil
}

// perSecond returns the counters from c0 to c1 per second.
func perSecond(c0, c1 procCounters) procRates {
	s := float64(c1.mono-c0.mono) / 1e9
	return procRates{
		cpu:    float64(c1.ticks-c0.ticks) * (1000 / userHZ) / s,
		sched:  float64(c1.schedNS-c0.schedNS) / 1e6 / s,
		vol:    float64(c1.vol-c0.vol) / s,
		nonvol: float64(c1.nonvol-c0.nonvol) / s,
		// Each figure is the difference of two readings in whole ticks,
		// so it is off by less than one tick; the difference of two
		// figures by less than two.
		resCPU:   2 * (1000 / userHZ) / s,
		resCount: 1 / s,
	}
}

// withinNoise reports whether the mean of with exceeds the mean of without
// by no more than the spread: the larger difference within either pair, or
// what the counter's rounding can account for (res) if that is larger
// still. A command costs nothing if the electors that run one are not set
// apart from those that run none by more than they differ among themselves.
func withinNoise(with, without [2]float64, res float64) bool {
	spread := max(math.Abs(with[0]-with[1]), math.Abs(without[0]-without[1]), res)
	return (with[0]+with[1])/2-(without[0]+without[1])/2 <= spread
}

// commands runs the command experiments.
func (b *bench) commands(ctx context.Context, mode string) error {
	if !b.hasCommand {
		b.logf("command: n/a (the binary has no -exec-grace flag, so it runs no command)")
		return nil
	}
	if err := b.commandStarts(ctx, mode); err != nil {
		return fmt.Errorf("term start → command start: %w", err)
	}
	if err := b.commandHandovers(ctx, mode); err != nil {
		return fmt.Errorf("graceful handover of the command: %w", err)
	}
	if err := b.commandCPU(ctx, mode); err != nil {
		return fmt.Errorf("CPU with a sleeping command: %w", err)
	}
	r := b.result(mode).cmd
	b.logf("%d of %d commands running when their elector got SIGKILL died with it", r.killed-r.orphans, r.killed)
	return nil
}

// commandGroup is a group whose electors run benchchild, which appends its
// record to file.
type commandGroup struct {
	*group
	file string
}

// newCommandGroup returns a group whose electors run benchchild; every
// command of the group appends to one file.
func (b *bench) newCommandGroup(ctx context.Context, mode, election string, ttl time.Duration) *commandGroup {
	g := b.newGroup(ctx, mode, election, ttl)
	file := filepath.Join(b.tmp, "commands", election+".jsonl")
	// fleet appends Extra after its own flags: what follows -- is the command.
	g.cfg.Extra = append(slices.Clone(g.cfg.Extra), "--", b.child, "-out="+file)
	return &commandGroup{group: g, file: file}
}

// stop kills every elector of the group and checks that their commands died
// with them (the parent-death signal); any that did not is killed and
// counted.
func (g *commandGroup) stop(r *commandResult) {
	g.group.stop()
	evs, err := childrec.Read(g.file)
	if err != nil {
		g.b.logf("reading %s: %v", g.file, err)
		return
	}
	exited := map[int]bool{}
	for _, e := range evs {
		if e.Kind == childrec.Exit {
			exited[e.PID] = true
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, e := range evs {
		if e.Kind != childrec.Start || exited[e.PID] {
			continue
		}
		r.killed++
		for g.b.isChild(e.PID) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if g.b.isChild(e.PID) {
			g.b.logf("command %d (of elector %s, pid %d) still runs 2s after its elector's SIGKILL: killing it", e.PID, e.ID, e.PPID)
			_ = syscall.Kill(-e.PID, syscall.SIGKILL)
			_ = syscall.Kill(e.PID, syscall.SIGKILL)
			r.orphans++
		}
	}
}

// isChild reports whether pid runs benchchild: a zombie or a reused PID does
// not.
func (b *bench) isChild(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && exe == b.child
}

// awaitEvent waits up to limit for an event of the file for which ok is true.
// The bench reads the file every 5 ms; the figures come from the events'
// own times, not from when the bench saw them.
func (b *bench) awaitEvent(ctx context.Context, file string, limit time.Duration, what string, ok func(childrec.Event) bool) (childrec.Event, error) {
	deadline := time.Now().Add(limit)
	for {
		evs, err := childrec.Read(file)
		if err != nil {
			return childrec.Event{}, err
		}
		if i := slices.IndexFunc(evs, ok); i >= 0 {
			return evs[i], nil
		}
		if time.Now().After(deadline) {
			return childrec.Event{}, fmt.Errorf("%s: not within %s; %s has %d events", what, limit, file, len(evs))
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return childrec.Event{}, err
		}
	}
}

// logTime returns the time ("ts") of the first of e's JSON log lines whose
// message is msg.
func logTime(e *fleet.Elector, msg string) (time.Time, bool) { return logTimeIn(e.Logs(), msg) }

// logTimeIn returns the time ("ts") of the first JSON log line of logs whose
// message is msg.
func logTimeIn(logs, msg string) (time.Time, bool) {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var l struct {
			TS  string `json:"ts"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != msg {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, l.TS); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// awaitLog waits up to limit for e to log msg, and returns the line's time.
func awaitLog(ctx context.Context, e *fleet.Elector, limit time.Duration, msg string) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		if t, ok := logTime(e, msg); ok {
			return t, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s did not log %q within %s; log:\n%s", e.ID, msg, limit, tail(e.Logs(), 20))
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// checkRunning checks that GET / of e reports its command running with the
// PID that the command recorded.
func checkRunning(ctx context.Context, e *fleet.Elector, pid int) error {
	s, err := e.Status(ctx)
	if err != nil {
		return err
	}
	if c := fleet.Command(s); c.State != command.Running || c.PID != pid {
		return fmt.Errorf("GET / on %s reports the command %q with pid %d, want %q with pid %d",
			e.ID, fleet.Command(s).State, fleet.Command(s).PID, command.Running, pid)
	}
	return nil
}

// Log messages of k8s-elector that the command experiments time.
const (
	msgBecameLeader   = "became leader"
	msgStartedCommand = "started the command"
)

// commandStarts starts one elector with a command in fresh elections, and
// times from the start of its term to the start of its command.
func (b *bench) commandStarts(ctx context.Context, mode string) error {
	r := &b.result(mode).cmd
	for rep := range b.cmdReps {
		g := b.newCommandGroup(ctx, mode, fmt.Sprintf("cmdstart-%s-%d", mode, rep), defaultTTL)
		err := func() error {
			m, err := g.start("cmdstart")
			if err != nil {
				return err
			}
			ev, err := b.awaitEvent(ctx, g.file, time.Minute, "the command's start",
				func(e childrec.Event) bool { return e.Kind == childrec.Start })
			if err != nil {
				return fmt.Errorf("%w\n%s", err, g.describe())
			}
			if ev.PPID != m.e.PID() {
				return fmt.Errorf("the command %d has parent %d, not the elector %d", ev.PID, ev.PPID, m.e.PID())
			}
			if err := checkRunning(ctx, m.e, ev.PID); err != nil {
				return err
			}
			became, err := awaitLog(ctx, m.e, 5*time.Second, msgBecameLeader)
			if err != nil {
				return err
			}
			started, err := awaitLog(ctx, m.e, 5*time.Second, msgStartedCommand)
			if err != nil {
				return err
			}
			r.start = append(r.start, ev.Wall.Sub(became).Seconds())
			r.startLog = append(r.startLog, started.Sub(became).Seconds())
			b.logf("term start → command start: %s (the command's first statement), %s (the elector's %q)",
				fmtSeconds(ev.Wall.Sub(became).Seconds()), fmtSeconds(started.Sub(became).Seconds()), msgStartedCommand)
			return nil
		}()
		g.stop(r)
		if err != nil {
			return err
		}
	}
	return nil
}

// commandHandovers measures graceful handovers of the command in a group of
// 3 at the default TTL: SIGTERM to the leader, until the new leader's
// command has started; a fresh follower then replaces the old leader.
func (b *bench) commandHandovers(ctx context.Context, mode string) error {
	r := &b.result(mode).cmd
	ttl := defaultTTL
	g := b.newCommandGroup(ctx, mode, "cmdhandover-"+mode, ttl)
	defer g.stop(r)
	n := 0
	next := func() error {
		n++
		_, err := g.start(fmt.Sprintf("cmdhandover-%d", n))
		return err
	}
	for range 3 {
		if err := next(); err != nil {
			return err
		}
	}
	var exits []<-chan time.Duration
	for range b.gracefulRep {
		leader, err := g.stable(ttl*3 + 30*time.Second)
		if err != nil {
			return err
		}
		if err := sleep(ctx, settle(ttl)); err != nil {
			return err
		}
		pid := leader.e.PID()
		old, err := b.awaitEvent(ctx, g.file, 10*time.Second, "the leader's command",
			func(e childrec.Event) bool { return e.Kind == childrec.Start && e.PPID == pid })
		if err != nil {
			return err
		}
		if !b.isChild(old.PID) {
			return fmt.Errorf("the command %d of the leader %s does not run", old.PID, leader.e.ID)
		}
		m0 := childrec.Mono()
		t0, exited, err := g.signal(leader, syscall.SIGTERM)
		if err != nil {
			return err
		}
		exits = append(exits, exited)
		started, err := b.awaitEvent(ctx, g.file, 3*ttl+10*time.Second, "the new leader's command",
			func(e childrec.Event) bool { return e.Kind == childrec.Start && e.PPID != pid && e.Mono > m0 })
		if err != nil {
			return fmt.Errorf("%w\n%s", err, g.describe())
		}
		got, err := b.awaitEvent(ctx, g.file, 5*time.Second, "SIGTERM to the old command",
			func(e childrec.Event) bool { return e.Kind == childrec.SIGTERM && e.PID == old.PID })
		if err != nil {
			return err
		}
		exit, err := b.awaitEvent(ctx, g.file, 5*time.Second, "the old command's exit",
			func(e childrec.Event) bool { return e.Kind == childrec.Exit && e.PID == old.PID })
		if err != nil {
			return err
		}
		newLeader, at, err := g.newLeader(leader, t0, 10*time.Second, "is_leader:true after SIGTERM to "+leader.e.ID)
		if err != nil {
			return err
		}
		if newLeader.e.PID() != started.PPID {
			return fmt.Errorf("%s reported is_leader:true, but the command that started is elector %d's", newLeader.e.ID, started.PPID)
		}
		ms := func(mono int64) float64 { return float64(mono-m0) / 1e9 }
		h := handoverOf(m0, got, exit, started)
		took := h.took
		r.handover = append(r.handover, took)
		r.toSigterm = append(r.toSigterm, h.toSigterm)
		r.ownExit = append(r.ownExit, h.ownExit)
		r.afterExit = append(r.afterExit, h.afterExit)
		r.lessExit = append(r.lessExit, h.lessExit)
		// The timeline, from both sides, relative to the SIGTERM.
		type point struct {
			at   float64
			what string
		}
		tl := []point{{ms(got.Mono), "old command got SIGTERM"}, {ms(exit.Mono), "old command exits"},
			{took, "new command starts"}, {at.Sub(t0).Seconds(), newLeader.e.ID + "'s is_leader:true arrives"}}
		for _, l := range []struct {
			e   *fleet.Elector
			msg string
		}{
			{leader.e, "stopping the command"}, {leader.e, "the command exited"}, {leader.e, "released lock"},
			{newLeader.e, msgBecameLeader}, {newLeader.e, msgStartedCommand},
		} {
			if t, ok := logTime(l.e, l.msg); ok {
				tl = append(tl, point{t.Sub(t0).Seconds(), fmt.Sprintf("%s logs %q", l.e.ID, l.msg)})
			}
		}
		slices.SortStableFunc(tl, func(a, b point) int { return cmp.Compare(a.at, b.at) })
		var line []string
		for _, p := range tl {
			line = append(line, fmtSeconds(p.at)+" "+p.what)
		}
		b.logf("TTL %s: command handover in %s (%s less the command's own exit); after SIGTERM: %s",
			ttl, fmtSeconds(took), fmtSeconds(r.lessExit[len(r.lessExit)-1]), strings.Join(line, "; "))
		if err := next(); err != nil {
			return err
		}
	}
	var shut dist
	for _, exited := range exits {
		exit := <-exited
		if exit < 0 {
			return fmt.Errorf("a leader did not exit within 30s of SIGTERM")
		}
		shut = append(shut, exit.Seconds())
	}
	b.logf("TTL %s: leaders with a command exited %s after SIGTERM (median; max %s)", ttl, fmtSeconds(shut.median()), fmtSeconds(shut.max()))
	return nil
}

// handover is one command handover, in seconds.
type handover struct {
	took      float64 // SIGTERM to the leader → the new command starts
	toSigterm float64 // SIGTERM to the leader → the old command receives SIGTERM
	ownExit   float64 // the old command receives SIGTERM → its exit
	afterExit float64 // the old command's exit → the new command starts
	lessExit  float64 // took less ownExit
}

// handoverOf times a handover from m0, CLOCK_MONOTONIC just before the
// SIGTERM to the leader, and the records of the old command's receipt of
// SIGTERM (got) and exit and of the new command's start.
func handoverOf(m0 int64, got, exit, started childrec.Event) handover {
	took := float64(started.Mono-m0) / 1e9
	return handover{
		took:      took,
		toSigterm: float64(got.Mono-m0) / 1e9,
		ownExit:   float64(exit.Mono-got.Mono) / 1e9,
		afterExit: float64(started.Mono-exit.Mono) / 1e9,
		lessExit:  took - float64(exit.Mono-got.Mono)/1e9,
	}
}

// commandCPU runs four electors, each alone in an election of its own at
// the default TTL: two with a sleeping command, two without; once all lead,
// it reads their CPU time and context switches over one window.
func (b *bench) commandCPU(ctx context.Context, mode string) error {
	r := &b.result(mode).cmd
	ttl := defaultTTL
	var (
		groups []*group
		with   []*commandGroup
		ms     []*member
	)
	defer func() {
		for _, g := range with {
			g.stop(r)
		}
		for _, g := range groups[len(with):] {
			g.stop()
		}
	}()
	for i := range 2 {
		g := b.newCommandGroup(ctx, mode, fmt.Sprintf("cmdcpu-with-%d-%s", i+1, mode), ttl)
		with, groups = append(with, g), append(groups, g.group)
	}
	for i := range 2 {
		groups = append(groups, b.newGroup(ctx, mode, fmt.Sprintf("cmdcpu-without-%d-%s", i+1, mode), ttl))
	}
	for i, g := range groups {
		id := fmt.Sprintf("cpu-with-%d", i+1)
		if i >= len(with) {
			id = fmt.Sprintf("cpu-without-%d", i-len(with)+1)
		}
		m, err := g.start(id)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	for _, g := range groups {
		if _, err := g.stable(time.Minute); err != nil {
			return err
		}
	}
	var children []childrec.Event
	for _, g := range with {
		c, err := b.awaitEvent(ctx, g.file, 10*time.Second, "the command's start",
			func(e childrec.Event) bool { return e.Kind == childrec.Start })
		if err != nil {
			return err
		}
		children = append(children, c)
	}
	if err := sleep(ctx, settle(ttl)+2*time.Second); err != nil {
		return err
	}
	read := func() ([]procCounters, error) {
		var cs []procCounters
		for _, m := range ms {
			c, err := readProcCounters(m.e.PID())
			if err != nil {
				return nil, err
			}
			cs = append(cs, c)
		}
		return cs, nil
	}
	c0, err := read()
	if err != nil {
		return err
	}
	if err := sleep(ctx, b.window); err != nil {
		return err
	}
	c1, err := read()
	if err != nil {
		return err
	}
	for i, g := range groups {
		if l, err := g.stable(time.Second); err != nil || l != ms[i] {
			return fmt.Errorf("%s stopped leading during the window: %v", ms[i].e.ID, err)
		}
	}
	for i, g := range with {
		if evs, err := childrec.Read(g.file); err != nil {
			return err
		} else if len(evs) != 1 || !b.isChild(children[i].PID) {
			return fmt.Errorf("the command of %s did not run through the window alone: %d events, running=%v", ms[i].e.ID, len(evs), b.isChild(children[i].PID))
		}
		if err := checkRunning(ctx, ms[i].e, children[i].PID); err != nil {
			return err
		}
	}
	res := &cpuResult{window: b.window}
	for i := range 2 {
		res.with[i] = perSecond(c0[i], c1[i])
		res.without[i] = perSecond(c0[i+2], c1[i+2])
	}
	r.cpu = res
	f := func(get func(procRates) float64, format string) string {
		return fmt.Sprintf(format+", "+format+" vs "+format+", "+format,
			get(res.with[0]), get(res.with[1]), get(res.without[0]), get(res.without[1]))
	}
	b.logf("leaders' CPU over %s, 2 with a sleeping command vs 2 without: utime+stime %s ms/s; schedstat %s ms/s; voluntary switches %s /s; involuntary %s /s",
		b.window, f(procRates.cpuMS, "%.2f"), f(procRates.schedMS, "%.3f"), f(procRates.volPS, "%.2f"), f(procRates.nonvolPS, "%.2f"))
	return nil
}

// commandRows adds the rows of the command experiments to t.
func (b *bench) commandRows(t *table) {
	reps := func(n int) string { return fmt.Sprintf("median (max) of %d", n) }
	t.add(fmt.Sprintf("command: term start → command start, fresh election, TTL %s, %s", defaultTTL, reps(b.cmdReps)),
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.start) }, target{})
	t.add(fmt.Sprintf("  term start → the elector's %q log line", msgStartedCommand),
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.startLog) }, target{})
	t.add(fmt.Sprintf("command: graceful handover (SIGTERM → the new leader's command starts), TTL %s, %s", defaultTTL, reps(b.gracefulRep)),
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.handover) },
		target{
			text: "watch ≤ 150 ms + the command's own exit",
			check: only(watchOnly, func(r *modeResult) bool {
				return len(r.cmd.lessExit) > 0 && r.cmd.lessExit.max() <= 0.150
			}),
		})
	t.add("  of which SIGTERM → the old command receives SIGTERM",
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.toSigterm) }, target{})
	t.add("  of which the old command's own exit (SIGTERM received → exit)",
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.ownExit) }, target{})
	t.add("  of which the old command's exit → the new leader's command starts",
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.afterExit) }, target{})
	t.add("  handover less the command's own exit",
		func(r *modeResult) (cell, bool) { return distCell(r.cmd.lessExit) }, target{})

	window := func() string {
		for _, r := range b.res {
			if r.cmd.cpu != nil {
				return r.cmd.cpu.window.String()
			}
		}
		return b.window.String()
	}()
	cpuRow := func(metric string, unit string, get func(procRates) float64, res func(procRates) float64) {
		t.addRow(metric, func(r *modeResult) (cell, bool) {
			c := r.cmd.cpu
			if c == nil {
				return cell{}, false
			}
			w, o := c.figures(get)
			return cell{(w[0] + w[1]) / 2, fmt.Sprintf("%.2f, %.2f vs %.2f, %.2f %s", w[0], w[1], o[0], o[1], unit)}, true
		}, target{
			text: "no cost: with ≤ without + spread",
			check: only(bothModes, func(r *modeResult) bool {
				c := r.cmd.cpu
				if c == nil {
					return false
				}
				w, o := c.figures(get)
				return withinNoise(w, o, res(c.with[0]))
			}),
		}, true)
	}
	cpuRow(fmt.Sprintf("command: leaders' CPU (utime+stime), 2 with a sleeping command vs 2 without, TTL %s, %s", defaultTTL, window), "ms/s",
		procRates.cpuMS, func(p procRates) float64 { return p.resCPU })
	cpuRow("  the same, on-CPU time from schedstat", "ms/s",
		procRates.schedMS, func(procRates) float64 { return 0 })
	cpuRow("  voluntary context switches, 2 with vs 2 without", "/s",
		procRates.volPS, func(p procRates) float64 { return p.resCount })
}

// commandNotes are the footer's notes on the command rows.
func (b *bench) commandNotes() []string {
	return []string{
		"Command: `k8s-elector [flags] -- benchchild -out=FILE` (cmd/bench/internal/benchchild, stripped), which appends to FILE, in one write each, the instant of its main's first statement (after exec and the Go runtime's start), of its receipt of SIGTERM, and of its last statement before it exits at once; each on CLOCK_MONOTONIC and the wall clock. Between them it sleeps on a channel and never wakes up. After every experiment the bench checks that each command still running when its elector got SIGKILL died with it (the header warns if not).",
		fmt.Sprintf("Term start → command start: one elector with the command alone in a fresh election, %d times; from the time (\"ts\", RFC3339Nano) of its %q log line, which it writes once the write of the lock record that made it leader succeeded, to the command's first statement on the wall clock (one host, so one clock); and to the elector's own %q line, written once fork and exec returned. GET / must then report the command running with its PID.",
			b.cmdReps, msgBecameLeader, msgStartedCommand),
		fmt.Sprintf("Command handover: a group of 3 electors with the command at TTL %s; once they agree on a leader and idle a retry period, the bench reads CLOCK_MONOTONIC and sends the leader SIGTERM, and times until another elector's command starts, on CLOCK_MONOTONIC; the parts come from the two commands' records; a fresh follower then replaces the old leader. The target allows 150 ms beyond the command's own exit, checked on each repetition. The log shows each handover's timeline with the electors' log lines.", defaultTTL),
		fmt.Sprintf("CPU with a command: four electors at TTL %s, each alone in an election of its own and leading, two with the command and two without; after they settle (a retry period and 2 s), over one %s window: utime+stime from /proc/<pid>/stat (all threads; %d ms ticks), on-CPU time summed over the threads' /proc/<pid>/task/<tid>/schedstat (nanoseconds), and voluntary context switches summed over the threads' status files, per second. The claim holds (✓) if the mean of the two with the command exceeds the mean of the two without by no more than the spread: the larger difference within either pair, or what the counter's rounding can account for if that is larger (two ticks of utime+stime over the window, as each figure is a difference of readings in whole ticks; one context switch). The ratio column compares the means with the command.",
			defaultTTL, b.window, 1000/userHZ),
	}
}

// commandWarnings are the header's warnings about the command experiments.
func (b *bench) commandWarnings() []string {
	var w []string
	for _, mode := range b.active() {
		if r, ok := b.res[mode]; ok && r.cmd.orphans > 0 {
			w = append(w, fmt.Sprintf("%s: %d commands still ran 2 s after their elector's SIGKILL (the bench killed them)", mode, r.cmd.orphans))
		}
	}
	return w
}
