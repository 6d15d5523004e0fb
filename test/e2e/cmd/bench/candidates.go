package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	elector "github.com/k8s-elector/elector"
)

// bigResult holds the figures of one election with many candidates.
type bigResult struct {
	fleet    rates   // the whole election's API requests, per minute
	failover dist    // SIGTERM of the leader → another leads, seconds
	burst    []rates // requests of each of those handovers beyond the steady rate
	// lockWrites of each of those handovers: the Lease's states on the
	// bench's watch from the SIGTERM to the new holder's, and the 409s.
	lockWrites dist
	// passedOver: the leader hands over to a successor that is stopped
	// (SIGSTOP): the release, on the bench's watch of the Lease → another
	// leads, seconds; passedOverReq counts from the request (POST
	// /resign?to=) instead. k8s-elector only.
	passedOver, passedOverReq dist
	// delivery: a write of the lock object's metadata → the bench's watch
	// receives it, while the candidates watch it too, seconds.
	delivery dist
	// fromRelease: the release → the new holder, both on the bench's watch
	// of the Lease, seconds.
	fromRelease dist
}

// bigOf returns the figures of the election of n candidates in m, creating
// them.
func bigOf(m map[int]*bigResult, n int) *bigResult {
	if m[n] == nil {
		m[n] = &bigResult{}
	}
	return m[n]
}

// successorWindow is how long our other candidates leave a released lock to
// the successor the release names.
var successorWindow = elector.DefaultTimings(defaultTTL).SuccessorWindow

// manyCandidates runs, for each size of b.candidates, one election with
// that many k8s-elector processes at the default TTL: the fleet's API
// requests over a window, SIGTERM handovers of the leader, and handovers to
// a successor that is stopped. The first size runs in every mode, the
// others in watch mode only: hundreds of polling followers load the API
// server with their reads whatever the handover does. After the last mode,
// the same elections of plain client-go (the reference program).
func (b *bench) manyCandidates(ctx context.Context, mode string) error {
	for i, n := range b.candidates {
		if i > 0 && mode != modeWatch {
			continue
		}
		if err := b.ourCandidates(ctx, mode, n); err != nil {
			return fmt.Errorf("%d candidates: %w", n, err)
		}
	}
	if a := b.active(); mode != a[len(a)-1] {
		return nil
	}
	for _, n := range b.candidates {
		res, err := b.clientGoHandovers(ctx, n, b.bigReps, true)
		if err != nil {
			return fmt.Errorf("%d client-go candidates: %w", n, err)
		}
		b.ref.big[n] = res
	}
	return nil
}

