package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// cpuSample is a process's CPU time, utime+stime from /proc/<pid>/stat, at
// one instant.
type cpuSample struct {
	pid   int
	ticks int64 // clock ticks (CLK_TCK a second), every thread ever
	at    time.Time
}

// readCPU samples the CPU time of pid.
func readCPU(pid int) (cpuSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	at := time.Now()
	if err != nil {
		return cpuSample{}, err
	}
	ticks, err := statTicks(pid, b)
	return cpuSample{pid: pid, ticks: ticks, at: at}, err
}

// cpuPerMinute returns the CPU seconds per minute of wall time that one
// process used between two samples, tick being the ticks in a second.
func cpuPerMinute(s0, s1 cpuSample, tick int64) (float64, error) {
	switch {
	case tick <= 0:
		return 0, fmt.Errorf("invalid clock tick %d", tick)
	case s0.pid != s1.pid:
		return 0, fmt.Errorf("the process changed during the window: pid %d, then %d", s0.pid, s1.pid)
	case !s1.at.After(s0.at):
		return 0, fmt.Errorf("pid %d: samples %s apart, want the second later", s0.pid, s1.at.Sub(s0.at))
	case s1.ticks < s0.ticks:
		return 0, fmt.Errorf("pid %d: CPU time went back from %d to %d ticks", s0.pid, s0.ticks, s1.ticks)
	}
	return float64(s1.ticks-s0.ticks) / float64(tick) / s1.at.Sub(s0.at).Minutes(), nil
}

// clockTick returns the unit of utime and stime, CLK_TCK ticks a second,
// from getconf(1), or userHZ if getconf cannot tell: the kernel reports
// them in USER_HZ, 100 on every Linux architecture Go supports.
func clockTick() (int64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return userHZ, fmt.Errorf("getconf CLK_TCK: %w; assuming %d", err, userHZ)
	}
	tick, err := parseClockTick(string(out))
	if err != nil {
		return userHZ, fmt.Errorf("%w; assuming %d", err, userHZ)
	}
	return tick, nil
}

// parseClockTick reads the output of getconf CLK_TCK.
func parseClockTick(out string) (int64, error) {
	tick, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || tick <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK: unexpected output %q", out)
	}
	return tick, nil
}

// cpuFigure is a process's CPU time over a window, or why it has none.
type cpuFigure struct {
	perMin float64 // CPU seconds per minute of wall time
	na     string  // why it was not measured; "" if it was
}

func (f cpuFigure) String() string {
	if f.na != "" {
		return "n/a: " + f.na
	}
	return fmt.Sprintf("%.2f s/min", f.perMin)
}

// cpuProbe names a process whose CPU a window measures, and how to find it.
type cpuProbe struct {
	name string
	pid  func() (int, error) // nil: the process cannot be measured (na says why)
	na   string
}

// cpuWindow samples the CPU time of some processes at the start of a window
// and, at its end, returns each one's figure.
type cpuWindow struct {
	probes []cpuProbe
	start  []cpuSample
	errs   []error // of the start samples
}

// startCPU takes the samples at the start of a window.
func startCPU(probes ...cpuProbe) *cpuWindow {
	w := &cpuWindow{probes: probes, start: make([]cpuSample, len(probes)), errs: make([]error, len(probes))}
	for i, p := range probes {
		w.start[i], w.errs[i] = p.sample()
	}
	return w
}

// sample reads the CPU time of the probe's process.
func (p cpuProbe) sample() (cpuSample, error) {
	if p.pid == nil {
		return cpuSample{}, errors.New(p.na)
	}
	pid, err := p.pid()
	if err != nil {
		return cpuSample{}, err
	}
	return readCPU(pid)
}

// end takes the samples at the end of the window and returns the figures,
// in the order of the probes.
func (w *cpuWindow) end(tick int64) []cpuFigure {
	figs := make([]cpuFigure, len(w.probes))
	for i, p := range w.probes {
		if p.pid == nil {
			figs[i] = cpuFigure{na: p.na}
			continue
		}
		if w.errs[i] != nil {
			figs[i] = cpuFigure{na: w.errs[i].Error()}
			continue
		}
		s1, err := p.sample()
		var perMin float64
		if err == nil {
			perMin, err = cpuPerMinute(w.start[i], s1, tick)
		}
		if err != nil {
			figs[i] = cpuFigure{na: err.Error()}
			continue
		}
		figs[i] = cpuFigure{perMin: perMin}
	}
	return figs
}
