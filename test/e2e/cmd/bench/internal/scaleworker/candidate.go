package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	elector "github.com/k8s-elector/elector"
)

// The implementations a candidate can campaign with (-impl).
const (
	implElector  = "elector"
	implGroup    = "group"
	implClientGo = "clientgo"
)

// candidate is one candidate of one election, whichever implementation
// campaigns for it.
type candidate interface {
	// run campaigns until ctx ends, when a leader releases the lock.
	run(ctx context.Context) error
	// leads reports whether the candidate holds the lock.
	leads() bool
}

// campaign is what every candidate of the process shares.
type campaign struct {
	namespace string
	ttl       time.Duration
	watch     bool // the elector library only
	clients   *clients
	logger    logr.Logger
	terms     atomic.Int64 // terms started, by every candidate
	// groups are, with -impl=group, one Group per candidate index: the
	// j-th candidate of every election is an election of the j-th Group.
	groups []*elector.Group
}

// newGroups returns n Groups, each with a client of its own if the
// candidates have one each. A Group built from a REST config has no
// client-side rate limit: its leaders renew many locks.
func (c *campaign) newGroups(n int) ([]*elector.Group, error) {
	var gs []*elector.Group
	for j := range n {
		cfg := c.clients.cfg
		if c.clients.own {
			cfg = ownTransport(cfg)
		}
		g, err := elector.NewGroup("scale", elector.WithRESTConfig(cfg), elector.WithNamespace(c.namespace),
			elector.WithID(candidateID(j, n)), elector.WithTTL(c.ttl), elector.WithLogger(c.logger))
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// candidate returns a candidate named id in election, campaigning with impl.
func (c *campaign) candidate(impl, election, id string) (candidate, error) {
	if impl == implClientGo {
		cs, err := c.clients.clientset()
		if err != nil {
			return nil, err
		}
		return &clientGoCandidate{campaign: c, election: election, id: id, client: cs}, nil
	}
	if impl == implGroup {
		j := slices.IndexFunc(c.groups, func(g *elector.Group) bool { return candidateIDOf(g) == id })
		e, err := c.groups[j].Add(election, elector.WithOnStartedLeading(func(context.Context) { c.terms.Add(1) }))
		if err != nil {
			return nil, err
		}
		return groupCandidate{electorCandidate{e}}, nil
	}
	opts := []elector.Option{
		elector.WithNamespace(c.namespace),
		elector.WithID(id),
		elector.WithTTL(c.ttl),
		elector.WithWatch(c.watch),
		elector.WithLogger(c.logger),
		elector.WithOnStartedLeading(func(context.Context) { c.terms.Add(1) }),
	}
	if c.clients.own {
		cs, err := c.clients.clientset()
		if err != nil {
			return nil, err
		}
		opts = append(opts, elector.WithClient(cs))
	} else {
		opts = append(opts, elector.WithRESTConfig(c.clients.cfg))
	}
	e, err := elector.New(election, opts...)
	if err != nil {
		return nil, err
	}
	return electorCandidate{e}, nil
}

// clients hands out the candidates' clientsets: one for all, or, with own,
// one each with an HTTP transport, and so a connection, of its own.
type clients struct {
	cfg    *rest.Config
	own    bool
	once   sync.Once
	shared kubernetes.Interface
	err    error
}

func newClients(cfg *rest.Config, own bool) *clients { return &clients{cfg: cfg, own: own} }

// clientset returns a clientset for one more candidate.
func (c *clients) clientset() (kubernetes.Interface, error) {
	if c.own {
		return kubernetes.NewForConfig(ownTransport(c.cfg))
	}
	c.once.Do(func() { c.shared, c.err = kubernetes.NewForConfig(c.cfg) })
	return c.shared, c.err
}

// ownTransport returns a copy of cfg whose clientsets get an HTTP transport
// of their own. client-go shares one transport among all the clients of
// equal TLS settings in a process; it cannot compare proxy functions, so a
// config with one is never shared. The function is the default's.
func ownTransport(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Proxy = http.ProxyFromEnvironment
	return c
}

// groupCandidate is an election of a Group, which runs it: its run returns
// at once.
type groupCandidate struct{ electorCandidate }

func (groupCandidate) run(context.Context) error { return nil }

// candidateIDOf returns the ID of a Group of the scale program.
func candidateIDOf(g *elector.Group) string { return g.ID() }

// electorCandidate campaigns with the elector library.
type electorCandidate struct{ e *elector.Elector }

func (c electorCandidate) run(ctx context.Context) error { return c.e.Run(ctx) }
func (c electorCandidate) leads() bool                   { return c.e.Status().IsLeader }

// electors returns the Electors among the candidates of elections.
func electors(elections [][]candidate) []*elector.Elector {
	var es []*elector.Elector
	for _, cands := range elections {
		for _, c := range cands {
			if e, ok := c.(electorCandidate); ok {
				es = append(es, e.e)
			}
		}
	}
	return es
}

// clientGoCandidate campaigns with client-go's leaderelection and a
// LeaseLock, with k8s-elector's default timing for the TTL, releasing the
// lock when it stops. client-go's Run returns when a term ends, after which a
// program built on it exits and is restarted: run starts a fresh
// LeaderElector then, as the restarted program would.
type clientGoCandidate struct {
	*campaign
	election, id string
	client       kubernetes.Interface
	current      atomic.Pointer[leaderelection.LeaderElector]
}

func (c *clientGoCandidate) run(ctx context.Context) error {
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(c.config())
		if err != nil {
			return err
		}
		c.current.Store(le)
		le.Run(ctx)
	}
	return nil
}

func (c *clientGoCandidate) leads() bool {
	le := c.current.Load()
	return le != nil && le.IsLeader()
}

// config is the configuration of one LeaderElector of the candidate.
func (c *clientGoCandidate) config() leaderelection.LeaderElectionConfig {
	t := elector.DefaultTimings(c.ttl)
	return leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: c.namespace, Name: c.election},
			Client:     c.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: c.id},
		},
		Name:            c.election,
		LeaseDuration:   c.ttl,
		RenewDeadline:   t.RenewDeadline,
		RetryPeriod:     t.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { c.terms.Add(1) },
			OnStoppedLeading: func() {},
		},
	}
}
