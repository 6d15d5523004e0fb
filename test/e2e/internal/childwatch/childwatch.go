// Package childwatch follows the commands that k8s-elector runs while it
// leads (k8s-elector -- command): the events that cmd/leaderchild records in
// a shared log, the writes it sends to a fenced store, and a sampler that
// reads from /proc which children are alive.
//
// Every instant is CLOCK_MONOTONIC in nanoseconds (Mono), which compares
// across the processes of one machine: the children stamp their own events,
// the sampler its observations, and the test its faults (MonoOf).
package childwatch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Mono returns CLOCK_MONOTONIC in nanoseconds.
func Mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // never on Linux
	}
	return ts.Nano()
}

// Go's monotonic clock is CLOCK_MONOTONIC on Linux, without a way to read
// it: one reading of both relates them.
var baseTime, baseMono = time.Now(), Mono()

// MonoOf returns t on CLOCK_MONOTONIC. A t from time.Now converts exactly; a
// wall-clock time (parsed from JSON) assumes the wall clock did not step
// since this process started.
func MonoOf(t time.Time) int64 { return baseMono + int64(t.Sub(baseTime)) }

// TimeOf returns the wall-clock time of the monotonic instant m, for logs.
func TimeOf(m int64) time.Time { return baseTime.Add(time.Duration(m - baseMono)) }

// Stamp formats the monotonic instant m as a wall-clock time of day.
func Stamp(m int64) string {
	if m == 0 {
		return "never"
	}
	return TimeOf(m).Format("15:04:05.000")
}

// Event kinds of the child.
const (
	EventStart   = "start"   // it began to run; Env fields are set
	EventSIGTERM = "sigterm" // it got SIGTERM (Ignored: and goes on)
	EventStop    = "stop"    // it exits 0 after SIGTERM
	EventExit    = "exit"    // it exits on its own with Code
	EventSignal  = "signal"  // it got Signal (forwarded by the elector)
)

