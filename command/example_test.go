package command_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/command"
)

// A program run while leading, with an Elector of the default TTL: the
// Elector takes the Command's Options, and the Command runs the Elector.
func Example() {
	ctx := context.Background()
	const election, namespace, id = "my-singleton", "default", "pod-a"
	c, err := command.New(command.Config{
		Name: "/app/my-singleton", Args: []string{"--flag", "value"},
		Election: election, Namespace: namespace, ID: id,
		Timings: elector.DefaultTimings(0), // the default TTL
		Exit:    command.ExitStop,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	e, err := elector.New(election, append([]elector.Option{
		elector.WithNamespace(namespace), elector.WithID(id),
		// WithRESTConfig or WithClient, ...; serve c.Metrics() with
		// e.Metrics() (prometheus.Gatherers).
	}, c.Options()...)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	err = c.Run(ctx, e)
	if x, ok := errors.AsType[*command.ExitError](err); ok {
		os.Exit(x.Code) // the command's code is the container's
	}
}
