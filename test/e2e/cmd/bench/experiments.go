package main

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// The TTL the single-TTL experiments run at: the default.
const defaultTTL = 10 * time.Second

// burstWindow is how long after a SIGTERM the requests of a handover are
// counted.
const burstWindow = 5 * time.Second

// retryPeriod is the elector's default retry period for ttl.
func retryPeriod(ttl time.Duration) time.Duration { return elector.DefaultTimings(ttl).RetryPeriod }

// renewInterval is how often the binary's leader renews at ttl: the renew
// interval if it has -renew-interval, else the retry period, as older
// binaries and plain client-go renew.
func (b *bench) renewInterval(ttl time.Duration) time.Duration {
	if b.hasRenewInterval {
		return elector.DefaultTimings(ttl).RenewInterval
	}
	return retryPeriod(ttl)
}

// maxRetryWait is the longest a candidate waits between attempts: client-go
// jitters the retry period by up to 1.2 times itself.
func maxRetryWait(ttl time.Duration) time.Duration {
	return retryPeriod(ttl) + retryPeriod(ttl)*12/10
}

// settle is how long a group runs after it agrees on a leader before it is
// measured, so that every follower is in its steady state (a watch
// established, a renewal seen).
func settle(ttl time.Duration) time.Duration { return max(time.Second, retryPeriod(ttl)) }

// firstLeader starts fresh elections of 3 and measures the time from starting
// the processes to the first is_leader:true, and each process's cold start.
func (b *bench) firstLeader(ctx context.Context, mode string) error {
	r := b.result(mode)
	for rep := range b.firstReps {
		g := b.newGroup(ctx, mode, fmt.Sprintf("first-%s-%d", mode, rep), defaultTTL)
		t0 := time.Now()
		for i := range 3 {
			if _, err := g.start(fmt.Sprintf("first-%d", i+1)); err != nil {
				g.stop()
				return err
			}
		}
		var first time.Duration
		err := g.wait(time.Minute, "a first leader", func() bool {
			for _, m := range g.members {
				if !m.leaderSince.IsZero() {
					first = m.leaderSince.Sub(t0)
					return true
				}
			}
			return false
		})
		if err == nil {
			_, err = g.stable(30 * time.Second)
		}
		if err != nil {
			g.stop()
			return err
		}
		r.firstLeader = append(r.firstLeader, first.Seconds())
		g.mu.Lock()
		for _, m := range g.members {
			r.coldStart = append(r.coldStart, m.upAt.Sub(m.started).Seconds())
			if !m.leaderSince.IsZero() && m.leaderSince.Sub(t0) == first {
				r.firstLeaderUp = append(r.firstLeaderUp, m.leaderSince.Sub(m.upAt).Seconds())
			}
		}
		g.mu.Unlock()
		g.stop()
		b.logf("first leader after %s", first.Round(time.Millisecond))
	}
	return nil
}

