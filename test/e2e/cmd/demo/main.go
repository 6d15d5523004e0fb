// Command demo runs a fleet of k8s-elector processes and shows their status
// live while it kills the leader again and again, so the handover can be
// watched. Without a cluster it builds and starts a local kube-apiserver and
// etcd; with -kubeconfig (or $KUBECONFIG) it runs against that cluster.
//
//	make demo                                  # local control plane
//	make demo DEMO_FLAGS=-kubeconfig=$HOME/.kube/config
//
// Ctrl-C stops every process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	cfg      fleet.Config
	electors []*fleet.Elector
	down     map[string]string // id -> why it is not running
	events   []string
	out      io.Writer
	live     bool // redraw in place (a terminal)
}

func run(ctx context.Context) error {
	// A flag set of its own: envtest's dependencies register flags of their
	// own (-kubeconfig among them) on the global one.
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	var (
		n          = fs.Int("n", 3, "Number of electors.")
		lock       = fs.String("lock-type", "leases", "Lock type: leases, configmaps or endpoints.")
		ttl        = fs.Duration("ttl", 6*time.Second, "Election TTL.")
		every      = fs.Duration("kill-every", 20*time.Second, "Kill the leader this long after it took over; 0 never kills.")
		duration   = fs.Duration("duration", 0, "Stop after this long; 0 runs until Ctrl-C.")
		kubeconfig = fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "Run against this cluster instead of a local control plane (default $KUBECONFIG).")
		namespace  = fs.String("namespace", "default", "Namespace of the election.")
		binary     = fs.String("binary", "", "The k8s-elector binary (default: build it).")
	)
	_ = fs.Parse(os.Args[1:])
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	tmp, err := os.MkdirTemp("", "k8s-elector-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *binary == "" {
		fmt.Println("building k8s-elector…")
		if *binary, err = fleet.Build(controlplane.RepoRoot(), tmp); err != nil {
			return err
		}
	}
	if *kubeconfig == "" {
		fmt.Println("no -kubeconfig or $KUBECONFIG: starting a local kube-apiserver and etcd…")
		cp, err := controlplane.Start()
		if err != nil {
			return err
		}
		defer func() {
			fmt.Println("stopping the local control plane")
			if err := cp.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "demo:", err)
			}
		}()
		*kubeconfig = cp.AdminKubeconfig
		fmt.Printf("control plane ready at %s (kubeconfig %s)\n", cp.Admin.Host, cp.AdminKubeconfig)
	} else {
		fmt.Printf("using the cluster of %s, namespace %s\n", *kubeconfig, *namespace)
	}

	d := &demo{
		cfg: fleet.Config{
			Binary: *binary, Kubeconfig: *kubeconfig, Election: "k8s-elector-demo",
			Namespace: *namespace, LockType: *lock, TTL: *ttl,
		},
		down: map[string]string{},
		out:  os.Stdout,
		live: isTerminal(os.Stdout),
	}
	defer d.stopAll()
	for i := range *n {
		id := fmt.Sprintf("elector-%d", i+1)
		e, err := fleet.Start(d.cfg, id)
		if err != nil {
			return err
		}
		d.electors = append(d.electors, e)
	}
	d.event("started %d electors (lock type %s, TTL %s)", *n, *lock, *ttl)
	return d.loop(ctx, *every)
}

// loop redraws the table, and kills the leader every so often, alternating
// a graceful SIGTERM and a SIGKILL; a killed elector is restarted a little
// later as a follower.
func (d *demo) loop(ctx context.Context, every time.Duration) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var (
		leader    string
		leadSince time.Time
		killedAt  time.Time
		kills     int
		restart   = map[string]time.Time{}
	)
	last := ""
	for {
		select {
		case <-ctx.Done():
			d.event("stopping every elector")
			return nil
		case <-tick.C:
		}
		statuses := map[string]fleet.Status{}
		for _, e := range d.electors {
			if e.Exited() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			if s, err := e.Status(sctx); err == nil {
				statuses[e.ID] = s
			}
			cancel()
		}
		now := ""
		for id, s := range statuses {
			if s.IsLeader {
				now = id
			}
		}
		if now != leader {
			switch {
			case now == "":
				d.event("no leader")
			case !killedAt.IsZero():
				d.event("%s leads, %s after the previous leader was killed", now, time.Since(killedAt).Round(time.Millisecond))
				killedAt = time.Time{}
			default:
				d.event("%s leads", now)
			}
			leader, leadSince = now, time.Now()
		}
		if every > 0 && leader != "" && time.Since(leadSince) > every {
			sig, how := syscall.SIGTERM, "SIGTERM (graceful: releases the lock)"
			if kills%2 == 1 {
				sig, how = syscall.SIGKILL, "SIGKILL (crash: the others wait out the TTL)"
			}
			kills++
			for _, e := range d.electors {
				if e.ID == leader {
					_ = e.Signal(sig)
				}
			}
			d.down[leader] = "killed"
			restart[leader] = time.Now().Add(every / 2)
			killedAt = time.Now()
			d.event("killed leader %s with %s", leader, how)
			leader = ""
		}
		for id, at := range restart {
			if time.Now().After(at) {
				if err := d.restart(id); err != nil {
					return err
				}
				delete(restart, id)
			}
		}
		if table := d.table(statuses); table != last || d.live {
			d.draw(table)
			last = table
		}
	}
}

func (d *demo) restart(id string) error {
	for i, e := range d.electors {
		if e.ID == id {
			e.Kill()
			n, err := fleet.Start(d.cfg, id)
			if err != nil {
				return err
			}
			d.electors[i] = n
			delete(d.down, id)
			d.event("restarted %s", id)
		}
	}
	return nil
}

func (d *demo) stopAll() {
	for _, e := range d.electors {
		_ = e.Signal(syscall.SIGTERM)
	}
	for _, e := range d.electors {
		if _, err := e.Wait(10 * time.Second); err != nil {
			e.Kill()
		}
	}
}

func (d *demo) event(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + "  " + fmt.Sprintf(format, args...)
	d.events = append(d.events, line)
	if len(d.events) > 12 {
		d.events = d.events[len(d.events)-12:]
	}
	if !d.live {
		fmt.Fprintln(d.out, line)
	}
}

func (d *demo) table(statuses map[string]fleet.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-22s %-10s %-12s %s\n", "ELECTOR", "HTTP", "IS_LEADER", "LEADER", "TRANSITIONS")
	for _, e := range d.electors {
		s, ok := statuses[e.ID]
		switch {
		case ok:
			fmt.Fprintf(&b, "%-12s %-22s %-10v %-12s %d\n", e.ID, e.Addr, s.IsLeader, orDash(s.Leader), s.LeaderTransitions)
		case d.down[e.ID] != "":
			fmt.Fprintf(&b, "%-12s %-22s %s\n", e.ID, e.Addr, d.down[e.ID])
		default:
			fmt.Fprintf(&b, "%-12s %-22s %s\n", e.ID, e.Addr, "starting")
		}
	}
	return b.String()
}

func (d *demo) draw(table string) {
	if !d.live {
		fmt.Fprint(d.out, table)
		return
	}
	// Clear the screen and draw the table with the latest events below it.
	fmt.Fprint(d.out, "\033[H\033[2J")
	fmt.Fprintf(d.out, "k8s-elector demo (Ctrl-C stops everything)   %s\n\n", time.Now().Format("15:04:05"))
	fmt.Fprint(d.out, table)
	fmt.Fprintln(d.out)
	for _, line := range d.events {
		fmt.Fprintln(d.out, line)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
