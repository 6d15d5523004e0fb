// Package electortest helps a service that embeds the elector test its
// leader election: a fake cluster that keeps the API server's promises a
// leader election relies on, and a network partition per candidate.
//
// client-go's fake clientset alone does not compare resourceVersions, so in
// a test two candidates that race for a lock can both win it, and it sets
// no UIDs, so the fencing token's LockUID stays empty. A Cluster does both,
// and its watches see the writes of every client. Give every candidate a
// clientset of its own from Client, all on one Cluster, as the pods of a
// Deployment all talk to one API server:
//
//	cluster := electortest.NewCluster()
//	a, err := elector.New("my-app", elector.WithClient(cluster.Client()), elector.WithID("a"))
//	b, err := elector.New("my-app", elector.WithClient(cluster.Client()), elector.WithID("b"))
//
// # Virtual time
//
// Run the candidates inside a testing/synctest bubble: the election's
// timers then run on the bubble's clock, so a TTL of 10s passes in
// milliseconds and nothing sleeps on the real clock. Start each Run in a
// goroutine of the bubble, and stop it (cancel its context, wait for it to
// return) before the bubble ends. synctest.Wait returns once every
// candidate has done what it can before time moves on; time.Sleep moves it
// on.
//
//	synctest.Test(t, func(t *testing.T) {
//		cluster := electortest.NewCluster()
//		e, err := elector.New("my-app", elector.WithClient(cluster.Client()), elector.WithID("a"))
//		if err != nil {
//			t.Fatal(err)
//		}
//		ctx, cancel := context.WithCancel(context.Background())
//		done := make(chan error, 1)
//		go func() { done <- e.Run(ctx) }()
//		t.Cleanup(func() { cancel(); <-done })
//		synctest.Wait()
//		if !e.Status().IsLeader {
//			t.Fatalf("got %+v, want the leader", e.Status())
//		}
//	})
//
// # A crash
//
// A crash is a candidate that stops without releasing the lock: build it
// with elector.WithReleaseOnCancel(false), and cancel the context of its
// Run. The lock goes on naming it; a follower takes over once the lease it
// saw renewed last has run out, never before the ValidUntil that the crashed
// leader reported last, and with a LeaderTransitions one higher.
// TestExampleCrash in example_test.go is such a test.
//
// # A zombie, and fencing
//
// A zombie is a leader whose work goes on after its term has ended: its
// process was cut off from the API server, or paused past its lease, or
// its work does not stop when told. Partition the leader's client: its
// requests fail, its term ends (the context given to its started-leading
// callback is cancelled), and a follower takes over with a higher
// LeaderTransitions, while leader work that does not stop goes on writing
// with the old term's token. Only the resource it writes can refuse those
// writes: pass the token of the term (elector.TermFromContext) with every
// write, and have the resource reject a token lower than the highest it
// has accepted (see elector.Status). The fence orders writes; it does not
// stop the zombie, whose writes are accepted until the new leader's first.
// TestExampleZombie in example_test.go checks all of this with a small
// fenced store. Heal reconnects the client; the old leader follows the new
// one once its work has returned, since Run waits for it.
//
// A process that is paused, whose requests hang rather than fail, is not
// offered: the fake clientset holds a lock of its own while it answers a
// request, so a request held in it would make the clientset's other
// requests wait on a mutex, which a synctest bubble does not count as
// blocked, and time in the bubble would stop. For a pause, partition the
// client and hold the leader work on a channel of the test.
//
// # Other faults
//
// The clientsets are client-go's fake: PrependReactor on one injects other
// faults, such as an API error for some requests, into that candidate's
// requests alone. A reaction must not block, for the reason above.
package electortest