// failovers measures, for each TTL, graceful (SIGTERM) and then crash
// (SIGKILL) failovers of the leader of a group of 3; after each, a new
// follower replaces the old leader. After the last mode, it measures crash
// failovers of plain client-go.
func (b *bench) failovers(ctx context.Context, mode string) error {
	r := b.result(mode)
	if len(b.writeRTT) == 0 {
		d, err := b.writeRoundTrips(ctx, 20)
		if err != nil {
			return fmt.Errorf("timing Lease updates: %w", err)
		}
		b.writeRTT = d
		b.logf("a Lease update's round trip: %s median, %s max", fmtSeconds(d.median()), fmtSeconds(d.max()))
	}
	for _, ttl := range b.failoverTTL {
		election := fmt.Sprintf("failover-%s-%ds", mode, int(ttl.Seconds()))
		g := b.newGroup(ctx, mode, election, ttl)
		lw := b.watchLease(ctx, election)
		err := func() error {
			n := 0
			next := func() error {
				n++
				_, err := g.start(fmt.Sprintf("failover-%d", n))
				return err
			}
			for range 3 {
				if err := next(); err != nil {
					return err
				}
			}
			if mode == modeWatch && ttl == defaultTTL {
				if _, err := g.stable(ttl*3 + 30*time.Second); err != nil {
					return err
				}
				d, err := b.deliveries(ctx, lw, deliveryProbes)
				if err != nil {
					return err
				}
				r.delivery = d
				b.logf("TTL %s: a lock write → the bench's watch: %s median, %s max", ttl, fmtSeconds(d.median()), fmtSeconds(d.max()))
				if r.idleWrite, err = b.idleWrites(ctx, deliveryProbes, b.renewInterval(ttl)); err != nil {
					return err
				}
				b.logf("TTL %s: a Lease update after %s idle: %s median, %s max", ttl, b.renewInterval(ttl), fmtSeconds(r.idleWrite.median()), fmtSeconds(r.idleWrite.max()))
			}
			var exits []<-chan time.Duration
			kinds := slices.Repeat([]syscall.Signal{syscall.SIGTERM}, b.gracefulRep)
			kinds = append(kinds, slices.Repeat([]syscall.Signal{syscall.SIGKILL}, b.crashReps)...)
			for _, sig := range kinds {
				leader, err := g.stable(ttl*3 + 30*time.Second)
				if err != nil {
					return err
				}
				if err := sleep(ctx, settle(ttl)); err != nil {
					return err
				}
				if sig == syscall.SIGKILL {
					c, err := b.crash(ctx, lw, ttl, b.renewInterval(ttl), func(h string) bool { return h == leader.e.ID }, func(string) (time.Time, error) {
						t0, _, err := g.signal(leader, syscall.SIGKILL)
						return t0, err
					})
					if err != nil {
						return fmt.Errorf("%w\n%s", err, g.describe())
					}
					m, at, err := g.newLeader(leader, c.killed, 10*time.Second, "is_leader:true of the new holder "+c.holder)
					if err != nil {
						return err
					}
					if m.e.ID != c.holder {
						return fmt.Errorf("the Lease names %s as the holder after SIGKILL to %s, but %s reported is_leader:true", c.holder, leader.e.ID, m.e.ID)
					}
					if err := next(); err != nil {
						return err
					}
					r.crash[ttl] = append(r.crash[ttl], c.took.Seconds())
					r.crashPast[ttl] = append(r.crashPast[ttl], c.pastLease.Seconds())
					r.crashReport = append(r.crashReport, at.Sub(c.at).Seconds())
					b.logf("TTL %s: %s; is_leader:true %s after the Lease", ttl, c, fmtSeconds(at.Sub(c.at).Seconds()))
					continue
				}
				took, exited, err := g.failover(leader, sig, 3*ttl+10*time.Second)
				if err != nil {
					return err
				}
				if err := next(); err != nil {
					return err
				}
				r.graceful[ttl] = append(r.graceful[ttl], took.Seconds())
				exits = append(exits, exited)
				b.logf("TTL %s: %v failover in %s", ttl, sig, took.Round(time.Millisecond))
			}
			// The old leaders exit while the next repetitions run.
			for _, exited := range exits {
				exit := <-exited
				if exit < 0 {
					return fmt.Errorf("a leader did not exit within 30s of SIGTERM")
				}
				r.shutdown = append(r.shutdown, exit.Seconds())
			}
			if len(r.shutdown) > 0 {
				b.logf("TTL %s: leaders exited %s after SIGTERM (median)", ttl, fmtSeconds(r.shutdown.median()))
			}
			return nil
		}()
		g.stop()
		lw.stop()
		if err != nil {
			return err
		}
	}
	if a := b.active(); mode == a[len(a)-1] {
		if err := b.clientGoCrashes(ctx); err != nil {
			return err
		}
		res, err := b.clientGoHandovers(ctx, 3, b.gracefulRep, false)
		if err != nil {
			return err
		}
		b.ref.graceful = res.failover
	}
	return nil
}

