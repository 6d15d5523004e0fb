package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// reaperScript cleans up after a test binary that died without Stop: a
// `go test -timeout` panic or an interrupt, whose handler in the suite
// exits at once, runs no cleanup. It runs in a session of its own and
// reads its standard input, a pipe from the test binary: "done" when Stop
// has cleaned up, end of file when the test binary died. Then it kills
// every process whose command line names the cluster's directory (the
// processes' parent-death signal has ended most of them already; the
// containerd shims name their socket there), and what is left in the
// cgroups containerd made, unmounts what is mounted under the directory,
// runs the undo commands that Start recorded in reap.undo (the DNAT rule,
// the bridge, IP forwarding), newest first, and removes the directory.
const reaperScript = `
dir="$1"
# Its output may be a pipe to a go test that is gone: carry on regardless.
trap '' PIPE HUP INT TERM
read -r line || true
[[ "${line}" == done ]] && exit 0
echo "node reaper: the test binary died without stopping its one-node cluster; cleaning up ${dir}" >&2
sleep 2
kill_dir_procs() {
	local p c
	for p in /proc/[0-9]*; do
		[[ "${p#/proc/}" == "$$" || "${p#/proc/}" == "${BASHPID}" ]] && continue
		c="$(tr '\0' ' ' <"${p}/cmdline" 2>/dev/null)" || continue
		[[ "${c}" == *"${dir}/"* && "${c}" != *"node reaper"* ]] && kill -9 "${p#/proc/}" 2>/dev/null
	done
}
rmcgroup() {
	local f p
	[[ -d "$1" ]] || return 0
	for f in $(find "$1" -name cgroup.procs); do
		for p in $(cat "${f}"); do kill -9 "${p}" 2>/dev/null; done
	done
	sleep 0.5
	find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null
}
kill_dir_procs
sleep 1
kill_dir_procs
if [[ -f "${dir}/reap.undo" ]]; then
	tac "${dir}/reap.undo" > "${dir}/reap.undo.rev"
	grep '^rmcgroup ' "${dir}/reap.undo.rev" | while read -r cmd; do eval "${cmd}"; done
fi
find /var/log/containers -maxdepth 1 -lname "${dir}/*" -delete 2>/dev/null
awk -v d="${dir}" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r umount -l 2>/dev/null
if [[ -f "${dir}/reap.undo.rev" ]]; then
	grep -v '^rmcgroup ' "${dir}/reap.undo.rev" | while read -r cmd; do eval "${cmd}" || true; done
fi
rm -rf "${dir}"
echo "node reaper: cleaned up ${dir}" >&2
`

// startReaper starts the reaper for the cluster's directory.
func (c *Cluster) startReaper() error {
	cmd := exec.Command("bash", "-c", reaperScript, "node reaper", c.dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// A session of its own: no parent-death signal, no terminal's SIGINT.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the reaper: %w", err)
	}
	c.reaper, c.reaperIn = cmd, in
	return nil
}

// stopReaper tells the reaper that Stop has cleaned up, and waits for it.
func (c *Cluster) stopReaper() error {
	if c.reaper == nil {
		return nil
	}
	_, _ = io.WriteString(c.reaperIn, "done\n")
	_ = c.reaperIn.Close()
	done := make(chan error, 1)
	go func() { done <- c.reaper.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = c.reaper.Process.Kill()
		return fmt.Errorf("the reaper (pid %d) did not exit", c.reaper.Process.Pid)
	}
}

// reapUndo records a shell command for the reaper to run if the test
// binary dies without Stop.
func (c *Cluster) reapUndo(args ...string) error {
	// The command's name is one of ours, unquoted (the reaper runs the
	// rmcgroup lines first); its arguments are quoted.
	quoted := []string{args[0]}
	for _, a := range args[1:] {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "reap.undo"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, strings.Join(quoted, " "))
	return errors.Join(err, f.Close())
}
