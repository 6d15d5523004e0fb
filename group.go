package elector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// A Group runs many elections in one process, as one candidate in each:
// the shards of a controller, say, one Lease each. Its elections share one
// client, one watch per namespace and kind of lock object (sharedwatch.go),
// one Lease that stands for this process as a candidate in all of them
// (members.go), one HTTP handler and one metrics registry, with the
// election as a label. Each election is an Elector, with every guarantee
// an Elector gives on its own.
//
//	g, err := elector.NewGroup("shards", elector.WithRESTConfig(cfg))
//	for i := range 30 {
//		g.Add(fmt.Sprintf("shard-%d", i), elector.WithOnStartedLeading(work(i)))
//	}
//	go http.ListenAndServe(":5002", g) // GET / lists the elections, GET /shard-7 is one
//	return g.Run(ctx)
//
// Elections can be added and removed while it runs. With WithSpread, the
// members of the Group (the processes that run it, with one ID each) spread
// leadership evenly: see WithSpread.
//
// Built from WithRESTConfig with no QPS or RateLimiter in it, the Group's
// client has no client-side rate limit: its leaders' renewals would outrun
// client-go's default of 5 requests a second. Whatever its client, a Group
// sends at most 64 lock requests at once.
//
// Every member of a Group must run it with the same name, and be a
// candidate in the same elections: a leader names its successor among the
// Group's members, whichever elections each runs. A successor that does
// not run the election does not take the lock, and the others do when the
// successor's window ends.
type Group struct {
	name    string
	o       options  // validated: every election's defaults
	opts    []Option // as given: applied before each election's own
	client  client
	shared  *sharedWatches
	members *memberTable
	metrics *metricFamilies
	running atomic.Bool
	spread  *spreader   // with WithSpread; else nil
	parts   *groupParts // what every election of the Group borrows

	mu        sync.Mutex
	elections map[string]*groupElection
	run       *groupRun // nil while Run does not run
}

// groupElection is one election of a Group.
type groupElection struct {
	e      *Elector
	cancel context.CancelFunc // while its Run runs
	done   chan struct{}      // closed when its Run has returned
}

// groupRun is what a Group's Run gives the elections it starts.
type groupRun struct {
	ctx context.Context
	log logr.Logger
}

