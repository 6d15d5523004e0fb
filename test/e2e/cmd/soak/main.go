// Command soak runs a fleet of k8s-elector processes against a local
// kube-apiserver and etcd for a while, injecting random faults every few
// seconds: SIGKILL and restart, SIGSTOP and SIGCONT, a blackholed or delayed
// connection to the API server (each elector reaches it through a proxy of
// its own). It records every elector's GET / every 15ms and, at the end,
// checks the election's invariants over the whole recording and prints a
// report. It is not part of CI.
//
//	go run ./cmd/soak -duration=10m
//
// It exits 1 if any invariant was broken (two leaders at once, a stale write
// accepted by the fenced store, a token going backwards, a leader's answer
// breaking the status contract, a stack trace in a log), 2 on bad flags.
// Ctrl-C ends the run early and still prints the report.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/faultproxy"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
	}
	os.Exit(code)
}

type options struct {
	duration time.Duration
	every    time.Duration
	n        int
	lock     string
	ttl      time.Duration
	seed     uint64
	binary   string
	verbose  bool
}

func run(ctx context.Context, args []string, out io.Writer) (int, error) {
	// A flag set of its own: envtest's dependencies register flags (such as
	// -kubeconfig) on the global one.
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var o options
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "How long to inject faults.")
	fs.DurationVar(&o.every, "every", 3*time.Second, "Mean time between the starts of two faults.")
	fs.IntVar(&o.n, "n", 3, "Number of electors.")
	fs.StringVar(&o.lock, "lock-type", "leases", "Lock type: leases, configmaps or endpoints.")
	fs.DurationVar(&o.ttl, "ttl", 6*time.Second, "Election TTL.")
	fs.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "Seed of the fault schedule.")
	fs.StringVar(&o.binary, "binary", "", "The k8s-elector binary (default: build it).")
	fs.BoolVar(&o.verbose, "v", false, "Copy every elector's log to stderr.")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if o.n < 2 || o.every <= 0 || o.duration <= 0 || o.ttl < time.Second {
		return 2, fmt.Errorf("need -n ≥ 2, -every > 0, -duration > 0 and -ttl ≥ 1s")
	}

	tmp, err := os.MkdirTemp("", "k8s-elector-soak-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	if o.binary == "" {
		fmt.Fprintln(out, "building k8s-elector…")
		if o.binary, err = fleet.Build(controlplane.RepoRoot(), tmp); err != nil {
			return 1, err
		}
	}
	fmt.Fprintln(out, "starting kube-apiserver and etcd…")
	cp, err := controlplane.Start()
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "soak: stopping the control plane:", err)
		}
	}()
	s, err := newSoak(cp, o, out)
	if err != nil {
		return 1, err
	}
	defer s.stopAll()
	s.loop(ctx)
	return s.report(), nil
}

// member is one elector: its proxy, and its current process, which a kill
// replaces.
type member struct {
	id    string
	cfg   fleet.Config
	proxy *faultproxy.Proxy
	cur   atomic.Pointer[fleet.Elector]

	mu   sync.Mutex
	logs []string // of processes that were killed
	busy bool     // a fault is under way
}

func (m *member) status(ctx context.Context) (fleet.Status, error) {
	return m.cur.Load().Status(ctx)
}

type soak struct {
	o       options
	out     io.Writer
	rng     *rand.Rand
	members []*member
	rec     *history.Recorder
	begin   time.Time
	faults  sync.WaitGroup

	mu     sync.Mutex
	counts map[string]int
}

func newSoak(cp *controlplane.ControlPlane, o options, out io.Writer) (*soak, error) {
	admin, err := cp.AdminClient()
	if err != nil {
		return nil, err
	}
	const ns = "soak"
	_, err = admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	u, err := url.Parse(cp.Admin.Host)
	if err != nil {
		return nil, err
	}
	s := &soak{
		o: o, out: out, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x5eed)),
		rec: history.NewRecorder(), counts: map[string]int{},
	}
	for i := range o.n {
		id := fmt.Sprintf("elector-%d", i+1)
		p, err := faultproxy.New(u.Host)
		if err != nil {
			return nil, err
		}
		cfg := rest.CopyConfig(cp.Admin)
		cfg.Host = "https://" + p.Addr()
		kubeconfig, err := cp.WriteKubeconfig(id, cfg)
		if err != nil {
			return nil, err
		}
		m := &member{id: id, proxy: p, cfg: fleet.Config{
			Binary: o.binary, Kubeconfig: kubeconfig, Election: "soak", Namespace: ns,
			LockType: o.lock, TTL: o.ttl,
		}}
		if o.verbose {
			m.cfg.Log = os.Stderr
		}
		e, err := fleet.Start(m.cfg, id)
		if err != nil {
			return nil, err
		}
		m.cur.Store(e)
		s.members = append(s.members, m)
		s.rec.Add(id, m.status)
	}
	s.begin = time.Now()
	s.event("started %d electors (lock type %s, TTL %s), seed %d; faults for %s", o.n, o.lock, o.ttl, o.seed, o.duration)
	return s, nil
}