func (b *bench) ourCandidates(ctx context.Context, mode string, n int) error {
	r := bigOf(b.result(mode).big, n)
	ttl := defaultTTL
	election := fmt.Sprintf("candidates-%s-%d", mode, n)
	g := b.newGroup(ctx, mode, election, ttl)
	g.cfg.Extra = append(g.cfg.Extra, "-allow-resign")
	defer g.stop()
	lw := b.watchLease(ctx, election)
	defer lw.stop()
	seq := 0
	for range n {
		seq++
		if _, err := g.start(fmt.Sprintf("candidate-%03d", seq)); err != nil {
			return err
		}
	}
	if _, err := g.stable(3*time.Minute + time.Duration(n)*100*time.Millisecond); err != nil {
		return err
	}
	if err := sleep(ctx, settle(ttl)+2*time.Second); err != nil {
		return err
	}
	w, err := b.measureWindow(ctx, b.window)
	if err != nil {
		return err
	}
	r.fleet = w.rates.plus(-1, b.baseline)
	b.logf("%d candidates: %s for the whole fleet", n, r.fleet)
	for range b.bigReps {
		leader, err := g.stable(time.Minute)
		if err != nil {
			return err
		}
		if err := sleep(ctx, settle(ttl)); err != nil {
			return err
		}
		s0, err := b.scrapeMetrics(ctx)
		if err != nil {
			return err
		}
		t0 := time.Now()
		took, _, err := g.failover(leader, syscall.SIGTERM, 3*ttl)
		if err != nil {
			return err
		}
		held, err := lw.next(ctx, t0, 10*time.Second, "a new holder after SIGTERM to "+leader.e.ID,
			func(s leaseState) bool { return s.holder != "" && s.holder != leader.e.ID })
		if err != nil {
			return err
		}
		lockWrites := lw.writes(t0, held.at)
		released, err := lw.next(ctx, t0, 10*time.Second, "the release after SIGTERM to "+leader.e.ID,
			func(s leaseState) bool { return s.holder == "" })
		if err != nil {
			return err
		}
		// The requests the handover caused: those of the next few seconds
		// beyond the steady rate.
		if _, err := g.stable(time.Minute); err != nil {
			return err
		}
		if err := sleep(ctx, time.Until(s0.at.Add(burstWindow))); err != nil {
			return err
		}
		s1, err := b.scrapeMetrics(ctx)
		if err != nil {
			return err
		}
		extra := beyondSteady(s0, s1, b.baseline.plus(1, r.fleet))
		r.burst = append(r.burst, extra)
		r.failover = append(r.failover, took.Seconds())
		r.lockWrites = append(r.lockWrites, float64(lockWrites)+extra.conflicts)
		r.fromRelease = append(r.fromRelease, held.at.Sub(released.at).Seconds())
		b.logf("%d candidates: SIGTERM failover in %s (the bench's watch of the Lease: the release %s after SIGTERM, the new holder %s after the release); %d lock writes and %.0f conflicts; %s beyond the steady rate in the %s after SIGTERM",
			n, took.Round(time.Millisecond), released.at.Sub(t0).Round(100*time.Microsecond), held.at.Sub(released.at).Round(100*time.Microsecond),
			lockWrites, extra.conflicts, extra.counts(), burstWindow)
		// A fresh candidate replaces the old leader, after the count.
		seq++
		if _, err := g.start(fmt.Sprintf("candidate-%03d", seq)); err != nil {
			return err
		}
	}
	if mode == modeWatch {
		if r.delivery, err = b.deliveries(ctx, lw, deliveryProbes); err != nil {
			return err
		}
		b.logf("%d candidates: a lock write → the bench's watch: %s median, %s max", n, fmtSeconds(r.delivery.median()), fmtSeconds(r.delivery.max()))
	}
	for range b.bigReps {
		fromRelease, fromRequest, err := b.passOver(ctx, g, lw, ttl)
		if err != nil {
			return err
		}
		r.passedOver = append(r.passedOver, fromRelease.Seconds())
		r.passedOverReq = append(r.passedOverReq, fromRequest.Seconds())
		b.logf("%d candidates: handover to a stopped successor; another leads %s after the release, %s after the request", n,
			fromRelease.Round(time.Millisecond), fromRequest.Round(time.Millisecond))
	}
	return nil
}

// probeAnnotation is the annotation the bench writes on a lock object to
// time the delivery of a write to the watches of the object.
const probeAnnotation = "bench.k8s-elector.io/probe"

// deliveryProbes is how many writes deliveries times.
const deliveryProbes = 10

// deliveries times n writes of probeAnnotation on the lock object that lw
// follows, each from just before its request to its arrival on lw, one
// every 200 ms, and then removes the annotation. The record is left as it
// is, so the electors see no change of holder or renewal: the write only
// travels the way a release or an acquisition does, to every watch of the
// object. A graceful handover is two of these one after the other (the
// release, to the successor; the acquisition, to whoever watches), so
// twice the median is its floor on this machine, at this many watchers.
// Each probe write is a state of lw of its own, with the holder and renew
// time of the one before: call it only between the measurements that
// read lw's states, never during one.
func (b *bench) deliveries(ctx context.Context, lw *leaseWatch, n int) (dist, error) {
	leases := b.client.CoordinationV1().Leases(b.namespace)
	write := func(value string) (time.Time, error) {
		for {
			l, err := leases.Get(ctx, lw.name, metav1.GetOptions{})
			if err != nil {
				return time.Time{}, err
			}
			if value == "" {
				delete(l.Annotations, probeAnnotation)
			} else {
				if l.Annotations == nil {
					l.Annotations = map[string]string{}
				}
				l.Annotations[probeAnnotation] = value
			}
			t0 := time.Now()
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				continue // a renewal came between: try again
			}
			return t0, err
		}
	}
	var d dist
	for i := range n {
		value := fmt.Sprintf("%d-%d", time.Now().UnixNano(), i)
		t0, err := write(value)
		if err != nil {
			return nil, fmt.Errorf("probe write: %w", err)
		}
		s, err := lw.next(ctx, t0, 10*time.Second, "the probe write "+value, func(s leaseState) bool { return s.probe == value })
		if err != nil {
			return nil, err
		}
		d = append(d, s.at.Sub(t0).Seconds())
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if _, err := write(""); err != nil {
		return nil, fmt.Errorf("removing the probe: %w", err)
	}
	return d, nil
}