// Event is one line of the children's shared log.
type Event struct {
	Event  string `json:"event"`
	PID    int    `json:"pid"`
	Mono   int64  `json:"mono"`
	Marker string `json:"marker"`

	// The start event's view of its environment.
	Election    string `json:"election,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Elector     string `json:"elector,omitempty"` // ELECTOR_ID
	UID         string `json:"uid,omitempty"`     // ELECTOR_LOCK_UID
	Transitions int64  `json:"transitions,omitempty"`
	RawToken    string `json:"raw_token,omitempty"` // ELECTOR_LEADER_TRANSITIONS as given
	PGID        int    `json:"pgid,omitempty"`
	PPID        int    `json:"ppid,omitempty"`
	Stdin       string `json:"stdin,omitempty"` // where fd 0 points

	Ignored bool   `json:"ignored,omitempty"`
	Code    int    `json:"code,omitempty"`
	Signal  string `json:"signal,omitempty"`
}

// AppendEvent appends e to the log at path in a single write to a file
// opened with O_APPEND, so that lines of several children never mix.
func AppendEvent(path string, e Event) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadEvents reads the log at path; a missing file has no events. A last
// line without its newline is being written and is left out.
func ReadEvents(path string) ([]Event, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		return nil, nil
	}
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// WriteRequest is what a child POSTs to the fenced store every few
// milliseconds: its token, and when it sent the write.
type WriteRequest struct {
	PID         int    `json:"pid"`
	Elector     string `json:"elector"`
	UID         string `json:"uid"`
	Transitions int64  `json:"transitions"`
	Mono        int64  `json:"mono"`
}

// WriteReply is the store's answer.
type WriteReply struct {
	Accepted bool `json:"accepted"`
}

// MarkerFlag is the flag of the child that carries a per-test marker, by
// which the sampler tells the children of one test from another's.
const MarkerFlag = "-marker="

// Proc is what the sampler saw of one child process.
type Proc struct {
	PID    int
	PPID   int
	Marker string
	Args   []string
	// FirstAlive and LastAlive are the first and the last instants the
	// process was read alive (in any state but zombie).
	FirstAlive, LastAlive int64
	// Dead is the first instant it was read dead: a zombie, or gone from
	// /proc; 0 while it is alive.
	Dead   int64
	Zombie bool // it was read as a zombie
}

// Sampler reads /proc every interval and keeps, for every process whose
// argv[0] is binary and whose arguments carry a marker, when it was seen
// alive and when dead. It is safe for concurrent use.
type Sampler struct {
	binary   string
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu     sync.Mutex
	all    []*Proc
	live   map[int]*Proc
	others map[int]int64 // other processes, by PID: when first seen
	ticks  int
	maxGap time.Duration
}

// recheck is how long a new process that is not a child is read again: it
// may be an elector that forked and has not yet executed the child.
const recheck = time.Second

// NewSampler starts sampling.
func NewSampler(binary string, interval time.Duration) *Sampler {
	s := &Sampler{
		binary: binary, interval: interval, stop: make(chan struct{}), done: make(chan struct{}),
		live: map[int]*Proc{}, others: map[int]int64{},
	}
	go s.run()
	return s
}

func (s *Sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	last := time.Now()
	for {
		s.scan()
		now := time.Now()
		s.mu.Lock()
		if gap := now.Sub(last); s.ticks > 0 && gap > s.maxGap {
			s.maxGap = gap
		}
		s.ticks++
		s.mu.Unlock()
		last = now
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Stop stops sampling.
func (s *Sampler) Stop() {
	close(s.stop)
	<-s.done
}

// MaxGap returns the longest time between the ends of two scans: the
// sampler's resolution as it was, on a loaded machine.
func (s *Sampler) MaxGap() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxGap
}

// Procs returns the children with marker seen so far, in the order first
// seen.
func (s *Sampler) Procs(marker string) []Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Proc
	for _, p := range s.all {
		if p.Marker == marker {
			q := *p
			q.Args = slices.Clone(p.Args)
			out = append(out, q)
		}
	}
	return out
}

func (s *Sampler) scan() {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	listed := Mono()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[int]bool, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		seen[pid] = true
		if p := s.live[pid]; p != nil {
			s.observe(p)
			continue
		}
		first, known := s.others[pid]
		if known && listed-first > int64(recheck) {
			continue
		}
		if marker, args, ok := match(s.binary, pid); ok {
			p := &Proc{PID: pid, Marker: marker, Args: args}
			s.observe(p)
			if p.FirstAlive != 0 {
				s.all = append(s.all, p)
				s.live[pid] = p
			}
			delete(s.others, pid)
			continue
		}
		if !known {
			s.others[pid] = listed
		}
	}
	for pid, p := range s.live {
		if !seen[pid] {
			p.Dead = listed
			delete(s.live, pid)
		}
	}
	for pid := range s.others {
		if !seen[pid] {
			delete(s.others, pid)
		}
	}
}

// Scan reads /proc once and returns the PIDs of the children of binary with
// marker that are alive.
func Scan(binary, marker string) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var out []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if m, _, ok := match(binary, pid); ok && m == marker {
			if state, _, err := ReadStat(pid); err == nil && state != 'Z' && state != 'X' {
				out = append(out, pid)
			}
		}
	}
	return out
}

// match reads the command line of pid and reports whether it is a child of
// binary, and with which marker.
func match(binary string, pid int) (marker string, args []string, ok bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(raw) == 0 {
		return "", nil, false
	}
	args = strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if args[0] != binary {
		return "", nil, false
	}
	for _, a := range args[1:] {
		if m, found := strings.CutPrefix(a, MarkerFlag); found {
			return m, args, true
		}
	}
	return "", nil, false
}

// observe reads the state of p once.
func (s *Sampler) observe(p *Proc) {
	state, ppid, err := ReadStat(p.PID)
	now := Mono()
	switch {
	case err != nil || state == 'Z' || state == 'X':
		if p.FirstAlive == 0 {
			return // never seen alive: not a child we know of
		}
		p.Zombie = err == nil
		p.Dead = now
		delete(s.live, p.PID)
	default:
		if p.FirstAlive == 0 {
			p.FirstAlive, p.PPID = now, ppid
		}
		p.LastAlive = now
	}
}

// ReadStat returns the state letter (R, S, D, Z, T, ...) and the parent PID
// of process pid, from /proc/<pid>/stat.
func ReadStat(pid int) (state byte, ppid int, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, raw)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, raw)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}
