package elector_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"syscall"

	"k8s.io/client-go/rest"

	elector "github.com/k8s-elector/elector"
)

// A Group runs 30 elections, the shards of some work, in one process, and
// spreads their leadership over the replicas that run it: with three
// replicas, each leads 10. examples/shards is this as a program.
func ExampleGroup() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatal(err)
	}
	g, err := elector.NewGroup("shards", elector.WithRESTConfig(cfg), elector.WithSpread(true))
	if err != nil {
		log.Fatal(err)
	}
	for i := range 30 {
		shard := fmt.Sprintf("shard-%d", i)
		_, err := g.Add(shard, elector.WithOnStartedLeading(func(ctx context.Context) {
			log.Printf("leading %s", shard)
			<-ctx.Done() // work on the shard until the term ends
		}))
		if err != nil {
			log.Fatal(err)
		}
	}
	// GET / lists every shard's status, GET /shard-7 is one.
	go func() { log.Fatal(http.ListenAndServe(":5002", g)) }()

	// On SIGTERM, Run hands this replica's shards over to the others.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := g.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
