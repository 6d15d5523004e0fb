package e2e

import (
	"testing"
	"time"
)

// TestOutage restarts the shared etcd for real, so it runs alone: it is not
// parallel, and Go holds every parallel test until the sequential ones are
// done. It runs three electors behind pass-through proxies and checks the
// fault suite's invariants over the history. (An unreachable API server is
// in TestFault, at the proxies: kube-apiserver drains for longer than a
// test should wait when it is stopped.)
func TestOutage(t *testing.T) {
	t.Run("etcd restarted", func(t *testing.T) {
		f := startFaultFleet(t, "leases")
		f.settle()
		f.mark("restart etcd")
		if err := cp.RestartEtcd(time.Second); err != nil {
			t.Fatal(err)
		}
		healed := f.mark("etcd serving again")
		next, _ := f.leader(recoverWithin, healed, nil)
		f.mark("%s leads", next.ID)
		time.Sleep(ttl)
		f.check(healed)
	})
}
