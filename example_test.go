package elector_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	elector "github.com/k8s-elector/elector"
)

// A candidate leads, serves its status over HTTP, and releases the lease when
// its context is cancelled. A fake clientset stands in for the cluster.
func Example() {
	client := fake.NewClientset()
	leading := make(chan struct{})
	e, err := elector.New("example",
		elector.WithClient(client),
		elector.WithID("pod-a"),
		elector.WithOnStartedLeading(func(ctx context.Context) {
			close(leading)
			<-ctx.Done() // lead until the term ends
		}),
		elector.WithOnStoppedLeading(func() { fmt.Println("stopped leading") }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	<-leading

	s := e.Status()
	fmt.Printf("leader %s, is_leader %v\n", s.Leader, s.IsLeader)
	srv := httptest.NewServer(e)
	resp, err := srv.Client().Get(srv.URL + "/")
	if err == nil {
		fmt.Println("GET /", resp.Status, resp.Header.Get("Content-Type"))
		resp.Body.Close()
	}
	srv.Close()

	cancel()
	fmt.Println("Run:", <-done)
	lease, _ := client.CoordinationV1().Leases("default").Get(context.Background(), "example", metav1.GetOptions{})
	fmt.Printf("holder after release: %q\n", *lease.Spec.HolderIdentity)
	// Output:
	// leader pod-a, is_leader true
	// GET / 200 OK application/json
	// stopped leading
	// Run: <nil>
	// holder after release: ""
}

// New reports every invalid option at once, each with its value and what is
// accepted.
func ExampleNew_validation() {
	_, err := elector.New("My_Election", elector.WithClient(fake.NewClientset()),
		elector.WithTTL(2500*1e6), elector.WithLockType("zookeeper"))
	fmt.Println(err)
	// Output:
	// elector: election name "My_Election" is not a valid object name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
	// elector: lock type "zookeeper" is not supported: want one of leases, endpoints, configmaps, endpointsleases, configmapsleases
	// elector: TTL 2.5s is not a whole number of seconds: the lock record stores whole seconds (try 3s)
}