// clientGoCrashes measures crash failovers of plain client-go the way
// failovers does k8s-elector's: for each TTL, a group of 3 reference
// programs in an election of its own; SIGKILL of the holder, timed on the
// bench's watch of the Lease, then a fresh program replaces it.
func (b *bench) clientGoCrashes(ctx context.Context) error {
	b.logf("== crash failover, client-go (the reference program)")
	for _, ttl := range b.failoverTTL {
		election := fmt.Sprintf("failover-client-go-%ds", int(ttl.Seconds()))
		lw := b.watchLease(ctx, election)
		procs := map[string]*refProc{}
		err := func() error {
			n := 0
			next := func() error {
				n++
				p, err := b.startRef(election, fmt.Sprintf("client-go-%d", n), ttl)
				if err == nil {
					procs[p.id] = p
				}
				return err
			}
			for range 3 {
				if err := next(); err != nil {
					return err
				}
			}
			holds := func(h string) bool { p := procs[h]; return p != nil && !p.exited() }
			for range b.crashReps {
				// The programs have no status to agree on: the settle
				// alone gives a fresh one time to see the holder.
				if err := sleep(ctx, settle(ttl)); err != nil {
					return err
				}
				c, err := b.crash(ctx, lw, ttl, retryPeriod(ttl), holds, func(h string) (time.Time, error) {
					p := procs[h]
					delete(procs, h)
					return p.kill()
				})
				if err != nil {
					return fmt.Errorf("%w%s", err, describeRefs(procs))
				}
				if err := next(); err != nil {
					return err
				}
				b.ref.crash[ttl] = append(b.ref.crash[ttl], c.took.Seconds())
				b.ref.crashPast[ttl] = append(b.ref.crashPast[ttl], c.pastLease.Seconds())
				b.logf("client-go, TTL %s: %s", ttl, c)
			}
			return nil
		}()
		for _, p := range procs {
			_, _ = p.kill()
			<-p.done
		}
		lw.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// describeRefs lists the reference programs, and the log tail of any that
// exited, for errors.
func describeRefs(procs map[string]*refProc) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(procs)) {
		p := procs[id]
		fmt.Fprintf(&b, "\n  %s: exited=%v", id, p.exited())
		if p.exited() {
			fmt.Fprintf(&b, "; log:\n%s", tail(p.log.String(), 20))
		}
	}
	return b.String()
}

