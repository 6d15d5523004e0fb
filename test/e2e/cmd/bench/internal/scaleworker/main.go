// Command scaleworker runs many elections through the elector library in one
// process, one candidate each, for the benchmark (cmd/bench) to measure its
// memory and API load. Every 250ms it prints "<leading> <total> <terms>" on
// stdout: the elections this process leads, all of them, and the terms
// started so far (more than total once leadership was lost and regained).
// SIGTERM or SIGINT stops every election (each releases its lock), prints the
// Electors' own lock request counters summed over all elections and a count
// of their log lines (up to V(1)) on stderr, and exits.
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
		ttl        = fs.Duration("ttl", elector.DefaultTimings(0).TTL, "The TTL of every election.")
		watch      = fs.Bool("watch", true, "Watch the lock objects (elector.WithWatch).")
		prefix     = fs.String("prefix", "scale", "The elections are named <prefix>-<number>.")
	)
	_ = fs.Parse(os.Args[1:])
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	logs := newLogSummary()
	var terms atomic.Int64
	electors := make([]*elector.Elector, *n)
	for i := range electors {
		electors[i], err = elector.New(fmt.Sprintf("%s-%03d", *prefix, i),
			elector.WithRESTConfig(cfg),
			elector.WithNamespace(*namespace),
			elector.WithID("scaleworker"),
			elector.WithTTL(*ttl),
			elector.WithWatch(*watch),
			elector.WithLogger(logs.logger()),
			elector.WithOnStartedLeading(func(context.Context) { terms.Add(1) }),
		)
		if err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(electors))
	for _, e := range electors {
		wg.Go(func() {
			if err := e.Run(ctx); err != nil {
				errs <- err
			}
		})
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case err := <-errs:
			return err
		case <-tick.C:
			leading := 0
			for _, e := range electors {
				if e.Status().IsLeader {
					leading++
				}
			}
			fmt.Printf("%d %d %d\n", leading, len(electors), terms.Load())
		}
	}
	wg.Wait()
	fmt.Fprintln(os.Stderr, "lock requests (the Electors' own counters, all elections):", lockRequests(electors))
	fmt.Fprint(os.Stderr, logs)
	return nil
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
