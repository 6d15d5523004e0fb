// Command pause is the Pod sandbox's process for the node tests, and their
// stand-in application: a tiny static binary, built and imported into
// containerd as the pause image, so that no registry is needed. It waits
// for SIGINT or SIGTERM and exits 0. With -stop-file=PATH it first writes
// the instant it got the signal there (RFC 3339, nanoseconds), so a test
// can tell in which order a Pod's containers stopped.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	stopFile := flag.String("stop-file", "", "write the instant of SIGTERM or SIGINT here before exiting")
	flag.Parse()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	if *stopFile != "" {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		if err := os.WriteFile(*stopFile, []byte(now+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "pause:", err)
			os.Exit(1)
		}
	}
}
