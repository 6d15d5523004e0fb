// Command minimal is the bench's reference point for size and memory: the
// smallest leader elector that client-go makes possible. It holds a Lease
// with client-go's leaderelection and a LeaseLock on a coordination/v1 client
// from a kubeconfig, and does nothing else: no HTTP server, no metrics, no
// structured logging, no watch.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file")
		election   = flag.String("election", "minimal", "Lease name")
		namespace  = flag.String("namespace", "default", "Lease namespace")
		id         = flag.String("id", "minimal", "identity")
		ttl        = flag.Duration("ttl", 10*time.Second, "lease duration")
		renew      = flag.Duration("renew-deadline", 0, "renew deadline (required): the bench passes k8s-elector's default for the TTL")
		retry      = flag.Duration("retry-period", 0, "retry period (required): the bench passes k8s-elector's default for the TTL")
	)
	flag.Parse()
	if *renew <= 0 || *retry <= 0 {
		fmt.Fprintln(os.Stderr, "minimal: -renew-deadline and -retry-period are required")
		os.Exit(2)
	}
	if err := run(*kubeconfig, *namespace, *election, *id, *ttl, *renew, *retry); err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, namespace, election, id string, ttl, renew, retry time.Duration) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: election},
			Client:     client,
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration:   ttl,
		RenewDeadline:   renew,
		RetryPeriod:     retry,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { <-ctx.Done() },
			OnStoppedLeading: func() {},
		},
	})
	return nil
}
