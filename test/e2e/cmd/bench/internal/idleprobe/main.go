// Command idleprobe times Lease updates sent by a process that was idle
// before each: the bench's floor of a graceful handover, whose two writes
// come from processes that sent nothing since a renewal or longer. It
// creates the Lease -name (or takes it over if it exists), then -n times
// sleeps -gap and updates it, printing each round trip in seconds on a
// line of stdout. It deletes the Lease before it exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file")
		namespace  = flag.String("namespace", "default", "the Lease's namespace")
		name       = flag.String("name", "idle-probe", "the Lease to update")
		n          = flag.Int("n", 10, "how many updates")
		gap        = flag.Duration("gap", 3500*time.Millisecond, "how long the process idles before each update")
	)
	flag.Parse()
	if err := run(*kubeconfig, *namespace, *name, *n, *gap); err != nil {
		fmt.Fprintln(os.Stderr, "idleprobe:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, namespace, name string, n int, gap time.Duration) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side wait in the figure
	client, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	leases := client.Leases(namespace)
	l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		l, err = leases.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	defer func() { _ = leases.Delete(ctx, name, metav1.DeleteOptions{}) }()
	for i := range n {
		time.Sleep(gap)
		holder := fmt.Sprintf("idle-probe-%d", i)
		l.Spec.HolderIdentity = &holder
		t0 := time.Now()
		if l, err = leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			return err
		}
		fmt.Println(time.Since(t0).Seconds())
	}
	return nil
}
