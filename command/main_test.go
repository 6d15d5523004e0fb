package command

import (
	"fmt"
	"os"
	goruntime "runtime"
	"testing"

	"github.com/k8s-elector/elector/internal/testkit"
)

func TestMain(m *testing.M) {
	if os.Getenv(childParentEnv) != "" {
		runCommandParent()
		return
	}
	testkit.Main(m)
}

// childParentEnv makes the test binary a parent that starts a command the
// way lead does, prints its PID and waits to be killed: see
// TestCommandDiesWithTheElector.
const childParentEnv = "ELECTOR_TEST_COMMAND_PARENT"

// runCommandParent is the parent process of TestCommandDiesWithTheElector.
func runCommandParent() {
	goruntime.LockOSThread()
	p, err := startProcess("/bin/sleep", []string{"sleep", "60"}, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(p.pid())
	p.wait()
}
