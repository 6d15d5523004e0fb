// Command scaleworker runs many elections in one process for the benchmark
// (cmd/bench) to measure its memory and API load: -n elections of
// -candidates candidates each, through the elector library (-impl=elector)
// or plain client-go's leaderelection (-impl=clientgo). Every 250ms it prints
// "<leading> <total> <terms> <failures>" on stdout: the elections led by one
// of its candidates, all of them, the terms started so far (more than total
// once leadership was lost and regained), and the log lines so far that
// report an error (a failed request, mostly). SIGTERM or SIGINT stops every candidate
// (each leader releases its lock), prints on stderr, for the elector library,
// the Electors' own lock request counters summed over all candidates, then a
// count of the log lines (up to V(1)), and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"

	elector "github.com/k8s-elector/elector"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "scaleworker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	fs := flag.NewFlagSet("scaleworker", flag.ExitOnError)
	var (
		kubeconfig = fs.String("kubeconfig", "", "The kubeconfig file.")
		namespace  = fs.String("namespace", "default", "The namespace of the elections.")
		n          = fs.Int("n", 500, "The number of elections.")
		candidates = fs.Int("candidates", 1, "The candidates of each election, all in this process.")
		impl       = fs.String("impl", implElector, "Who campaigns: elector (an Elector per candidate), group (an elector.Group per candidate index, each running every election) or clientgo (client-go's leaderelection with a LeaseLock).")
		ownClients = fs.Bool("own-clients", false, "Give each candidate a clientset of its own, on a connection of its own, as separate Pods have (default: one client for all).")
		ttl        = fs.Duration("ttl", elector.DefaultTimings(0).TTL, "The TTL of every election.")
		watch      = fs.Bool("watch", true, "Watch the lock objects (elector.WithWatch; the elector library only).")
		prefix     = fs.String("prefix", "scale", "The elections are named <prefix>-<number>.")
		memLimit   = fs.Int("memory-limit-mib", 0, "The Go runtime's soft memory limit in MiB (debug.SetMemoryLimit, as GOMEMLIMIT sets it); 0 for none.")
	)
	_ = fs.Parse(os.Args[1:])
	if *memLimit > 0 {
		debug.SetMemoryLimit(int64(*memLimit) << 20)
	}
	if *impl != implElector && *impl != implClientGo && *impl != implGroup {
		return fmt.Errorf("invalid -impl=%s: want %s, %s or %s", *impl, implElector, implGroup, implClientGo)
	}
	if *n < 1 || *candidates < 1 {
		return fmt.Errorf("invalid -n=%d -candidates=%d: want 1 or more of each", *n, *candidates)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	logs := newLogSummary()
	c := campaign{
		namespace: *namespace, ttl: *ttl, watch: *watch,
		clients: newClients(cfg, *ownClients), logger: logs.logger(),
	}
	if *impl == implGroup {
		var err error
		if c.groups, err = c.newGroups(*candidates); err != nil {
			return err
		}
	}
	elections := make([][]candidate, *n)
	for i := range elections {
		name := fmt.Sprintf("%s-%03d", *prefix, i)
		for j := range *candidates {
			cand, err := c.candidate(*impl, name, candidateID(j, *candidates))
			if err != nil {
				return err
			}
			elections[i] = append(elections[i], cand)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, *n**candidates+len(c.groups))
	runCtx := logr.NewContext(ctx, logs.logger()) // client-go logs through it
	for _, g := range c.groups {
		wg.Go(func() {
			if err := g.Run(runCtx); err != nil {
				errs <- err
			}
		})
	}
	for _, cands := range elections {
		for _, cand := range cands {
			wg.Go(func() {
				if err := cand.run(runCtx); err != nil {
					errs <- err
				}
			})
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case err := <-errs:
			return err
		case <-tick.C:
			fmt.Printf("%d %d %d %d\n", leading(elections), len(elections), c.terms.Load(), logs.failures.Load())
		}
	}
	wg.Wait()
	switch *impl {
	case implElector:
		fmt.Fprintln(os.Stderr, "lock requests (the Electors' own counters, all elections):", lockRequests(electors(elections)))
	case implGroup:
		// Each Elector of a Group serves the Group's registry: one each.
		var one []*elector.Elector
		for j := range c.groups {
			one = append(one, elections[0][j].(groupCandidate).e)
		}
		fmt.Fprintln(os.Stderr, "lock requests (the Groups' own counters, all elections):", lockRequests(one))
	}
	fmt.Fprint(os.Stderr, logs)
	return nil
}

// candidateID is the identity of the j-th of n candidates of an election:
// "scaleworker" when it is the only one.
func candidateID(j, n int) string {
	if n == 1 {
		return "scaleworker"
	}
	return fmt.Sprintf("scaleworker-%d", j+1)
}

// leading returns how many elections one of their candidates leads.
func leading(elections [][]candidate) int {
	n := 0
	for _, cands := range elections {
		if slices.ContainsFunc(cands, candidate.leads) {
			n++
		}
	}
	return n
}

// lockRequests sums k8s_elector_lock_requests_total by operation and result
// over the Electors, from each one's GET /metrics.
func lockRequests(electors []*elector.Elector) string {
	sum := map[string]float64{}
	for _, e := range electors {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		addLockRequests(sum, w.Body.String())
	}
	return formatLockRequests(sum)
}

var (
	lockRequestsRE = regexp.MustCompile(`^k8s_elector_lock_requests_total\{(.*)\} (\S+)$`)
	lockLabelRE    = regexp.MustCompile(`(operation|result)="([^"]*)"`)
)

// addLockRequests adds the k8s_elector_lock_requests_total counters of
// metrics, the text of one GET /metrics, to sum by "operation/result".
func addLockRequests(sum map[string]float64, metrics string) {
	for line := range strings.Lines(metrics) {
		m := lockRequestsRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		k := map[string]string{}
		for _, l := range lockLabelRE.FindAllStringSubmatch(m[1], -1) {
			k[l[1]] = l[2]
		}
		sum[k["operation"]+"/"+k["result"]] += v
	}
}

// formatLockRequests lists sum by key.
func formatLockRequests(sum map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sum)) {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, sum[k]))
	}
	return strings.Join(parts, " ")
}