// steadyStates measures API requests per minute for each TTL: one window
// with the leader alone, one with the leader and two followers; and, at the
// default TTL, the resident memory of the idle electors.
func (b *bench) steadyStates(ctx context.Context, mode string) error {
	r := b.result(mode)
	for _, ttl := range b.steadyTTL {
		g := b.newGroup(ctx, mode, fmt.Sprintf("steady-%s-%ds", mode, int(ttl.Seconds())), ttl)
		err := func() error {
			leader, err := g.start("steady-leader")
			if err != nil {
				return err
			}
			if _, err := g.stable(time.Minute); err != nil {
				return err
			}
			if err := sleep(ctx, settle(ttl)); err != nil {
				return err
			}
			alone, err := b.measureWindow(ctx, b.window)
			if err != nil {
				return err
			}
			var followers []*member
			for i := range 2 {
				f, err := g.start(fmt.Sprintf("steady-follower-%d", i+1))
				if err != nil {
					return err
				}
				followers = append(followers, f)
			}
			if l, err := g.stable(time.Minute); err != nil {
				return err
			} else if l != leader {
				return fmt.Errorf("leadership moved to %s when followers joined", l.e.ID)
			}
			if err := sleep(ctx, settle(ttl)); err != nil {
				return err
			}
			all, err := b.measureWindow(ctx, b.window)
			if err != nil {
				return err
			}
			if l, err := g.stable(time.Second); err != nil || l != leader {
				return fmt.Errorf("leadership changed during the window: %v", err)
			}
			s := steadyOf(b.baseline, b.baseWatches, alone, all)
			r.steady[ttl] = s
			b.logf("TTL %s: leader %s; follower %s; open watches per elector %.2f", ttl, s.leader, s.follower, s.watches)
			if ttl != defaultTTL {
				return nil
			}
			// Followers have idled for settle + window by now, the leader
			// for longer.
			if since := time.Since(followers[0].started); since < b.idle {
				if err := sleep(ctx, b.idle-since); err != nil {
					return err
				}
			}
			if r.memLeader, err = leader.e.Memory(); err != nil {
				return err
			}
			for _, f := range followers {
				m, err := f.e.Memory()
				if err != nil {
					return err
				}
				if m.RSS > r.memFollower.RSS {
					r.memFollower = m
				}
			}
			b.logf("idle RSS: leader %s, follower %s", fmtMemory(r.memLeader), fmtMemory(r.memFollower))
			return nil
		}()
		g.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// steadyOf is the steady state of a group of 3 from the window with its
// leader alone and the one with the leader and 2 followers, less baseline,
// the window without any elector, and baseWatches, the open watches then.
func steadyOf(baseline rates, baseWatches float64, alone, all window) steady {
	return steady{
		leader:   alone.rates.plus(-1, baseline),
		follower: all.rates.plus(-1, alone.rates).times(0.5),
		fleet:    all.rates.plus(-1, baseline),
		watches:  (all.watches - baseWatches) / 3,
	}
}

// beyondSteady returns the requests between two scrapes less what rate, per
// minute, accounts for over the time between them.
func beyondSteady(s0, s1 scrape, rate rates) rates {
	return counted(s0, s1).plus(-s1.at.Sub(s0.at).Minutes(), rate)
}

// getLoad loads GET / of a leader with keep-alive connections. On a machine
// with two CPUs or more, and with taskset(1), the elector runs on CPU 1 and
// the load generator, a process of its own, on CPU 0, so that the latency is
// the elector's and not the scheduler's arbitration between the two.
func (b *bench) getLoad(ctx context.Context, mode string) error {
	r := b.result(mode)
	g := b.newGroup(ctx, mode, "load-"+mode, defaultTTL)
	defer g.stop()
	g.cfg.Wrap = b.pin.elector
	m, err := g.start("load")
	if err != nil {
		return err
	}
	if _, err := g.stable(time.Minute); err != nil {
		return err
	}
	if r.load, err = b.pin.load(ctx, m.e.Addr, b.loadConns, b.loadFor); err != nil {
		return err
	}
	b.logf("GET /, %d connections: %.0f req/s, p50 %s, p99 %s, max %s", b.loadConns, r.load.RPS,
		r.load.P50, r.load.P99, r.load.Max)
	if r.loadOne, err = b.pin.load(ctx, m.e.Addr, 1, b.loadOneFor); err != nil {
		return err
	}
	b.logf("GET /, 1 connection: %.0f req/s, p50 %s, p99 %s, max %s", r.loadOne.RPS,
		r.loadOne.P50, r.loadOne.P99, r.loadOne.Max)
	return nil
}

// manyElections runs the library scale program: one process, many
// elections with one candidate each, at the default TTL.
func (b *bench) manyElections(ctx context.Context, mode string) error {
	r := b.result(mode)
	ttl := defaultTTL
	w, err := b.startWorker(ctx,
		"-kubeconfig="+b.kubecfg, "-namespace="+b.namespace, "-n="+strconv.Itoa(b.elections),
		"-ttl="+ttl.String(), "-watch="+strconv.FormatBool(mode == modeWatch), "-prefix=scale-"+mode)
	if err != nil {
		return err
	}
	defer w.stop(time.Minute)
	if r.scaleAllLead, err = w.waitLeading(ctx, b.elections, 5*time.Minute, b.logf); err != nil {
		return err
	}
	b.logf("all %d elections lead after %s", b.elections, r.scaleAllLead.Round(time.Millisecond))
	if err := sleep(ctx, settle(ttl)+2*time.Second); err != nil {
		return err
	}
	before, _ := w.next()
	win, err := b.measureWindow(ctx, b.window)
	if err != nil {
		return err
	}
	after, _ := w.next()
	r.scaleLost = after.terms - before.terms
	if r.scaleRSS, err = fleet.ProcRSS(w.cmd.Process.Pid); err != nil {
		return err
	}
	r.scalePerElection = win.rates.plus(-1, b.baseline).times(1 / float64(b.elections))
	b.logf("%d elections: RSS %.1f MB; per election %s; %d terms started during the window (lost and regained leadership); %d lead at its end",
		b.elections, float64(r.scaleRSS)/1e6, r.scalePerElection, r.scaleLost, after.leading)
	if x := w.stop(time.Minute); x.err != nil {
		return fmt.Errorf("%w\n%s", x.err, w.tail())
	}
	for _, line := range w.summary() {
		b.logf("%d elections, %s", b.elections, line)
	}
	return nil
}

// reference measures the idle RSS of the reference program, alone on the
// API server so that its renewals count in no window. The program has no
// modes: it runs once, and the table shows it in a column of its own.
func (b *bench) reference(ctx context.Context, mode string) error {
	if b.ref.mem.RSS > 0 {
		return nil
	}
	cmd := exec.Command(b.minimal, "-kubeconfig="+b.kubecfg, "-namespace="+b.namespace,
		"-election=reference", "-id=reference", "-ttl="+defaultTTL.String(),
		"-renew-deadline="+elector.DefaultTimings(defaultTTL).RenewDeadline.String(),
		"-retry-period="+elector.DefaultTimings(defaultTTL).RetryPeriod.String())
	cmd.Stderr = b.logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the reference program: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	// Its renewals over the idle time: plain client-go's leader alone.
	win, err := b.measureWindow(ctx, b.idle)
	if err != nil {
		return err
	}
	b.ref.leader = win.rates.plus(-1, b.baseline)
	b.logf("reference program: a leader alone, %s", b.ref.leader)
	m, err := fleet.ReadProcMemory(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("the reference program: %w", err)
	}
	b.ref.mem = m
	b.logf("reference program: idle RSS %s after %s", fmtMemory(m), b.idle)
	return nil
}