// idleWrites runs the idle probe (cmd/bench/internal/idleprobe): n
// updates of a Lease of its own, each after gap idle, from a process that
// does nothing else, as the writes of a graceful handover come from
// processes idle since their last renewal; it returns their round trips.
func (b *bench) idleWrites(ctx context.Context, n int, gap time.Duration) (dist, error) {
	cmd := exec.CommandContext(ctx, b.idleProbe, "-kubeconfig="+b.kubecfg, "-namespace="+b.namespace, "-name=idle-probe",
		fmt.Sprintf("-n=%d", n), "-gap="+gap.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("idle probe: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var d dist
	for line := range strings.FieldsSeq(string(out)) {
		v, err := strconv.ParseFloat(line, 64)
		if err != nil {
			return nil, fmt.Errorf("idle probe: %q: %w", line, err)
		}
		d = append(d, v)
	}
	if len(d) != n {
		return nil, fmt.Errorf("idle probe: %d round trips, want %d", len(d), n)
	}
	return d, nil
}

// passOver stops a follower (SIGSTOP), asks the leader to hand over to it
// (POST /resign?to=), and returns how long until another member leads,
// from the release as the bench's watch of the Lease received it (about
// when the candidates did, and their window began) and from the request.
// The follower runs again (SIGCONT) before it returns.
func (b *bench) passOver(ctx context.Context, g *group, lw *leaseWatch, ttl time.Duration) (fromRelease, fromRequest time.Duration, err error) {
	leader, err := g.stable(time.Minute)
	if err != nil {
		return 0, 0, err
	}
	if err := sleep(ctx, settle(ttl)); err != nil {
		return 0, 0, err
	}
	g.mu.Lock()
	var frozen *member
	for _, m := range g.live() {
		if m != leader {
			frozen = m
			break
		}
	}
	g.mu.Unlock()
	if frozen == nil {
		return 0, 0, fmt.Errorf("no follower to stop:\n%s", g.describe())
	}
	if err := frozen.e.Signal(syscall.SIGSTOP); err != nil {
		return 0, 0, err
	}
	defer func() { _ = frozen.e.Signal(syscall.SIGCONT) }()
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+leader.e.Addr+"/resign?to="+url.QueryEscape(frozen.e.ID), nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("POST /resign?to=%s on %s: %w", frozen.e.ID, leader.e.ID, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("POST /resign?to=%s on %s: %s", frozen.e.ID, leader.e.ID, resp.Status)
	}
	_, at, err := g.newLeader(leader, t0, 3*ttl, "another leader after the handover to the stopped "+frozen.e.ID)
	if err != nil {
		return 0, 0, err
	}
	released, err := lw.next(ctx, t0, 10*time.Second, "the release to the stopped "+frozen.e.ID, func(s leaseState) bool { return s.holder == "" })
	if err != nil {
		return 0, 0, err
	}
	return at.Sub(released.at), at.Sub(t0), nil
}

// clientGoHandovers measures plain client-go's graceful handover in an
// election of n reference programs at the default TTL: the holder gets
// SIGTERM and releases the Lease (ReleaseOnCancel), and the bench times
// from the signal to another holder on its watch of the Lease; a fresh
// program replaces the old one after the count. With requests, it also measures the
// fleet's API requests over a window first, and counts those of each
// handover beyond that steady rate, as for k8s-elector.
func (b *bench) clientGoHandovers(ctx context.Context, n, reps int, requests bool) (*bigResult, error) {
	b.logf("== graceful handover, %d client-go programs (the reference program)", n)
	ttl := defaultTTL
	election := fmt.Sprintf("handover-client-go-%d", n)
	lw := b.watchLease(ctx, election)
	defer lw.stop()
	procs := map[string]*refProc{}
	defer func() {
		for _, p := range procs {
			_, _ = p.kill()
			<-p.done
		}
	}()
	seq := 0
	for range n {
		seq++
		p, err := b.startRef(election, fmt.Sprintf("client-go-%03d", seq), ttl)
		if err != nil {
			return nil, err
		}
		procs[p.id] = p
	}
	res := &bigResult{}
	holds := func(s leaseState) bool { p := procs[s.holder]; return p != nil && !p.exited() }
	if _, err := lw.next(ctx, time.Now(), 3*ttl+time.Minute, "a holder", holds); err != nil {
		return nil, err
	}
	// The programs have no status to agree on: a few retry periods let
	// every one see the holder.
	if err := sleep(ctx, 3*settle(ttl)); err != nil {
		return nil, err
	}
	if requests {
		w, err := b.measureWindow(ctx, b.window)
		if err != nil {
			return nil, err
		}
		res.fleet = w.rates.plus(-1, b.baseline)
		b.logf("%d client-go programs: %s for the whole fleet", n, res.fleet)
	}
	for range reps {
		cur, err := lw.next(ctx, time.Now(), 3*ttl, "a renewal by the holder", holds)
		if err != nil {
			return nil, err
		}
		if err := sleep(ctx, settle(ttl)); err != nil {
			return nil, err
		}
		s0, err := b.scrapeMetrics(ctx)
		if err != nil {
			return nil, err
		}
		old := procs[cur.holder]
		delete(procs, cur.holder)
		t0 := time.Now()
		if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return nil, err
		}
		nx, err := lw.next(ctx, t0, 3*ttl+10*time.Second, "another holder after SIGTERM to "+cur.holder,
			func(s leaseState) bool { return s.holder != "" && s.holder != cur.holder })
		if err != nil {
			return nil, fmt.Errorf("%w%s", err, describeRefs(procs))
		}
		res.failover = append(res.failover, nx.at.Sub(t0).Seconds())
		if rel, err := lw.next(ctx, t0, time.Second, "the release after SIGTERM to "+cur.holder,
			func(s leaseState) bool { return s.holder == "" }); err == nil && !rel.at.After(nx.at) {
			res.fromRelease = append(res.fromRelease, nx.at.Sub(rel.at).Seconds())
		}
		lockWrites := lw.writes(t0, nx.at)
		select {
		case <-old.done:
		case <-time.After(30 * time.Second):
			_, _ = old.kill()
			<-old.done
		}
		if requests {
			if err := sleep(ctx, time.Until(s0.at.Add(burstWindow))); err != nil {
				return nil, err
			}
			s1, err := b.scrapeMetrics(ctx)
			if err != nil {
				return nil, err
			}
			extra := beyondSteady(s0, s1, b.baseline.plus(1, res.fleet))
			res.burst = append(res.burst, extra)
			res.lockWrites = append(res.lockWrites, float64(lockWrites)+extra.conflicts)
			b.logf("%d client-go programs: SIGTERM handover in %s; %d lock writes and %.0f conflicts; %s beyond the steady rate in the %s after SIGTERM",
				n, nx.at.Sub(t0).Round(time.Millisecond), lockWrites, extra.conflicts, extra.counts(), burstWindow)
		} else {
			b.logf("%d client-go programs: SIGTERM handover in %s", n, nx.at.Sub(t0).Round(time.Millisecond))
		}
		seq++
		p, err := b.startRef(election, fmt.Sprintf("client-go-%03d", seq), ttl)
		if err != nil {
			return nil, err
		}
		procs[p.id] = p
	}
	return res, nil
}

// writeRoundTrips times n updates of a Lease by the bench's own client, one
// after the other: the floor of a handover, which is two such writes (the
// release, the successor's acquisition) and a watch delivery between them.
func (b *bench) writeRoundTrips(ctx context.Context, n int) (dist, error) {
	leases := b.client.CoordinationV1().Leases(b.namespace)
	l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "write-round-trip"}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = leases.Delete(context.WithoutCancel(ctx), l.Name, metav1.DeleteOptions{}) }()
	var d dist
	for i := range n {
		holder := fmt.Sprintf("probe-%d", i)
		l.Spec.HolderIdentity = &holder
		t0 := time.Now()
		if l, err = leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
		d = append(d, time.Since(t0).Seconds())
	}
	return d, nil
}
