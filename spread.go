package elector

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Spreading leadership over a Group's members (WithSpread).
//
// Every retry period, and at once when a member Lease changes, each member
// counts, from its own Electors' views, how many elections each alive
// member leads, and its share: ⌈N/K⌉ of N elections over K alive members.
// A member that leads more than its share hands the excess over, one
// graceful handover each (ResignTo, without the cooldown), to the alive members that lead the
// fewest, up to their share. Leadership moves only from above the share
// to below it, so it settles; and it never waits for a lease to run out.
// A member that stops leaves the Group first (it deletes its member
// Lease), then names, for each election it leads, the member that leads
// the fewest as its successor.
//
// Elections are handed only to members heard from within a renewal of
// their member Lease and a retry period. A member that crashed counts as
// alive until its member Lease runs out, up to a TTL after its last
// renewal; its elections' Leases, renewed before that, run out earlier,
// and the members that take them would otherwise hand them back to it,
// the member that leads the fewest, leaving each without a leader for
// the successor window.

// spreader spreads the leadership of a Group's elections over its
// members: it is the Group's when WithSpread is on.
type spreader struct {
	self    string // this member's ID
	members *memberTable
	// heardWithin is how recently a member must have renewed its member
	// Lease to be handed elections: a renewal and a retry period.
	heardWithin time.Duration
	every       time.Duration // the retry period
	kicks       chan struct{}
}

func newSpreader(members *memberTable, o options) *spreader {
	return &spreader{self: o.id, members: members, heardWithin: o.renewInterval + o.retryPeriod, every: o.retryPeriod,
		kicks: make(chan struct{}, 1)}
}

// kick makes the spreading count again at once: a member Lease changed,
// or a term of this member started or ended.
func (s *spreader) kick() {
	select {
	case s.kicks <- struct{}{}:
	default:
	}
}

// tally is how the leadership of a Group's elections lies, as this member
// sees it.
type tally struct {
	self   string
	alive  []string       // the members alive, this one included, sorted
	heard  []string       // the members to hand elections to: renewing, sorted
	counts map[string]int // elections led, by member
	mine   []*Elector     // the elections this member leads, by name
	n      int            // elections
}

// tally counts the leaders of elections, by key, at now.
func (s *spreader) tally(elections map[string]*Elector, now time.Time) tally {
	l := tally{self: s.self, alive: s.members.alive(now), counts: map[string]int{}, n: len(elections)}
	l.heard = s.members.heardFrom(now, s.heardWithin)
	if i, found := slices.BinarySearch(l.alive, l.self); !found {
		l.alive = slices.Insert(l.alive, i, l.self) // before its own Lease is seen
	}
	for _, key := range slices.Sorted(maps.Keys(elections)) {
		e := elections[key]
		s := e.Status()
		switch {
		case s.IsLeader:
			l.mine = append(l.mine, e)
			l.counts[l.self]++
		case s.Leader != "":
			l.counts[s.Leader]++
		}
	}
	return l
}

// share is the most elections a member should lead.
func (l tally) share() int {
	k := len(l.alive)
	return (l.n + k - 1) / k
}

// pick returns the member heard from, other than this one, that leads
// the fewest elections, fewer than limit, and counts one more for it; ""
// if there is none.
func (l *tally) pick(limit int) string {
	best := ""
	for _, id := range l.heard {
		if id == l.self || l.counts[id] >= limit {
			continue
		}
		if best == "" || cmp.Compare(l.counts[id], l.counts[best]) < 0 {
			best = id
		}
	}
	if best != "" {
		l.counts[best]++
	}
	return best
}

// excess returns the handovers that bring this member down to its share:
// successor by Elector.
func (l *tally) excess() map[*Elector]string {
	share := l.share()
	moves := map[*Elector]string{}
	for i := len(l.mine) - 1; i >= 0 && len(l.mine)-len(moves) > share; i-- {
		to := l.pick(share)
		if to == "" {
			break
		}
		moves[l.mine[i]] = to
	}
	return moves
}

// run keeps the leadership of the elections that electors returns spread
// until ctx ends, then waits for the handovers it started.
func (s *spreader) run(ctx context.Context, electors func() map[string]*Elector, log logr.Logger) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		moving = map[*Elector]bool{}
	)
	defer wg.Wait()
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kicks:
		}
		l := s.tally(electors(), time.Now())
		mu.Lock()
		l.mine = slices.DeleteFunc(l.mine, func(e *Elector) bool { return moving[e] })
		moves := l.excess()
		for e := range moves {
			moving[e] = true
		}
		mu.Unlock()
		if len(moves) > 0 {
			log.Info("leading more than this member's share: handing elections over", "leading", len(l.mine), "share", l.share(), "members", len(l.alive), "handovers", len(moves))
		}
		for e, to := range moves {
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(moving, e)
					mu.Unlock()
				}()
				// No cooldown: the shares, not a wait, keep leadership
				// from coming back, and a member that leaves may hand
				// the election back at once.
				if err := e.resign(ctx, 0, to); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, context.Canceled) {
					log.Info("could not hand an election over", "election", e.o.namespace+"/"+e.election, "successor", to, "err", err.Error())
				}
			})
		}
	}
}

// handOff names, for each election of running that this member leads, the
// alive member that leads the fewest as the successor its release at
// shutdown names.
func (s *spreader) handOff(running []*Elector, now time.Time) {
	elections := make(map[string]*Elector, len(running))
	for _, e := range running {
		elections[e.o.namespace+"/"+e.election] = e
	}
	l := s.tally(elections, now)
	for _, e := range l.mine {
		if to := l.pick(l.n + 1); to != "" {
			e.inbox.handOff(to)
		}
	}
}