func (s *soak) event(format string, args ...any) {
	fmt.Fprintf(s.out, "%8s  %s\n", offset(time.Since(s.begin)), fmt.Sprintf(format, args...))
}

func offset(d time.Duration) string {
	d = d.Round(time.Millisecond)
	return fmt.Sprintf("+%d:%06.3f", int(d.Minutes()), (d % time.Minute).Seconds())
}

// between returns a random duration in [lo, hi).
func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// loop starts a fault every few seconds until the duration is over or ctx
// ends, then waits for the faults under way to heal. At most n-1 electors
// are under a fault at a time.
func (s *soak) loop(ctx context.Context) {
	stop := make(chan struct{})
	deadline := time.After(s.o.duration)
	// Let the fleet elect a first leader.
	wait := s.o.ttl
	for {
		select {
		case <-ctx.Done():
			s.event("interrupted")
			close(stop)
			s.faults.Wait()
			return
		case <-deadline:
			close(stop)
			s.faults.Wait()
			// Give the fleet a TTL and two retries to settle after the last
			// fault, so that the report's gaps end.
			s.event("faults over; settling")
			select {
			case <-time.After(s.o.ttl + elector.DefaultTimings(s.o.ttl).RenewDeadline):
			case <-ctx.Done():
			}
			return
		case <-time.After(wait):
		}
		wait = s.between(s.o.every/2, s.o.every*3/2)
		s.inject(stop)
	}
}

// inject starts one random fault on a random elector that is not under one,
// preferring the leader.
func (s *soak) inject(stop <-chan struct{}) {
	var free []*member
	busy := 0
	for _, m := range s.members {
		m.mu.Lock()
		if m.busy {
			busy++
		} else {
			free = append(free, m)
		}
		m.mu.Unlock()
	}
	if busy >= len(s.members)-1 || len(free) == 0 {
		return
	}
	target := free[s.rng.IntN(len(free))]
	if s.rng.IntN(10) < 6 {
		for _, m := range free {
			if l, ok := s.rec.Latest(m.id); ok && l.Leading() {
				target = m
			}
		}
	}
	role := "follower"
	if l, ok := s.rec.Latest(target.id); ok && l.Leading() {
		role = "leader"
	}
	renewDeadline := elector.DefaultTimings(s.o.ttl).RenewDeadline
	var (
		kind  string
		how   string
		dur   time.Duration
		start func() error
		heal  func() error
	)
	switch s.rng.IntN(4) {
	case 0:
		// Restarted within the TTL, a killed leader takes its own lease back
		// (same ID); later, a follower has taken it over.
		kind, dur = "kill", s.between(500*time.Millisecond, 2*s.o.ttl)
		how = fmt.Sprintf("SIGKILL, restart after %s", dur.Round(time.Millisecond))
		start = func() error { target.cur.Load().Kill(); return nil }
		heal = func() error { return s.restart(target) }
	case 1:
		kind, dur = "pause", s.between(200*time.Millisecond, s.o.ttl+4*time.Second)
		how = fmt.Sprintf("SIGSTOP for %s", dur.Round(time.Millisecond))
		start = func() error { return target.cur.Load().Signal(syscall.SIGSTOP) }
		heal = func() error { return target.cur.Load().Signal(syscall.SIGCONT) }
	case 2:
		kind, dur = "blackhole", s.between(time.Second, 2*s.o.ttl)
		how = fmt.Sprintf("blackhole for %s", dur.Round(time.Millisecond))
		start = func() error { target.proxy.Blackhole(); return nil }
		heal = func() error { target.proxy.Pass(); return nil }
	default:
		d := renewDeadline / 10 * time.Duration(1+s.rng.IntN(12))
		kind, dur = "delay", s.between(2*time.Second, 2*s.o.ttl)
		how = fmt.Sprintf("responses delayed by %s for %s", d, dur.Round(time.Millisecond))
		start = func() error { target.proxy.Delay(d); return nil }
		heal = func() error { target.proxy.Pass(); return nil }
	}
	target.mu.Lock()
	target.busy = true
	target.mu.Unlock()
	s.mu.Lock()
	s.counts[kind]++
	s.mu.Unlock()
	s.event("%s (%s): %s", target.id, role, how)
	if err := start(); err != nil {
		s.event("%s: %s failed: %v", target.id, kind, err)
	}
	s.faults.Go(func() {
		select {
		case <-time.After(dur):
		case <-stop:
		}
		if err := heal(); err != nil {
			s.event("%s: healing %s failed: %v", target.id, kind, err)
		} else {
			s.event("%s: %s healed", target.id, kind)
		}
		target.mu.Lock()
		target.busy = false
		target.mu.Unlock()
	})
}

