// Command singleton is the program that the node tests run under
// deploy/singleton, in place of the user's /app/my-singleton: a program that
// must never run twice at once, and shows it. All its copies share one
// directory on the node (a hostPath volume), where it
//
//   - takes an exclusive flock on DIR/lock when it starts, and if another
//     copy holds it, writes "overlap" and exits 1;
//   - appends "start ID INSTANT" to DIR/log once it holds the lock, and
//     "stop ID INSTANT" when it gets SIGTERM or SIGINT, then exits 0.
//
// ID is $ELECTOR_ID (k8s-elector's candidate ID, the Pod's name) and INSTANT
// is RFC 3339 with nanoseconds. The kernel drops the lock when the process
// ends, so a copy that starts before the previous one has exited finds it
// held, whatever the clocks say.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "/records", "the directory that every copy shares")
	// deploy/singleton passes its example program's flag; it means nothing here.
	flag.String("config", "", "ignored")
	flag.Parse()
	id := os.Getenv("ELECTOR_ID")
	if err := run(*dir, id); err != nil {
		fmt.Fprintln(os.Stderr, "singleton:", err)
		os.Exit(1)
	}
}

func run(dir, id string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = record(dir, "overlap", id)
		return fmt.Errorf("another copy holds %s: %v", lock.Name(), err)
	}
	if err := record(dir, "start", id); err != nil {
		return err
	}
	<-sigs
	return record(dir, "stop", id)
}

// record appends one line to DIR/log; O_APPEND keeps the copies' lines whole.
func record(dir, event, id string) error {
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("%s %s %s\n", event, id, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
