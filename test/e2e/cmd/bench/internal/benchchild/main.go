// Command benchchild is the command that the bench runs under k8s-elector
// (k8s-elector [flags] -- benchchild -out=FILE): it appends to FILE the
// instant it starts, and the instants it receives SIGTERM and exits (see
// childrec), and otherwise sleeps: it never wakes up on its own, so that
// the elector leading with it is measured with a command that costs nothing.
// It exits at once on SIGTERM, and after -max in any case.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/k8s-elector/elector/test/e2e/cmd/bench/internal/childrec"
)

func main() {
	start := childrec.Now(childrec.Start)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	out := flag.String("out", "", "The file to append the record to (required).")
	limit := flag.Duration("max", 15*time.Minute, "Exit after this long in any case, so that no run of the bench leaves one behind.")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "benchchild: -out is required")
		os.Exit(2)
	}
	start.ID = os.Getenv("ELECTOR_ID")
	start.LockUID = os.Getenv("ELECTOR_LOCK_UID")
	start.Transitions = os.Getenv("ELECTOR_LEADER_TRANSITIONS")
	if err := childrec.Append(*out, start); err != nil {
		fmt.Fprintln(os.Stderr, "benchchild:", err)
		os.Exit(2)
	}
	// From here on it writes nothing to the elector's stdout and stderr, and
	// holds neither: a pipe that a stray process holds would keep whoever
	// reads the elector's output waiting.
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		_ = syscall.Dup3(int(null.Fd()), 1, 0)
		_ = syscall.Dup3(int(null.Fd()), 2, 0)
		null.Close()
	}
	select {
	case <-term:
		got := childrec.Now(childrec.SIGTERM)
		err := childrec.Append(*out, got)
		if err == nil {
			err = childrec.Append(*out, childrec.Now(childrec.Exit))
		}
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case <-time.After(*limit):
		os.Exit(3)
	}
}
