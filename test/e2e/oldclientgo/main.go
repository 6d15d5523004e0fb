// Command oldclientgo is a candidate for the interop suite that is
// client-go v0.23's leaderelection alone: the last client-go generation that
// builds the ConfigMap and Endpoints locks and the MultiLock that migrated
// them to Leases. It runs a LeaderElector on the lock resourcelock.New
// builds for -lock-type (configmaps, endpoints, configmapsleases,
// endpointsleases or leases), with RetryPeriod TTL/6 and RenewDeadline
// TTL/3, ReleaseOnCancel, from a kubeconfig. It serves GET / with the fields
// of k8s-elector's status that the suite's recorder reads, as
// cmd/plainfollower does, so that a fleet can mix it with k8s-elector:
//
//	curl -s localhost:8080/
//	{"is_leader":true,"leader":"old-1","node":"old-1","timestamp":"2026-12-02T00:05:01Z",
//	 "lock_uid":"6f0c…","leader_transitions":4,"acquire_time":"2026-12-02T00:04:41.087Z",
//	 "valid_until":"2026-12-02T00:05:03.412Z"}
//
// What it reports is what client-go and its lock's clients saw, and no
// more: is_leader is true from OnStartedLeading until the context client-go
// hands it ends; on the leader, valid_until is client-go's own belief, the
// send time of the last successful write naming it holder plus the lease
// duration written, and acquire_time is the send time of the write that
// began its term (the record holds it cut to whole seconds). lock_uid and
// leader_transitions are the fencing token as k8s-elector reports it: the
// UID of the object that holds the election's record (the ConfigMap or
// Endpoints, also for the migration locks, whose record is the old
// object's) and the transition count in that record, as last written by it
// while it leads, else as last read or written. leader is client-go's
// GetLeader.
//
// It lives in a Go module of its own so that client-go v0.23 does not meet
// the v0.37 of the suite's module. It takes k8s-elector's flags that the
// suite's fleet passes (-election, -id, -http, -kubeconfig, -namespace,
// -lock-type, -ttl). On SIGTERM or SIGINT it releases the lock
// (ReleaseOnCancel) and exits 0. When it loses the lock otherwise it becomes
// a candidate again.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file")
		election   = flag.String("election", "oldclientgo", "name of the lock object")
		namespace  = flag.String("namespace", "default", "namespace of the lock object")
		id         = flag.String("id", "oldclientgo", "identity")
		addr       = flag.String("http", "127.0.0.1:8080", "address of GET /")
		lockType   = flag.String("lock-type", "configmaps", "configmaps, endpoints, configmapsleases, endpointsleases or leases")
		ttl        = flag.Duration("ttl", 10*time.Second, "lease duration, whole seconds")
	)
	flag.Parse()
	if err := run(*kubeconfig, *namespace, *election, *id, *addr, *lockType, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "oldclientgo:", err)
		os.Exit(1)
	}
}

// recordKind is, per lock type, the kind of object whose record is the
// election's.
var recordKind = map[string]string{
	resourcelock.ConfigMapsResourceLock:       "configmaps",
	resourcelock.EndpointsResourceLock:        "endpoints",
	resourcelock.ConfigMapsLeasesResourceLock: "configmaps",
	resourcelock.EndpointsLeasesResourceLock:  "endpoints",
	resourcelock.LeasesResourceLock:           "leases",
}

