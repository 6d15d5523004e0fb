// Command shards runs many elections, the shards of some work, in one
// process with an elector.Group, and spreads their leadership over every
// replica that runs it: with K replicas and N shards, each leads at most
// ⌈N/K⌉. A replica that joins takes its share by graceful handovers; one
// that gets SIGTERM hands its shards over to the others before it exits;
// one that crashes loses its shards when their leases run out.
//
//	shards -kubeconfig ~/.kube/config -id replica-1 -http :5002
//	curl -s localhost:5002/          # every shard's status
//	curl -s localhost:5002/shard-7   # one shard's
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	elector "github.com/k8s-elector/elector"
)

func main() {
	err := run()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	// NewGroup reports each problem on a line of its own.
	fmt.Fprintln(os.Stderr, "shards:", strings.ReplaceAll(err.Error(), "\n", "; "))
	if errors.As(err, new(usageError)) {
		os.Exit(2)
	}
	os.Exit(1)
}

// usageError is an error in the flags, found before any request.
type usageError struct{ error }

func badFlags(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("shards", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config)")
	namespace := fs.String("namespace", "default", "namespace of the Leases")
	id := fs.String("id", host, "this replica's identity, unique among the replicas")
	group := fs.String("group", "shards", "name of the Group, the same in every replica")
	shards := fs.Int("shards", 30, "number of shards, the same in every replica")
	ttl := fs.Duration("ttl", 10*time.Second, "lease duration, whole seconds")
	addr := fs.String("http", ":5002", "listen address of the status API (GET /, GET /shard-N, GET /metrics)")
	if err := parse(fs); err != nil {
		return err
	}
	if *shards < 1 {
		return badFlags("-shards=%d: want at least 1", *shards)
	}

	zc := zap.NewProductionConfig()
	zc.DisableStacktrace = true
	zl, err := zc.Build()
	if err != nil {
		return err
	}
	defer func() { _ = zl.Sync() }()
	log := zapr.NewLogger(zl)

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return badFlags("no usable Kubernetes client configuration: %w", err)
	}
	// The Group's one client carries every shard's requests: with no QPS
	// or RateLimiter in cfg, it has no client-side rate limit, and the API
	// server's priority and fairness limits it.
	// NewGroup checks every option and does not touch the cluster.
	g, err := elector.NewGroup(*group,
		elector.WithRESTConfig(cfg), elector.WithNamespace(*namespace), elector.WithID(*id),
		elector.WithTTL(*ttl), elector.WithLogger(log), elector.WithSpread(true))
	if err != nil {
		return usageError{err}
	}
	for i := range *shards {
		name := fmt.Sprintf("shard-%d", i)
		if _, err := g.Add(name, elector.WithOnStartedLeading(lead(log, name))); err != nil {
			return usageError{err}
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", g) // GET / lists the shards, GET /shard-7 is one
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.Metrics(), promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	// On SIGTERM, Run hands this replica's shards over to the others, and
	// returns once it has released them.
	err = g.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return err
}

// lead is the work of one shard: it runs while this replica leads the
// shard, and must return soon after ctx ends.
func lead(log logr.Logger, shard string) func(ctx context.Context) {
	return func(ctx context.Context) {
		log.Info("leading " + shard)
		<-ctx.Done()
	}
}

// parse parses the command line into fs: a bad flag is one line of error,
// not the usage, which -h prints.
func parse(fs *flag.FlagSet) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stderr)
		fs.PrintDefaults()
		return err
	case err != nil:
		return badFlags("%w (see -h)", err)
	case fs.NArg() > 0:
		return badFlags("unexpected argument %q (see -h)", fs.Arg(0))
	}
	return nil
}

// restConfig is the -kubeconfig file's configuration, else the in-cluster
// one, else kubectl's: $KUBECONFIG or ~/.kube/config.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}
