package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// group is a set of k8s-elector processes in one election whose status the
// bench follows through each one's GET /watch stream.
type group struct {
	b      *bench
	cfg    fleet.Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every update
	members []*member
}

// member is one process of a group.
type member struct {
	e       *fleet.Elector
	ctx     context.Context    // of following it
	cancel  context.CancelFunc // stops following it
	started time.Time          // just before the process was started
	upAt    time.Time          // first successful GET /; zero before

	// Guarded by the group's mu.
	cur         fleet.Status
	leaderSince time.Time // when cur.IsLeader last turned true
	err         error     // GET / never answered
	stopping    bool      // signalled by the bench: its exit is expected
}

func (b *bench) newGroup(ctx context.Context, mode, election string, ttl time.Duration) *group {
	g := &group{b: b, changed: make(chan struct{})}
	g.ctx, g.cancel = context.WithCancel(ctx)
	g.cfg = fleet.Config{
		Binary: b.binary, Kubeconfig: b.kubecfg, Election: election, Namespace: b.namespace,
		LockType: lockResource, TTL: ttl, Extra: b.modeFlags(mode),
	}
	return g
}

// start starts one more elector and follows it.
func (g *group) start(id string) (*member, error) {
	m := &member{started: time.Now()}
	m.ctx, m.cancel = context.WithCancel(g.ctx)
	e, err := fleet.Start(g.cfg, id)
	if err != nil {
		return nil, err
	}
	m.e = e
	g.mu.Lock()
	g.members = append(g.members, m)
	g.mu.Unlock()
	g.wg.Go(func() { g.follow(m) })
	return m, nil
}

// follow polls GET / until the elector answers, then reads its /watch stream
// until it exits or the group stops.
func (g *group) follow(m *member) {
	s, at, err := m.e.WaitUp(m.ctx, 2*time.Millisecond)
	if err != nil {
		g.update(m, fleet.Update{}, err)
		return
	}
	g.mu.Lock()
	m.upAt = at
	g.mu.Unlock()
	g.update(m, fleet.Update{Status: s, At: at}, nil)
	for m.ctx.Err() == nil && !m.e.Exited() {
		ch, err := m.e.Watch(m.ctx)
		if err != nil {
			_ = sleep(m.ctx, 10*time.Millisecond)
			continue
		}
		for u := range ch {
			g.update(m, u, nil)
		}
	}
}

func (g *group) update(m *member, u fleet.Update, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		m.err = err
	} else {
		if u.IsLeader && !m.cur.IsLeader {
			m.leaderSince = u.At
		}
		m.cur = u.Status
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

// wait waits up to limit for cond, which runs with the group's lock held
// after every update, to return true.
func (g *group) wait(limit time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		for _, m := range g.members {
			if m.err != nil && !m.stopping {
				err := m.err
				g.mu.Unlock()
				return err
			}
		}
		ok, changed := cond(), g.changed
		g.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("%s: not within %s\n%s", what, limit, g.describe())
		case <-g.ctx.Done():
			return g.ctx.Err()
		}
	}
}

// live returns the members whose process runs and that the bench has not
// signalled. The caller holds mu.
func (g *group) live() []*member {
	var l []*member
	for _, m := range g.members {
		if !m.e.Exited() && !m.stopping {
			l = append(l, m)
		}
	}
	return l
}

// stable waits until one live member leads and every live member answers
// and names it as the leader, and returns it.
func (g *group) stable(limit time.Duration) (*member, error) {
	var leader *member
	err := g.wait(limit, "a leader that every elector agrees on", func() bool {
		leader = nil
		live := g.live()
		for _, m := range live {
			if m.cur.IsLeader {
				leader = m
			}
		}
		if leader == nil {
			return false
		}
		for _, m := range live {
			if m.upAt.IsZero() || m.cur.Leader != leader.e.ID {
				return false
			}
		}
		return true
	})
	return leader, err
}

// failover signals the leader and returns how long until another member
// reported is_leader:true. The signalled process exits in the background:
// exited receives how long after the signal it did (or -1 if it had to be
// killed after 30s).
func (g *group) failover(leader *member, sig syscall.Signal, limit time.Duration) (took time.Duration, exited <-chan time.Duration, err error) {
	t0, exited, err := g.signal(leader, sig)
	if err != nil {
		return 0, nil, err
	}
	_, at, err := g.newLeader(leader, t0, limit, fmt.Sprintf("another leader after %v to %s", sig, leader.e.ID))
	return at.Sub(t0), exited, err
}

// signal stops following the leader and sends it sig, and returns when it
// did. exited receives how long after that the process exited (or -1 if it
// had to be killed after 30s).
func (g *group) signal(leader *member, sig syscall.Signal) (t0 time.Time, exited <-chan time.Duration, err error) {
	g.mu.Lock()
	leader.stopping = true
	g.mu.Unlock()
	// Its status is of no interest any more; and an open GET /watch stream
	// would hold its HTTP server's graceful shutdown.
	leader.cancel()
	t0 = time.Now()
	if err := leader.e.Signal(sig); err != nil {
		return t0, nil, err
	}
	exit := make(chan time.Duration, 1)
	go func() {
		if _, err := leader.e.Wait(30 * time.Second); err != nil {
			leader.e.Kill()
			exit <- -1
			return
		}
		exit <- time.Since(t0)
		if strings.Contains(leader.e.Logs(), "did not shut down cleanly") {
			g.b.logf("%s: HTTP server did not shut down cleanly", leader.e.ID)
		}
	}()
	return t0, exit, nil
}

// newLeader waits up to limit for a member other than old to report
// is_leader:true after since, and returns it and when its report arrived.
func (g *group) newLeader(old *member, since time.Time, limit time.Duration, what string) (m *member, at time.Time, err error) {
	err = g.wait(limit, what, func() bool {
		for _, c := range g.members {
			if c != old && c.cur.IsLeader && c.leaderSince.After(since) {
				m, at = c, c.leaderSince
				return true
			}
		}
		return false
	})
	return m, at, err
}

// stop kills every member, then stops following. Nothing is measured any
// more, and the next experiment uses an election of its own, so there is no
// lock to release and no reason to wait for graceful shutdowns.
func (g *group) stop() {
	g.mu.Lock()
	all := slices.Clone(g.members)
	for _, m := range all {
		m.stopping = true
	}
	g.mu.Unlock()
	for _, m := range all {
		m.e.Kill()
	}
	g.cancel()
	g.wg.Wait()
}

// describe lists the members' last status, and the log tail of any that
// exited, for errors.
func (g *group) describe() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b strings.Builder
	for _, m := range g.members {
		fmt.Fprintf(&b, "  %s: exited=%v up=%v is_leader=%v leader=%q\n",
			m.e.ID, m.e.Exited(), !m.upAt.IsZero(), m.cur.IsLeader, m.cur.Leader)
		if m.e.Exited() && !m.stopping {
			fmt.Fprintf(&b, "  log of %s:\n%s\n", m.e.ID, tail(m.e.Logs(), 20))
		}
	}
	return b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