func run(kubeconfig, namespace, election, id, addr, lockType string, ttl time.Duration) error {
	kind, ok := recordKind[lockType]
	if !ok {
		return fmt.Errorf("-lock-type %q: want configmaps, endpoints, configmapsleases, endpointsleases or leases", lockType)
	}
	if ttl < 2*time.Second || ttl%time.Second != 0 {
		return fmt.Errorf("-ttl %s: want whole seconds, at least 2s", ttl)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	// v1 Endpoints are deprecated since Kubernetes 1.33: the API server
	// warns on every request, and client-go would log each warning.
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	c := &candidate{id: id, kind: kind}
	srv := &http.Server{Handler: c}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lock, err := resourcelock.New(lockType, namespace, election,
		trackedCore{client.CoreV1(), c}, trackedCoordination{client.CoordinationV1(), c},
		resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		r := &round{}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   ttl,
			RenewDeadline:   ttl / 3,
			RetryPeriod:     ttl / 6,
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

// candidate holds what the lock's clients saw of the object that holds the
// election's record, and serves GET /.
type candidate struct {
	id    string
	kind  string // configmaps, endpoints or leases: the object tracked
	round atomic.Pointer[round]

	mu   sync.Mutex
	seen lockState // the object as last read or written
	mine lockState // the object as last written naming us holder
}

// lockState is the record's object as one request returned it.
type lockState struct {
	uid         string
	holder      string
	transitions int
	sent        time.Time // of the write; zero for a read
	lease       time.Duration
	// acquired, in mine, is the send time of the first write of the term.
	acquired time.Time
}

func stateOf(uid string, rec resourcelock.LeaderElectionRecord, sent time.Time) lockState {
	return lockState{
		uid: uid, holder: rec.HolderIdentity, transitions: rec.LeaderTransitions,
		sent: sent, lease: time.Duration(rec.LeaseDurationSeconds) * time.Second,
	}
}

// annotated is the state of a ConfigMap or Endpoints: the record is the
// JSON in the leader annotation, as client-go v0.23 reads it.
func annotated(meta metav1.ObjectMeta, sent time.Time) lockState {
	var rec resourcelock.LeaderElectionRecord
	if s, ok := meta.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]; ok {
		_ = json.Unmarshal([]byte(s), &rec) // an unparseable record reads as none
	}
	return stateOf(string(meta.UID), rec, sent)
}

func leased(l *coordinationv1.Lease, sent time.Time) lockState {
	return stateOf(string(l.UID), *resourcelock.LeaseSpecToLeaderElectionRecord(&l.Spec), sent)
}

// saw records a read (sent zero) or a write of an object of kind.
func (c *candidate) saw(kind string, s lockState) {
	if kind != c.kind {
		return // the Lease of a migration lock: its record is the old object's
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = s
	if !s.sent.IsZero() && s.holder == c.id {
		// A write naming us with a token we did not hold begins a term.
		s.acquired = c.mine.acquired
		if c.mine.sent.IsZero() || s.uid != c.mine.uid || s.transitions != c.mine.transitions {
			s.acquired = s.sent
		}
		c.mine = s
	}
}

// status is the JSON of GET /: k8s-elector's Status, the fields the suite
// reads, with its time formats.
type status struct {
	IsLeader          bool   `json:"is_leader"`
	Leader            string `json:"leader"`
	Node              string `json:"node"`
	Timestamp         string `json:"timestamp"`
	LockUID           string `json:"lock_uid,omitempty"`
	LeaderTransitions int    `json:"leader_transitions"`
	AcquireTime       string `json:"acquire_time,omitempty"`
	ValidUntil        string `json:"valid_until,omitempty"`
}

// jsonTime is the layout of k8s-elector's times with milliseconds.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

func (c *candidate) status() status {
	now := time.Now()
	s := status{Node: c.id, Timestamp: now.UTC().Format(time.RFC3339)}
	if r := c.round.Load(); r != nil {
		s.Leader = r.le.GetLeader()
		s.IsLeader = r.leading()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.seen
	if s.IsLeader {
		st = c.mine
		// Cut to milliseconds: never later than the belief.
		s.ValidUntil = st.sent.Add(st.lease).UTC().Format(jsonTime)
		s.AcquireTime = st.acquired.UTC().Format(jsonTime)
	}
	s.LockUID, s.LeaderTransitions = st.uid, st.transitions
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

// trackedCore hands resourcelock the ConfigMap and Endpoints clients that
// report every object they read or write to the candidate, with the send
// time of each write.
type trackedCore struct {
	corev1client.CoreV1Interface
	c *candidate
}

func (t trackedCore) ConfigMaps(namespace string) corev1client.ConfigMapInterface {
	return trackedConfigMaps{t.CoreV1Interface.ConfigMaps(namespace), t.c}
}

func (t trackedCore) Endpoints(namespace string) corev1client.EndpointsInterface {
	return trackedEndpoints{t.CoreV1Interface.Endpoints(namespace), t.c}
}

type trackedConfigMaps struct {
	corev1client.ConfigMapInterface
	c *candidate
}

func (t trackedConfigMaps) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error) {
	out, err := t.ConfigMapInterface.Get(ctx, name, opts)
	if err == nil {
		t.c.saw("configmaps", annotated(out.ObjectMeta, time.Time{}))
	}
	return out, err
}

func (t trackedConfigMaps) Create(ctx context.Context, cm *corev1.ConfigMap, opts metav1.CreateOptions) (*corev1.ConfigMap, error) {
	sent := time.Now()
	out, err := t.ConfigMapInterface.Create(ctx, cm, opts)
	if err == nil {
		t.c.saw("configmaps", annotated(out.ObjectMeta, sent))
	}
	return out, err
}

func (t trackedConfigMaps) Update(ctx context.Context, cm *corev1.ConfigMap, opts metav1.UpdateOptions) (*corev1.ConfigMap, error) {
	sent := time.Now()
	out, err := t.ConfigMapInterface.Update(ctx, cm, opts)
	if err == nil {
		t.c.saw("configmaps", annotated(out.ObjectMeta, sent))
	}
	return out, err
}

type trackedEndpoints struct {
	corev1client.EndpointsInterface
	c *candidate
}

func (t trackedEndpoints) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Endpoints, error) {
	out, err := t.EndpointsInterface.Get(ctx, name, opts)
	if err == nil {
		t.c.saw("endpoints", annotated(out.ObjectMeta, time.Time{}))
	}
	return out, err
}

func (t trackedEndpoints) Create(ctx context.Context, ep *corev1.Endpoints, opts metav1.CreateOptions) (*corev1.Endpoints, error) {
	sent := time.Now()
	out, err := t.EndpointsInterface.Create(ctx, ep, opts)
	if err == nil {
		t.c.saw("endpoints", annotated(out.ObjectMeta, sent))
	}
	return out, err
}

func (t trackedEndpoints) Update(ctx context.Context, ep *corev1.Endpoints, opts metav1.UpdateOptions) (*corev1.Endpoints, error) {
	sent := time.Now()
	out, err := t.EndpointsInterface.Update(ctx, ep, opts)
	if err == nil {
		t.c.saw("endpoints", annotated(out.ObjectMeta, sent))
	}
	return out, err
}

// trackedCoordination does for the Lease what trackedCore does for the
// ConfigMap and Endpoints.
type trackedCoordination struct {
	coordinationv1client.CoordinationV1Interface
	c *candidate
}

func (t trackedCoordination) Leases(namespace string) coordinationv1client.LeaseInterface {
	return trackedLeases{t.CoordinationV1Interface.Leases(namespace), t.c}
}

type trackedLeases struct {
	coordinationv1client.LeaseInterface
	c *candidate
}

func (t trackedLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	out, err := t.LeaseInterface.Get(ctx, name, opts)
	if err == nil {
		t.c.saw("leases", leased(out, time.Time{}))
	}
	return out, err
}

func (t trackedLeases) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	sent := time.Now()
	out, err := t.LeaseInterface.Create(ctx, lease, opts)
	if err == nil {
		t.c.saw("leases", leased(out, sent))
	}
	return out, err
}

func (t trackedLeases) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	sent := time.Now()
	out, err := t.LeaseInterface.Update(ctx, lease, opts)
	if err == nil {
		t.c.saw("leases", leased(out, sent))
	}
	return out, err
}
