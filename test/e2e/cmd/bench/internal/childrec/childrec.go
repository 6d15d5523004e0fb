// Package childrec is the record that the bench's command
// (cmd/bench/internal/benchchild) keeps of its own life, and the clock it
// reads: one JSON line per event, appended to a file that the bench reads.
package childrec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// The kinds of event.
const (
	Start   = "start"   // the first statement of main
	SIGTERM = "sigterm" // SIGTERM received
	Exit    = "exit"    // the last statement before the process exits
)

// Event is one line of the record.
type Event struct {
	Kind string    `json:"kind"`
	Wall time.Time `json:"wall"` // time.Now, for comparison with log lines
	Mono int64     `json:"mono"` // CLOCK_MONOTONIC in nanoseconds, for comparison with Mono in the bench
	PID  int       `json:"pid"`
	PPID int       `json:"ppid"` // the elector that started it
	// From the environment the elector gives its command.
	ID          string `json:"id,omitempty"`
	LockUID     string `json:"lock_uid,omitempty"`
	Transitions string `json:"transitions,omitempty"`
}

// Mono reads CLOCK_MONOTONIC, the clock every process on the host shares,
// in nanoseconds.
func Mono() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", errno))
	}
	return ts.Nano()
}

// Now returns an event of kind at this instant.
func Now(kind string) Event {
	return Event{Kind: kind, Mono: Mono(), Wall: time.Now(), PID: os.Getpid(), PPID: os.Getppid()}
}

// Append appends e to the file at path in one write: many processes may
// append to one file.
func Append(path string, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}

// Read returns the events of the file at path in the order they were
// written: none if it does not exist yet. A last line without its newline
// is still being written and is left out.
func Read(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %w: %q", path, err, sc.Text())
		}
		evs = append(evs, e)
	}
	return evs, sc.Err()
}
