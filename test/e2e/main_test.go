package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// The suite shares one control plane and one k8s-elector binary; every test
// works in a namespace of its own.
var (
	cp     *controlplane.ControlPlane
	admin  kubernetes.Interface
	binary string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

// controlPlaneSlots holds one token per parallel test that works on the
// suite's control plane, or starts one of its own: -parallel of them run at
// once, as go test alone would run them. The node tests that mostly wait
// (waitingNodeTests) run beside them, in slots of their own, so that their
// minutes of waiting overlap the rest of the suite instead of adding to it.
var controlPlaneSlots chan struct{}

// waitingNodeTests is the number of node tests that call t.Parallel: they
// wait for a token's rotation or an alert's `for:`, with little to do.
const waitingNodeTests = 2

// shareParallelSlots sizes controlPlaneSlots to -parallel and raises
// -parallel by waitingNodeTests, before the tests start.
func shareParallelSlots() error {
	f := flag.Lookup("test.parallel")
	n, err := strconv.Atoi(f.Value.String())
	if err != nil || n < 1 {
		return fmt.Errorf("-parallel=%s: want a positive number", f.Value.String())
	}
	controlPlaneSlots = make(chan struct{}, n)
	return f.Value.Set(strconv.Itoa(n + waitingNodeTests))
}

// parallel runs t in parallel with the other tests that call it, at most
// -parallel at once, and with the waiting node tests.
func parallel(t *testing.T) {
	t.Parallel()
	controlPlaneSlots <- struct{}{}
	t.Cleanup(func() { <-controlPlaneSlots })
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "k8s-elector-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if binary = os.Getenv("E2E_ELECTOR_BINARY"); binary == "" {
		if binary, err = fleet.Build(controlplane.RepoRoot(), tmp); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	// The control plane is built if it is not cached: a missing binary fails
	// the suite, it never skips it.
	if cp, err = controlplane.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the control plane:", err)
		}
	}()
	// kube-apiserver and etcd run in process groups of their own: stop them
	// when the suite is interrupted, too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: stopping the control plane\n", sig)
		_ = cp.Stop()
		os.Exit(130)
	}()
	if admin, err = cp.AdminClient(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	flag.Parse()
	if err := shareParallelSlots(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	startNodeEarly()
	code := m.Run()
	if err := stopNode(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the node tests' cluster:", err)
		code = max(code, 1)
	}
	return code
}
