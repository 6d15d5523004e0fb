package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"

	elector "github.com/k8s-elector/elector"
)

// handoverFlags are the flags of `k8s-elector handover`.
type handoverFlags struct {
	election, namespace, kubeconfig, lockType, to string
	timeout                                       time.Duration
}

// runHandover runs `k8s-elector handover`: it asks the election's leader,
// through the lock object, to hand over (elector.RequestHandover), and
// exits 0 once the new leader leads, 1 with one line when that cannot
// happen, 2 on bad input.
func runHandover(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var h handoverFlags
	fs := flag.NewFlagSet("k8s-elector handover", flag.ContinueOnError)
	fs.StringVar(&h.election, "election", "", "The name of the election. This is required.")
	fs.StringVar(&h.namespace, "namespace", "default", "The election's namespace.")
	fs.StringVar(&h.kubeconfig, "kubeconfig", "", "The kubeconfig file to use. If not set, in-cluster config is used; outside a cluster, $KUBECONFIG or ~/.kube/config, as kubectl does.")
	fs.StringVar(&h.lockType, "lock-type", string(elector.LockLeases), "The election's lock type ("+lockTypes+").")
	fs.StringVar(&h.to, "to", "", "The ID of the candidate to hand over to. If not set, the leader chooses the best other ready candidate.")
	fs.DurationVar(&h.timeout, "timeout", 30*time.Second, "How long to wait for the new leader.")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage: k8s-elector handover -election=NAME [-namespace=NS] [-kubeconfig=K] [-to=ID] [-timeout=D]\n\n"+
				"Asks the election's leader, through the lock object, to hand over, and waits until the new leader\n"+
				"leads: exit 0, printing its ID. Exit 1, with one line, if it cannot happen (no such candidate, the\n"+
				"candidate is not ready, nobody leads) or on the timeout; exit 2 on bad input. Needs get and update on\n"+
				"the lock object only.")
			fs.PrintDefaults()
			return exitOK
		}
		return usageError(stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Errorf("unexpected argument %q: k8s-elector handover takes flags only", fs.Arg(0)))
	}
	var errs []error
	if h.election == "" && getenv(envName("election")) != "" {
		h.election = getenv(envName("election"))
	}
	if h.election == "" {
		errs = append(errs, errors.New("-election is required: the name of the election to hand over"))
	}
	if h.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout=%s: want a positive duration", h.timeout))
	}
	// New validates the names, the lock type and the ID the way a
	// candidate would; it touches nothing.
	opts := []elector.Option{elector.WithNamespace(h.namespace), elector.WithLockType(elector.LockType(h.lockType)),
		elector.WithClient(&kubernetes.Clientset{})}
	if h.to != "" {
		opts = append(opts, elector.WithID(h.to))
	}
	if h.election != "" {
		if _, err := elector.New(h.election, opts...); err != nil {
			errs = append(errs, err)
		}
	}
	cfg, err := restConfig(h.kubeconfig)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return usageError(stderr, errors.Join(errs...))
	}
	client, err := kubernetes.NewForConfig(withUserAgent(cfg))
	if err != nil {
		return usageError(stderr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	leader, err := elector.RequestHandover(ctx, client, elector.LockType(h.lockType), h.namespace, h.election, h.to)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s: %w", h.timeout, err)
		}
		fmt.Fprintln(stderr, "k8s-elector handover:", singleLine(err.Error()))
		return exitFailure
	}
	fmt.Fprintln(stdout, leader)
	return exitOK
}
