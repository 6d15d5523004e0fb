// Command plainfollower is a candidate for the fault suite that is
// client-go's leaderelection alone: a LeaderElector on a LeaseLock, with
// RetryPeriod TTL/6 and RenewDeadline TTL/3, from a kubeconfig. Its
// followers compare the raw record as every plain client-go follower does,
// with whole-second times. It serves GET / with the fields of k8s-elector's
// status that the suite's recorder reads, so that a fleet can mix the two:
//
//	curl -s localhost:8080/
//	{"is_leader":true,"leader":"plain-1","node":"plain-1","timestamp":"2026-12-02T00:05:01Z",
//	 "lock_uid":"6f0c…","leader_transitions":4,"valid_until":"2026-12-02T00:05:03.412Z"}
//
// What it reports is what client-go tells an application, and no more:
// is_leader is true from OnStartedLeading until the context client-go hands
// it ends; valid_until, on the leader, is client-go's own belief, the send
// time of the last successful write naming it holder plus the lease
// duration written; lock_uid and leader_transitions come from the Lease as
// last written by it while it leads, else as last read or written. leader
// is client-go's GetLeader.
//
// It takes k8s-elector's flags that the suite's fleet passes (-election,
// -id, -http, -kubeconfig, -namespace, -lock-type, -ttl); -lock-type must be
// leases. On SIGTERM or SIGINT it releases the lease (ReleaseOnCancel) and
// exits 0. When it loses the lease otherwise it becomes a candidate again.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	elector "github.com/k8s-elector/elector"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file")
		election   = flag.String("election", "plainfollower", "Lease name")
		namespace  = flag.String("namespace", "default", "Lease namespace")
		id         = flag.String("id", "plainfollower", "identity")
		addr       = flag.String("http", "127.0.0.1:8080", "address of GET /")
		lockType   = flag.String("lock-type", "leases", "lock type; only leases")
		ttl        = flag.Duration("ttl", 10*time.Second, "lease duration, whole seconds")
	)
	flag.Parse()
	if err := run(*kubeconfig, *namespace, *election, *id, *addr, *lockType, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "plainfollower:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, namespace, election, id, addr, lockType string, ttl time.Duration) error {
	if lockType != "leases" {
		return fmt.Errorf("-lock-type %q: only leases", lockType)
	}
	if ttl < 2*time.Second || ttl%time.Second != 0 {
		return fmt.Errorf("-ttl %s: want whole seconds, at least 2s", ttl)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	c := &candidate{id: id}
	srv := &http.Server{Handler: c}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: election},
		Client:     trackedGetter{client, c},
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	for ctx.Err() == nil {
		r := &round{}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   ttl,
			RenewDeadline:   elector.DefaultTimings(ttl).RenewDeadline,
			RetryPeriod:     elector.DefaultTimings(ttl).RetryPeriod,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) { r.term.Store(&ctx) },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return err
		}
		r.le = le
		c.round.Store(r)
		le.Run(ctx)
	}

	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// round is one run of a LeaderElector: a candidacy and at most one term.
type round struct {
	le *leaderelection.LeaderElector
	// term is the context OnStartedLeading was handed, nil before.
	term atomic.Pointer[context.Context]
}

func (r *round) leading() bool {
	ctx := r.term.Load()
	return ctx != nil && (*ctx).Err() == nil
}

// candidate holds what the lease client saw and serves GET /.
type candidate struct {
	id    string
	round atomic.Pointer[round]

	mu   sync.Mutex
	seen lockState // the lease as last read or written
	mine lockState // the lease as last written naming us holder
}

// lockState is a Lease as one request returned it.
type lockState struct {
	uid         string
	transitions int32
	sent        time.Time // of the write; zero for a read
	lease       time.Duration
}

func stateOf(l *coordinationv1.Lease, sent time.Time) lockState {
	s := lockState{uid: string(l.UID), sent: sent}
	if l.Spec.LeaseTransitions != nil {
		s.transitions = *l.Spec.LeaseTransitions
	}
	if l.Spec.LeaseDurationSeconds != nil {
		s.lease = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return s
}

func (c *candidate) read(l *coordinationv1.Lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = stateOf(l, time.Time{})
}

func (c *candidate) wrote(l *coordinationv1.Lease, sent time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = stateOf(l, sent)
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == c.id {
		c.mine = c.seen
	}
}

// status is GET / : k8s-elector's Status, so that its JSON is the same.
func (c *candidate) status() elector.Status {
	now := time.Now()
	s := elector.Status{Node: c.id, Timestamp: now}
	r := c.round.Load()
	if r != nil {
		s.Leader = r.le.GetLeader()
		s.IsLeader = r.leading()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.seen
	if s.IsLeader {
		st = c.mine
		// Status's JSON cuts it to milliseconds: never later than the belief.
		s.ValidUntil = st.sent.Add(st.lease)
	}
	s.LockUID, s.LeaderTransitions = st.uid, int(st.transitions)
	return s
}

func (c *candidate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c.status())
}

// trackedGetter hands LeaseLock a lease client that reports every lease it
// reads or writes to the candidate, with the send time of each write.
type trackedGetter struct {
	coordinationv1client.LeasesGetter
	c *candidate
}

func (g trackedGetter) Leases(namespace string) coordinationv1client.LeaseInterface {
	return trackedLeases{g.LeasesGetter.Leases(namespace), g.c}
}

type trackedLeases struct {
	coordinationv1client.LeaseInterface
	c *candidate
}

func (l trackedLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	out, err := l.LeaseInterface.Get(ctx, name, opts)
	if err == nil {
		l.c.read(out)
	}
	return out, err
}

func (l trackedLeases) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	sent := time.Now()
	out, err := l.LeaseInterface.Create(ctx, lease, opts)
	if err == nil {
		l.c.wrote(out, sent)
	}
	return out, err
}

func (l trackedLeases) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	sent := time.Now()
	out, err := l.LeaseInterface.Update(ctx, lease, opts)
	if err == nil {
		l.c.wrote(out, sent)
	}
	return out, err
}
