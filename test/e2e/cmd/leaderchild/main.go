// Command leaderchild is the command the end-to-end suite has k8s-elector
// run while it leads (k8s-elector ... -- leaderchild ...). It records its
// start (with its PID, its fencing token and what it sees of its
// environment), the signals it gets and its stop in a shared log, one JSON
// line per event, stamped with CLOCK_MONOTONIC; and while it runs it sends
// a write with its token to a fenced store every -interval.
//
// On SIGTERM it records the stop and exits 0, -stop-delay later (writing
// on meanwhile, as an application finishing its work would), unless
// -ignore-term. With -exit-after it exits on its own with -exit-code after
// that long.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k8s-elector/elector/test/e2e/internal/childwatch"
)

func main() {
	var (
		logPath    = flag.String("log", "", "the shared event log (required)")
		store      = flag.String("store", "", "the URL to POST writes to; none if empty")
		marker     = flag.String("marker", "", "a marker of the test, by which its children are found in /proc")
		interval   = flag.Duration("interval", 20*time.Millisecond, "how often to write to the store")
		ignoreTerm = flag.Bool("ignore-term", false, "record SIGTERM and go on")
		stopDelay  = flag.Duration("stop-delay", 0, "how long to go on after SIGTERM before it exits")
		exitAfter  = flag.Duration("exit-after", 0, "exit on its own after this long; 0: never")
		exitCode   = flag.Int("exit-code", 0, "the exit code for -exit-after")
	)
	flag.Parse()
	if *logPath == "" {
		fmt.Fprintln(os.Stderr, "leaderchild: -log is required")
		os.Exit(2)
	}
	// Signals first, so that none is missed once the start is recorded.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT)

	pid := os.Getpid()
	event := func(e childwatch.Event) {
		e.PID, e.Marker, e.Mono = pid, *marker, childwatch.Mono()
		if err := childwatch.AppendEvent(*logPath, e); err != nil {
			fmt.Fprintln(os.Stderr, "leaderchild:", err)
		}
	}
	raw := os.Getenv("ELECTOR_LEADER_TRANSITIONS")
	transitions, _ := strconv.ParseInt(raw, 10, 64)
	pgid, _ := unix.Getpgid(0)
	stdin, _ := os.Readlink("/proc/self/fd/0")
	start := childwatch.Event{
		Event:    childwatch.EventStart,
		Election: os.Getenv("ELECTOR_ELECTION"), Namespace: os.Getenv("ELECTOR_NAMESPACE"),
		Elector: os.Getenv("ELECTOR_ID"), UID: os.Getenv("ELECTOR_LOCK_UID"),
		Transitions: transitions, RawToken: raw,
		PGID: pgid, PPID: os.Getppid(), Stdin: stdin,
	}
	event(start)

	w := &writer{url: *store, req: childwatch.WriteRequest{
		PID: pid, Elector: start.Elector, UID: start.UID, Transitions: transitions,
	}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(*interval)

	var exit, stop <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	for {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGTERM {
				event(childwatch.Event{Event: childwatch.EventSignal, Signal: unix.SignalName(sig.(syscall.Signal))})
				continue
			}
			event(childwatch.Event{Event: childwatch.EventSIGTERM, Ignored: *ignoreTerm})
			if !*ignoreTerm && stop == nil {
				stop = time.After(*stopDelay)
			}
		case <-stop:
			w.halt()
			event(childwatch.Event{Event: childwatch.EventStop})
			os.Exit(0)
		case <-exit:
			w.halt()
			event(childwatch.Event{Event: childwatch.EventExit, Code: *exitCode})
			os.Exit(*exitCode)
		}
	}
}

// writer sends the child's token to the fenced store every interval.
type writer struct {
	url  string
	req  childwatch.WriteRequest
	once sync.Once
	stop chan struct{}
	done chan struct{}
}

func (w *writer) run(interval time.Duration) {
	defer close(w.done)
	if w.url == "" {
		return
	}
	client := &http.Client{Timeout: time.Second}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		req := w.req
		req.Mono = childwatch.Mono()
		body, _ := json.Marshal(req)
		if resp, err := client.Post(w.url, "application/json", bytes.NewReader(body)); err == nil {
			resp.Body.Close()
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// halt stops the writes and waits for the one in flight: no write is sent
// after the child has recorded its stop.
func (w *writer) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}
