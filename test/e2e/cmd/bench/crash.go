package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"syscall"
	"time"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// crashSlack is what the crash failover targets allow beyond the lease: a
// follower on the watch tries when the lease it saw renewed has run out, plus
// the drift margin (TTL/50, which is 0.2 s at TTL 10s).
const crashSlack = 200 * time.Millisecond

// crashResult is one crash failover, timed on the bench's watch of the Lease.
type crashResult struct {
	killed    time.Time     // when SIGKILL was sent
	since     time.Duration // from the arrival of the holder's last renewal to the SIGKILL
	took      time.Duration // from the SIGKILL to the arrival of another holder
	pastLease time.Duration // took less what was left of the lease at the SIGKILL: took − (TTL − since)
	holder    string        // the new holder
	at        time.Time     // when the new holder arrived
}

// crash waits for lw to deliver a renewal by a holder for which holds is
// true, sends it SIGKILL through kill at a uniformly random instant of the
// retry period that follows, and times until lw delivers another holder.
//
// The instant of the SIGKILL in the renewal cycle decides the failover: a
// follower counts the lease from the last renewal it saw. Killing right
// after a renewal would measure the longest failover, killing at a fixed
// delay after the group settles whatever phase that delay happens to hit.
func (b *bench) crash(ctx context.Context, lw *leaseWatch, ttl, cadence time.Duration, holds func(holder string) bool,
	kill func(holder string) (time.Time, error)) (crashResult, error) {
	r, err := lw.next(ctx, time.Now(), 3*ttl+30*time.Second, "a renewal by the leader",
		func(s leaseState) bool { return holds(s.holder) })
	if err != nil {
		return crashResult{}, err
	}
	if err := sleep(ctx, time.Until(r.at.Add(rand.N(cadence)))); err != nil {
		return crashResult{}, err
	}
	t0, err := kill(r.holder)
	if err != nil {
		return crashResult{}, fmt.Errorf("SIGKILL to %s: %w", r.holder, err)
	}
	n, err := lw.next(ctx, t0, 3*ttl+10*time.Second, "another holder after SIGKILL to "+r.holder,
		func(s leaseState) bool { return s.holder != "" && s.holder != r.holder })
	if err != nil {
		return crashResult{}, err
	}
	return crashOf(ttl, r, t0, n), nil
}

// crashOf times a crash failover at ttl from the renewal seen before the
// SIGKILL, the instant of the SIGKILL and the next holder seen.
func crashOf(ttl time.Duration, renewal leaseState, killed time.Time, next leaseState) crashResult {
	c := crashResult{killed: killed, since: killed.Sub(renewal.at), took: next.at.Sub(killed), holder: next.holder, at: next.at}
	c.pastLease = c.took - (ttl - c.since)
	return c
}

func (c crashResult) String() string {
	return fmt.Sprintf("SIGKILL %s after a renewal, another holder after %s (%s after the lease ran out)",
		fmtSeconds(c.since.Seconds()), fmtSeconds(c.took.Seconds()), fmtSeconds(c.pastLease.Seconds()))
}

// refProc is one running reference program (cmd/bench/internal/minimal).
type refProc struct {
	id   string
	cmd  *exec.Cmd
	log  *fleet.SyncBuffer
	done chan struct{} // closed when it has exited
}

// startRef starts a reference program with identity id in election.
func (b *bench) startRef(election, id string, ttl time.Duration) (*refProc, error) {
	p := &refProc{id: id, log: &fleet.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(b.minimal, "-kubeconfig="+b.kubecfg, "-namespace="+b.namespace,
		"-election="+election, "-id="+id, "-ttl="+ttl.String(),
		"-renew-deadline="+elector.DefaultTimings(ttl).RenewDeadline.String(),
		"-retry-period="+elector.DefaultTimings(ttl).RetryPeriod.String())
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the reference program %s: %w", id, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *refProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and returns when it did; the process is reaped in the
// background.
func (p *refProc) kill() (time.Time, error) {
	t := time.Now()
	return t, p.cmd.Process.Kill()
}
