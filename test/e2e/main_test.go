package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
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

// How the suite runs its tests at once. Most tests run in parallel, and
// three kinds of slot, not go test's own, decide how many at a time:
//
//   - controlPlaneSlots: tests that work on the suite's control plane (or
//     start one of their own), and the builds of helper binaries: -parallel
//     of them at once, as go test alone would run them (parallel, heavy);
//   - nodeTurn: the node tests that need the one-node cluster to themselves,
//     one at a time, beside the others (nodeTest);
//   - none: the node tests that mostly wait, for a token's rotation or an
//     alert's `for:` (TestNodeTokenRotation, TestNodeMonitoring), and the
//     tests whose parallel subtests do the work (parallelParent).
//
// The node tests, which mostly wait for Pods, thus overlap the rest of the
// suite instead of adding to it. Tests that must run alone (TestOutage
// restarts etcd; TestCrashAfterLostRace and TestImage time or build on a
// quiet machine) do not call t.Parallel and run first.
var (
	controlPlaneSlots chan struct{}
	nodeTurn          = make(chan struct{}, 1)
)

// shareParallelSlots sizes controlPlaneSlots to -parallel, and lifts go
// test's own limit, which the slots replace, before the tests start.
func shareParallelSlots() error {
	f := flag.Lookup("test.parallel")
	n, err := strconv.Atoi(f.Value.String())
	if err != nil || n < 1 {
		return fmt.Errorf("-parallel=%s: want a positive number", f.Value.String())
	}
	controlPlaneSlots = make(chan struct{}, n)
	return f.Value.Set("1000")
}

// parallel runs t in parallel, in one of the control-plane slots.
func parallel(t *testing.T) {
	t.Parallel()
	controlPlaneSlots <- struct{}{}
	t.Cleanup(func() { <-controlPlaneSlots })
}

// parallelParent runs t in parallel without a slot: its subtests call
// parallel, and its own work is setting them up.
func parallelParent(t *testing.T) { t.Parallel() }

// nodeTest runs t in parallel with the rest of the suite, and alone among
// the node tests that call it, so that it finds the node as quiet as the
// one before did. Call it before startNode.
func nodeTest(t *testing.T) {
	t.Parallel()
	t.Cleanup(takeNodeTurn())
}

// takeNodeTurn waits until no other node test has the node to itself, takes
// it, and returns the function that gives it back (once, however often it is
// called).
func takeNodeTurn() (giveBack func()) {
	nodeTurn <- struct{}{}
	var once sync.Once
	return func() { once.Do(func() { <-nodeTurn }) }
}

// heavy runs f in one of the control-plane slots: for work outside a test
// that loads the machine as much, such as building a helper binary.
func heavy(f func()) {
	controlPlaneSlots <- struct{}{}
	defer func() { <-controlPlaneSlots }()
	f()
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