// NewGroup returns a Group named name, whose elections take opts before
// their own: the client, namespace, ID, lock type and timings, and the
// priority and WithSpread, which only a Group's options may set. The name
// names the member Leases, <name>-member-<ID>, so it must be a valid
// DNS-1123 subdomain. NewGroup validates every option, reports all
// problems at once, and does not touch the cluster.
func NewGroup(name string, opts ...Option) (*Group, error) {
	o, errs := applyOptions(opts)
	switch msgs := validation.IsDNS1123Subdomain(name); {
	case name == "":
		errs = append(errs, errors.New("elector: group name is required"))
	case len(msgs) > 0:
		errs = append(errs, fmt.Errorf("elector: group name %q is not a valid object name: %s", name, strings.Join(msgs, "; ")))
	}
	// The options as every election's: validated with a name that is valid.
	if err := o.validate("group"); err != nil {
		errs = append(errs, err)
	}
	if !o.watch {
		errs = append(errs, errors.New("elector: a Group's elections share its watches: WithWatch(false) does not apply to a Group"))
	}
	if o.gate != nil {
		errs = append(errs, errors.New("elector: a candidacy gate applies to one election: pass WithCandidacyGate to Add"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o.groupClient = true
	c, err := o.lockClient()
	if err != nil {
		return nil, errors.Join(err)
	}
	g := &Group{
		name: name, o: o, opts: slices.Clone(opts), client: c,
		shared:    newSharedWatches(c),
		metrics:   newMetricFamilies(o.id, false),
		elections: map[string]*groupElection{},
	}
	g.members = newMemberTable(name, g.kick)
	if o.spread {
		g.spread = newSpreader(g.members, o)
	}
	g.parts = &groupParts{client: c, metrics: g.metrics.add, follow: g.shared.follow, members: g.members.leases, termChanged: g.kick,
		requests: newRequestLimit(groupRequestLimit)}
	return g, nil
}

// Add adds the election named election, with opts after the Group's, and
// returns its Elector; if the Group runs, the election starts at once. The
// Elector's Status, Observe, Resign and HTTP API work as an Elector's
// alone; Run it only through the Group. WithClient, WithRESTConfig, WithID,
// WithWatch, WithPriority and WithSpread are the Group's.
func (g *Group) Add(election string, opts ...Option) (*Elector, error) {
	all := append(slices.Clone(g.opts), opts...)
	all = append(all, optionFunc(func(o *options) { o.group = g.parts }))
	e, err := New(election, all...)
	if err != nil {
		return nil, err
	}
	if e.o.id != g.o.id || e.o.priority != g.o.priority || e.o.spread != g.o.spread {
		return nil, fmt.Errorf("elector: election %q of group %s: the ID, the priority and WithSpread are the Group's: set them in NewGroup", election, g.name)
	}
	key := e.o.namespace + "/" + election
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.elections[key]; ok {
		return nil, fmt.Errorf("elector: election %s is in group %s already", key, g.name)
	}
	ge := &groupElection{e: e}
	g.elections[key] = ge
	if g.run != nil {
		g.start(ge)
	}
	g.kick()
	return e, nil
}

// Remove stops the election named election in namespace (or the Group's
// namespace if it is empty) and removes it from the Group: if this
// candidate leads it, it steps down and releases the lock, naming a
// successor, before Remove returns. It returns an error if the Group has
// no such election.
func (g *Group) Remove(namespace, election string) error {
	if namespace == "" {
		namespace = g.o.namespace
	}
	key := namespace + "/" + election
	g.mu.Lock()
	ge, ok := g.elections[key]
	delete(g.elections, key)
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("elector: group %s has no election %s", g.name, key)
	}
	g.stopElection(ge)
	g.metrics.remove(key)
	g.kick()
	return nil
}

// Elector returns the Elector of the election named election in the
// Group's namespace, and whether the Group has it.
func (g *Group) Elector(election string) (*Elector, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ge, ok := g.elections[g.o.namespace+"/"+election]
	if !ok {
		return nil, false
	}
	return ge.e, true
}

// Electors returns the Group's Electors, by namespace/name.
func (g *Group) Electors() map[string]*Elector {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[string]*Elector, len(g.elections))
	for k, ge := range g.elections {
		m[k] = ge.e
	}
	return m
}

// ID returns this member's ID, its candidate ID in every election.
func (g *Group) ID() string { return g.o.id }

// Metrics returns the metrics of every election of the Group, each series
// labelled with its election.
func (g *Group) Metrics() prometheus.Gatherer { return g.metrics.registry }

// Timings returns the timings of the Group's elections, as its options set
// them.
func (g *Group) Timings() Timings { return g.o.timings() }

// Run runs every election of the Group, those added while it runs too,
// until ctx is cancelled; then each steps down as an Elector's Run does,
// releasing the locks it holds, and Run returns once all have. It returns
// an error only for what retrying cannot fix, such as a second concurrent
// Run. Every goroutine it starts has ended when it returns.
func (g *Group) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer g.running.Store(false)
	ctx, log := g.o.runLogger(ctx, "group", g.o.namespace+"/"+g.name)

	// The watches outlive the elections, whose releases read the lock
	// after a conflict; the member Lease outlives them too, unless the
	// Group spreads leadership: then this member leaves first, so that
	// the others stop counting it before its elections hand over.
	wctx, stopWatches := context.WithCancel(context.WithoutCancel(ctx))
	g.shared.start(wctx)
	leases := g.client.CoordinationV1().Leases(g.o.namespace)
	_, unfollow := g.shared.follow(g.o.namespace, coordinationv1.Resource("leases"), &coordinationv1.Lease{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return leases.List(ctx, o) }, leases.Watch,
		"", g.members.deliver, g.members.initial)

	g.mu.Lock()
	g.run = &groupRun{ctx: ctx, log: log}
	for _, ge := range g.elections {
		g.start(ge)
	}
	g.mu.Unlock()
	log.Info("group running", "elections", len(g.Electors()), "spread", g.o.spread)

	// This member joins once its elections follow their locks, so that a
	// leader that hands one over to it finds it following.
	g.shared.waitSynced(ctx)
	member := g.memberRegistry(leases, log)
	leave := startBackground(ctx, []backgroundWorker{member})
	var w workers
	if g.spread != nil {
		w.start(ctx, true, func(ctx context.Context) { g.spread.run(ctx, g.Electors, log) }, nil)
	}

	<-ctx.Done()
	w.stop()
	if g.o.spread {
		leave(time.Now().Add(g.o.requestTimeout())) // the others stop counting this member
	}
	g.mu.Lock()
	g.run = nil
	running := slices.Collect(maps.Values(g.elections))
	g.mu.Unlock()
	if g.spread != nil {
		elections := make([]*Elector, 0, len(running))
		for _, ge := range running {
			elections = append(elections, ge.e)
		}
		g.spread.handOff(elections, time.Now())
	}
	var wg sync.WaitGroup
	for _, ge := range running {
		wg.Go(func() { g.stopElection(ge) })
	}
	wg.Wait()
	if !g.o.spread {
		leave(time.Now().Add(g.o.requestTimeout()))
	}
	unfollow()
	stopWatches()
	g.shared.stop()
	log.Info("group stopped")
	return nil
}

// memberRegistry is the registry that keeps this member's Lease: renewed
// every candidate renewal, or, when the Group spreads leadership, every
// renew interval with a lease of the TTL, so that the others stop counting
// a crashed member when its locks run out.
func (g *Group) memberRegistry(leases coordinationv1client.LeaseInterface, log logr.Logger) *registry {
	r := newRegistry(leases, g.client, g.name, g.o.id, g.o.priority, func() bool { return true }, g.o.requestTimeout(), log)
	r.name, r.label = leaseName(g.name, "member", g.o.id), memberLabel
	if g.o.spread {
		r.renewal, r.leaseTTL = g.o.renewInterval, g.o.ttl
	}
	return r
}

// start runs ge's Elector on the Group's Run, until the Group stops it;
// g.mu is held.
func (g *Group) start(ge *groupElection) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(g.run.ctx))
	ge.cancel, ge.done = cancel, make(chan struct{})
	if err := ge.e.claim(); err != nil {
		g.run.log.Error(err, "election not started", "election", ge.e.o.namespace+"/"+ge.e.election)
		close(ge.done)
		return
	}
	ge.e.launch(ctx, func() { close(ge.done) })
}

// stopElection stops ge's Run, if it runs, and waits for it.
func (g *Group) stopElection(ge *groupElection) {
	g.mu.Lock()
	cancel, done := ge.cancel, ge.done
	ge.cancel = nil
	g.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// kick wakes the spreading of leadership, if the Group spreads it.
func (g *Group) kick() {
	if g.spread != nil {
		g.spread.kick()
	}
}
