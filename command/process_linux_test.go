package command

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests start real processes, on the real clock; they assert what
// happened, never how fast.

// procStat returns the state and process group of pid from /proc, or ok
// false if pid is gone.
func procStat(pid int) (state byte, pgid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	pgid, _ = strconv.Atoi(f[2])
	return f[0][0], pgid, true
}

// alive reports whether pid runs (exists and is no zombie).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z'
}

// eventually polls cond every 10ms for up to limit.
func eventually(limit time.Duration, cond func() bool) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestStartProcessGroupEnvAndStdin starts a real shell: it leads a process
// group of its own, gets the environment it is given, and has /dev/null as
// stdin; a signal to the group reaches the shell's own children, and one to
// the process only the shell.
func TestStartProcessGroupEnvAndStdin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := `echo "$ELECTOR_LOCK_UID" > "$OUT"; readlink /proc/self/fd/0 >> "$OUT"; sleep 60 & echo $! >> "$OUT"; wait`
	p, err := startProcess("/bin/sh", []string{"sh", "-c", script}, []string{"ELECTOR_LOCK_UID=uid-1", "OUT=" + out})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	if !eventually(10*time.Second, func() bool {
		b, _ := os.ReadFile(out)
		lines = strings.Fields(string(b))
		return len(lines) == 3
	}) {
		t.Fatalf("the shell wrote %q, want its token, stdin and its child's PID", lines)
	}
	if lines[0] != "uid-1" || lines[1] != "/dev/null" {
		t.Errorf("token %q and stdin %q, want uid-1 and /dev/null", lines[0], lines[1])
	}
	sleeper, _ := strconv.Atoi(lines[2])
	if _, pgid, _ := procStat(p.pid()); pgid != p.pid() {
		t.Errorf("the command's process group is %d, want its own (%d)", pgid, p.pid())
	}
	if _, pgid, _ := procStat(sleeper); pgid != p.pid() {
		t.Errorf("its child's process group is %d, want the command's (%d)", pgid, p.pid())
	}
	// A forwarded signal reaches the command alone: the shell dies of
	// SIGHUP, its child lives on.
	if err := p.signal(syscall.SIGHUP, false); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(); st.code != 128+int(syscall.SIGHUP) {
		t.Errorf("exit %+v, want code %d for SIGHUP", st, 128+int(syscall.SIGHUP))
	}
	if !alive(sleeper) {
		t.Fatalf("the command's child %d died of a signal sent to the command alone", sleeper)
	}
	// What is left of the group gets the group's signals.
	if err := p.signal(syscall.SIGTERM, true); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool { return !alive(sleeper) }) {
		t.Errorf("the command's child %d outlived the SIGTERM sent to the group", sleeper)
		_ = syscall.Kill(sleeper, syscall.SIGKILL)
	}
}

// TestWaitReportsExitCodes: an exit code is the code, a signal 128 plus its
// number.
func TestWaitReportsExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
	}{{"exit 0", 0}, {"exit 3", 3}, {"kill -KILL $$", 137}} {
		p, err := startProcess("/bin/sh", []string{"sh", "-c", tc.script}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := p.wait(); st.code != tc.code {
			t.Errorf("%q: %+v, want code %d", tc.script, st, tc.code)
		}
	}
}

// TestCommandDiesWithTheElector kills a process that started a command as
// lead does with SIGKILL: the command must die with it, by the
// parent-death signal.
func TestCommandDiesWithTheElector(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), childParentEnv+"=1")
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	child, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		_ = parent.Process.Kill()
		_ = parent.Wait()
		t.Fatalf("the parent said %q (%v)", line, err)
	}
	if !alive(child) {
		t.Fatalf("the command %d is not running", child)
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	if !eventually(10*time.Second, func() bool { return !alive(child) }) {
		_ = syscall.Kill(child, syscall.SIGKILL)
		t.Fatalf("the command %d outlived its parent's SIGKILL", child)
	}
}

// TestReaperReapsOrphansButNotTheCommand runs the reaper's loop body in the
// test process (it reaps only as PID 1 in production): an exited child that
// is not the command is reaped, and the command is left for the Command
// to wait for.
func TestReaperReapsOrphansButNotTheCommand(t *testing.T) {
	cmd, err := startProcess("/bin/sh", []string{"sh", "-c", "exit 5"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An orphan stand-in: a child nobody waits for.
	orphan, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{cmd.pid(), orphan.Pid} {
		if !eventually(10*time.Second, func() bool { s, _, _ := procStat(pid); return s == 'Z' }) {
			t.Fatalf("child %d did not exit", pid)
		}
	}
	r := &reaper{child: cmd.pid, kick: make(chan struct{}, 1)}
	// The command may be the first exited child the kernel reports, which
	// stops the loop: the Command reaps it and rescans, as here.
	r.reap()
	if st := cmd.wait(); st.code != 5 {
		t.Errorf("the command's exit %+v, want code 5: the reaper must leave it to the Command", st)
	}
	r.child = func() int { return 0 }
	r.reap()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(orphan.Pid, &ws, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Errorf("wait for the orphan after reaping: %v, want ECHILD (reaped)", err)
	}
}