func (s *soak) restart(m *member) error {
	old := m.cur.Load()
	old.Kill()
	e, err := fleet.Start(m.cfg, m.id)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.logs = append(m.logs, old.Logs())
	m.mu.Unlock()
	m.cur.Store(e)
	return nil
}

func (s *soak) stopAll() {
	for _, m := range s.members {
		e := m.cur.Load()
		_ = e.Signal(syscall.SIGCONT)
		_ = e.Signal(syscall.SIGTERM)
	}
	for _, m := range s.members {
		e := m.cur.Load()
		if _, err := e.Wait(10 * time.Second); err != nil {
			e.Kill()
		}
		_ = m.proxy.Close()
	}
}

// countHandovers counts the changes of elector from one run of leadership
// to the next; runs are ordered by From.
func countHandovers(runs []history.Run) int {
	n := 0
	for i := 1; i < len(runs); i++ {
		if runs[i].Elector != runs[i-1].Elector {
			n++
		}
	}
	return n
}

// longestGap returns the longest stretch in which nobody claimed
// leadership, from the first leader on until end, and when it began; runs
// are ordered by From.
func longestGap(runs []history.Run, end time.Time) (gap time.Duration, at time.Time) {
	if len(runs) == 0 {
		return 0, time.Time{}
	}
	covered := runs[0].To
	for _, r := range runs[1:] {
		if d := r.From.Sub(covered); d > gap {
			gap, at = d, covered
		}
		if r.To.After(covered) {
			covered = r.To
		}
	}
	if d := end.Sub(covered); d > gap {
		gap, at = d, covered
	}
	return gap, at
}

// report checks the recording and prints what happened; it returns the exit
// code.
func (s *soak) report() int {
	h := s.rec.Stop()
	runs := h.Runs()
	handovers := countHandovers(runs)
	gap, gapAt := longestGap(runs, h.End)
	overlaps := h.Overlaps()
	stale, rejected := h.StaleWrites()
	accepted := 0
	for _, w := range h.Writes {
		if w.Accepted {
			accepted++
		}
	}
	tokens, claims := h.TokenViolations(), h.BadClaims()
	var traces []string
	for _, m := range s.members {
		m.mu.Lock()
		logs := append(slices.Clone(m.logs), m.cur.Load().Logs())
		m.mu.Unlock()
		for _, l := range logs {
			for _, line := range history.StackTraces(l) {
				traces = append(traces, m.id+": "+line)
			}
		}
	}

	var kinds []string
	total := 0
	for _, k := range []string{"kill", "pause", "blackhole", "delay"} {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.counts[k]))
		total += s.counts[k]
	}
	w := s.out
	fmt.Fprintln(w)
	fmt.Fprintf(w, "soak: %s with %d electors (lock type %s, TTL %s), seed %d\n",
		h.End.Sub(h.Begin).Round(time.Second), s.o.n, s.o.lock, s.o.ttl, s.o.seed)
	fmt.Fprintf(w, "faults injected:                        %d (%s)\n", total, strings.Join(kinds, ", "))
	fmt.Fprintf(w, "handovers:                              %d\n", handovers)
	if len(runs) == 0 {
		fmt.Fprintf(w, "longest leaderless gap:                 the whole run: nobody ever led\n")
	} else {
		fmt.Fprintf(w, "longest leaderless gap:                 %s (from %s)\n", gap.Round(time.Millisecond), offset(gapAt.Sub(s.begin)))
	}
	fmt.Fprintf(w, "answers recorded:                       %d\n", len(h.Samples))
	fmt.Fprintf(w, "fenced store writes:                    %d accepted, %d rejected as stale\n", accepted, len(rejected))
	fmt.Fprintf(w, "stale writes accepted by the store:     %d\n", len(stale))
	fmt.Fprintf(w, "two-leader instants:                    %d\n", len(overlaps))
	fmt.Fprintf(w, "token violations:                       %d\n", len(tokens))
	fmt.Fprintf(w, "status contract violations:             %d\n", len(claims))
	fmt.Fprintf(w, "stack traces in logs:                   %d\n", len(traces))

	var bad []string
	var around []time.Time
	for _, o := range overlaps {
		bad = append(bad, o.String())
		around = append(around, o.From)
	}
	for _, st := range stale {
		bad = append(bad, st.String())
		around = append(around, st.Write.At)
	}
	bad = append(bad, tokens...)
	bad = append(bad, claims...)
	bad = append(bad, traces...)
	if len(bad) == 0 {
		fmt.Fprintln(w, "PASS")
		return 0
	}
	fmt.Fprintln(w, "\nviolations:")
	for i, v := range bad {
		if i == 20 {
			fmt.Fprintf(w, "  … and %d more\n", len(bad)-i)
			break
		}
		fmt.Fprintln(w, "  "+v)
	}
	if len(around) > 0 {
		fmt.Fprintf(w, "\nwhat each elector answered around the first one:\n%s", h.Timeline(around[0].Add(-2*time.Second), around[0].Add(2*time.Second)))
	}
	fmt.Fprintln(w, "FAIL")
	return 1
}
