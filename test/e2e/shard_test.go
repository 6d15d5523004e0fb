package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// The shard scenario: examples/shards, an elector.Group that spreads its
// elections over its replicas, 3 replicas × 30 shards at a TTL of 3s.
const (
	shardCount = 30
	shardTTL   = 3 * time.Second
	// shardPoll is how often the recorder asks every replica for GET /.
	shardPoll = 20 * time.Millisecond
)

var shardTimings = elector.DefaultTimings(shardTTL)

// TestShardSpread runs examples/shards against the API server: one replica
// leads all 30 shards; two join and take their shares, 10/10/10, by
// graceful handovers, within 2 TTLs (a share waited out would be a TTL
// per lease); one gets SIGTERM and hands its shards to the other two
// within the successor window (a handover that failed would wait it out),
// 15/15; one joins again, 10/10/10; one is killed, and its shards lead
// elsewhere within a TTL and a second, when their leases have run out,
// none handed back to it. Every replica's GET / is recorded every 20ms
// throughout, and no shard may ever have two replicas answering is_leader
// at overlapping times.
func TestShardSpread(t *testing.T) {
	parallelParent(t)
	bin := buildShards(t)
	t.Run("3x30", func(t *testing.T) {
		parallel(t)
		s := &shardFleet{t: t, bin: bin, ns: newNamespace(t), rec: newShardRecorder()}
		defer s.finish()

		// The Leases do not exist yet: r1 creates them at once, once it
		// runs; the slack is for its start on a loaded machine.
		r1 := s.start("r1")
		s.figure("r1 alone leads 30", s.waitShares(shardTTL+slack, r1.started, r1), shardTTL+slack)

		r2, r3 := s.start("r2"), s.start("r3")
		s.figure("join → 10/10/10", s.waitShares(2*shardTTL, r2.started, r1, r2, r3), 2*shardTTL)

		// SIGTERM: r1 leaves the Group, then names a successor for each of
		// its shards in their releases.
		at := s.signal(r1, syscall.SIGTERM)
		s.figure("SIGTERM → all led elsewhere", s.waitLedElsewhere(shardTimings.SuccessorWindow, at, r2, r3), shardTimings.SuccessorWindow)
		s.figure("SIGTERM → 15/15", s.waitShares(shardTTL, at, r2, r3), shardTTL)
		s.exited(r1)

		r4 := s.start("r4")
		s.figure("rejoin → 10/10/10", s.waitShares(2*shardTTL, r4.started, r2, r3, r4), 2*shardTTL)

		// SIGKILL: r2's shards lead elsewhere when their leases run out,
		// taken by the candidates that watch them, and none is handed
		// back to r2, which counts as a member until its member Lease runs
		// out too: then the shares even out, by handovers, within a retry
		// period.
		s.killed = r2.id
		at = s.signal(r2, syscall.SIGKILL)
		limit := shardTTL + time.Second
		s.figure("SIGKILL → all led elsewhere", s.waitLedElsewhere(limit, at, r3, r4), limit)
		s.figure("SIGKILL → 15/15", s.waitShares(limit, at, r3, r4), limit)
		if len(s.handedToKilled) > 0 {
			t.Errorf("after %s was killed, %d shards were handed over to it, each then without a leader for the successor window: %v",
				r2.id, len(s.handedToKilled), s.handedToKilled)
		}

		for _, r := range []*shardReplica{r3, r4} {
			s.signal(r, syscall.SIGTERM)
			s.exited(r)
		}
	})
}

// buildShards builds examples/shards, of the root module, into a
// temporary directory.
func buildShards(t *testing.T) string {
	t.Helper()
	return buildProgram(t, controlplane.RepoRoot(), "./examples/shards", "shards")
}

// shardFleet is the replicas of one run, the recorder of their answers,
// and the figures measured.
type shardFleet struct {
	t        *testing.T
	bin, ns  string
	rec      *shardRecorder
	replicas []*shardReplica
	figures  []shardFigure
	// killed is the replica killed, and handedToKilled the shards whose
	// Lease was seen released to it as the successor.
	killed         string
	handedToKilled []string
}

// shardFigure is one measured time and its bound.
type shardFigure struct {
	what        string
	took, limit time.Duration
}

func (s *shardFleet) figure(what string, took, limit time.Duration) {
	s.figures = append(s.figures, shardFigure{what, took, limit})
}

// shardReplica is one process of examples/shards.
type shardReplica struct {
	id, addr string
	started  time.Time
	cmd      *exec.Cmd
	log      *fleet.SyncBuffer
	done     chan struct{}
	waited   error
}

// start starts replica id, recorded from its first answer on. The port
// FreeAddr picks may be taken before the replica binds it: it is started
// again on another, up to three times.
func (s *shardFleet) start(id string) *shardReplica {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		r := s.startOnce(id)
		up := r.listening(10 * time.Second)
		if up {
			s.replicas = append(s.replicas, r)
			s.rec.add(r)
			return r
		}
		if attempt == 3 || !strings.Contains(r.log.String(), "address already in use") {
			r.kill()
			s.t.Fatalf("replica %s did not serve HTTP on %s:\n%s", id, r.addr, r.log.String())
		}
	}
}

func (s *shardFleet) startOnce(id string) *shardReplica {
	s.t.Helper()
	addr, err := fleet.FreeAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	r := &shardReplica{id: id, addr: addr, log: &fleet.SyncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(s.bin, "-kubeconfig="+cp.AdminKubeconfig, "-namespace="+s.ns, "-id="+id,
		"-http="+addr, "-ttl="+shardTTL.String(), fmt.Sprintf("-shards=%d", shardCount))
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.started = time.Now()
	if err := r.cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", id, err)
	}
	go func() { r.waited = r.cmd.Wait(); close(r.done) }()
	s.t.Cleanup(func() {
		r.kill()
		if s.t.Failed() {
			s.t.Logf("log of %s:\n%s", id, r.log.String())
		}
	})
	return r
}

// listening waits until r accepts connections, or exits.
func (r *shardReplica) listening(limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if r.exited() {
			return false
		}
		if conn, err := net.DialTimeout("tcp", r.addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return true
		}
	}
	return false
}

func (r *shardReplica) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *shardReplica) kill() {
	if !r.exited() {
		_ = r.cmd.Process.Kill()
	}
	<-r.done
}

// signal sends sig to r and returns when.
func (s *shardFleet) signal(r *shardReplica, sig syscall.Signal) time.Time {
	s.t.Helper()
	at := time.Now()
	if err := r.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("%v to %s: %v", sig, r.id, err)
	}
	return at
}

// exited checks that r, sent SIGTERM, exits 0 within its shutdown budget
// (each election's release is bounded by it) with slack, without a stack
// trace.
func (s *shardFleet) exited(r *shardReplica) {
	s.t.Helper()
	limit := shardTimings.ShutdownBudget + slack
	select {
	case <-r.done:
	case <-time.After(limit):
		s.t.Fatalf("%s did not exit within %s of SIGTERM", r.id, limit)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(r.waited, &exit):
		s.t.Errorf("%s exited %d after SIGTERM, want 0", r.id, exit.ExitCode())
	case r.waited != nil:
		s.t.Errorf("%s: %v", r.id, r.waited)
	}
	if lines := history.StackTraces(r.log.String()); len(lines) > 0 {
		s.t.Errorf("%s printed a stack trace: %q", r.id, lines)
	}
}

// shardNames are the elections of examples/shards.
var shardNames = func() []string {
	var names []string
	for i := range shardCount {
		names = append(names, fmt.Sprintf("shard-%d", i))
	}
	return names
}()

// holders reads the holder of every shard's Lease from the API server.
func (s *shardFleet) holders() map[string]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := admin.CoordinationV1().Leases(s.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatalf("listing Leases: %v", err)
	}
	out := map[string]string{}
	for _, l := range list.Items {
		if !slices.Contains(shardNames, l.Name) {
			continue
		}
		out[l.Name] = ptrString(l.Spec.HolderIdentity)
		var hint struct {
			To string `json:"to"`
		}
		if raw := l.Annotations[successorAnnotation]; s.killed != "" && raw != "" && json.Unmarshal([]byte(raw), &hint) == nil &&
			hint.To == s.killed && !slices.Contains(s.handedToKilled, l.Name) {
			s.handedToKilled = append(s.handedToKilled, l.Name)
		}
	}
	return out
}

// successorAnnotation names, on a released lock, the successor the
// release names.
const successorAnnotation = "k8s-elector.io/successor"

// waitShares waits until live, the replicas alive, lead every shard
// between them and none more than its share, ⌈shards/replicas⌉, as their
// answers to GET / sent after since say, and every shard's Lease names the
// replica that answers it leads it. It returns the time from since, and
// fails the test after limit.
func (s *shardFleet) waitShares(limit time.Duration, since time.Time, live ...*shardReplica) time.Duration {
	s.t.Helper()
	share := (shardCount + len(live) - 1) / len(live)
	var state string
	for {
		leaders, counts, ok := s.rec.leaders(since, live)
		holders := s.holders()
		now := time.Now()
		state = fmt.Sprintf("replicas answer %v; Leases name %v", counts, countHolders(holders))
		if ok && evenShares(counts, live, share) && leasesAgree(leaders, holders) {
			return now.Sub(since)
		}
		if now.Sub(since) > limit {
			s.t.Fatalf("the shares of %d shards over %s were not %d each within %s of %s: %s",
				shardCount, replicaIDs(live), share, limit, stamp(since), state)
		}
		time.Sleep(shardPoll)
	}
}

// evenShares reports whether the replicas lead every shard, none more
// than share.
func evenShares(counts map[string]int, live []*shardReplica, share int) bool {
	total := 0
	for _, r := range live {
		if counts[r.id] > share {
			return false
		}
		total += counts[r.id]
	}
	return total == shardCount
}

// leasesAgree reports whether every shard's Lease names the one replica that
// answers it leads it.
func leasesAgree(leaders, holders map[string]string) bool {
	for _, shard := range shardNames {
		if leaders[shard] == "" || leaders[shard] != holders[shard] {
			return false
		}
	}
	return true
}

// waitLedElsewhere waits until every shard's Lease names one of live, the
// replicas alive, and that replica's GET /shard-N answers is_leader; it
// returns the time from since and fails the test after limit.
func (s *shardFleet) waitLedElsewhere(limit time.Duration, since time.Time, live ...*shardReplica) time.Duration {
	s.t.Helper()
	byID := map[string]*shardReplica{}
	for _, r := range live {
		byID[r.id] = r
	}
	for {
		holders := s.holders()
		missing := ""
		for _, shard := range shardNames {
			r := byID[holders[shard]]
			if r == nil {
				missing = fmt.Sprintf("the Lease of %s names %q", shard, holders[shard])
				break
			}
			var st elector.Status
			if err := getShardJSON(r.addr, "/"+shard, &st); err != nil || !st.IsLeader {
				missing = fmt.Sprintf("%s's GET /%s: is_leader=%v, err %v", r.id, shard, st.IsLeader, err)
				break
			}
		}
		now := time.Now()
		if missing == "" {
			return now.Sub(since)
		}
		if now.Sub(since) > limit {
			s.t.Fatalf("the shards did not all lead on %s within %s of %s: %s (Leases name %v)",
				replicaIDs(live), limit, stamp(since), missing, countHolders(holders))
		}
		time.Sleep(shardPoll)
	}
}

// finish stops the recorder, checks that no shard ever had two leaders,
// and logs the figures.
func (s *shardFleet) finish() {
	t := s.t
	samples := s.rec.stop()
	overlaps, answers := 0, 0
	for _, shard := range shardNames {
		h := history.History{Samples: samples[shard]}
		for _, r := range s.replicas {
			h.Electors = append(h.Electors, r.id)
		}
		answers += len(h.Samples)
		ov := h.Overlaps()
		overlaps += len(ov)
		for _, v := range h.Violations() {
			t.Errorf("%s: %s", shard, v)
		}
		for _, o := range ov {
			t.Logf("%s around the overlap:\n%s", shard, h.Timeline(o.From.Add(-time.Second), o.To.Add(time.Second)))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d replicas × %d shards, TTL %s, GET / every %s:\n", 3, shardCount, shardTTL, shardPoll)
	for _, f := range s.figures {
		mark := ""
		if f.took > f.limit {
			mark = "  EXCEEDED"
		}
		fmt.Fprintf(&b, "  %-30s %8s  (bound %s)%s\n", f.what, f.took.Round(time.Millisecond), f.limit, mark)
	}
	fmt.Fprintf(&b, "  %-30s %8d\n", "shards handed to the killed one", len(s.handedToKilled))
	fmt.Fprintf(&b, "  %-30s %8d  (of %d shard answers)\n", "two-leader overlaps", overlaps, answers)
	t.Log(b.String())
}

// getShardJSON decodes the answer to GET path on addr into v.
func getShardJSON(addr, path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := shardClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

var shardClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

// shardRecorder polls every replica's GET / and keeps, for each shard,
// each replica's answer as a history.Sample: the history package's checks
// then run on each shard's election.
type shardRecorder struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	samples map[string][]history.Sample // by shard
	latest  map[string]shardAnswer      // by replica
}

// shardAnswer is one GET / of one replica.
type shardAnswer struct {
	start, end time.Time
	elections  map[string]elector.Status
	err        error
}

func newShardRecorder() *shardRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	return &shardRecorder{ctx: ctx, cancel: cancel, samples: map[string][]history.Sample{}, latest: map[string]shardAnswer{}}
}

// add polls r until it exits or the recorder stops.
func (rec *shardRecorder) add(r *shardReplica) {
	rec.wg.Go(func() {
		for {
			a := shardAnswer{start: time.Now()}
			var body struct {
				Elections map[string]elector.Status `json:"elections"`
			}
			a.err = getShardJSON(r.addr, "/", &body)
			a.elections, a.end = body.Elections, time.Now()
			if rec.ctx.Err() != nil {
				return
			}
			rec.mu.Lock()
			rec.latest[r.id] = a
			for _, shard := range shardNames {
				st, ok := a.elections[shard]
				err := a.err
				if err == nil && !ok {
					err = fmt.Errorf("no %s in GET /", shard)
				}
				rec.samples[shard] = append(rec.samples[shard], history.Sample{Elector: r.id, Start: a.start, End: a.end, Status: st, Err: err})
			}
			rec.mu.Unlock()
			if r.exited() {
				return
			}
			select {
			case <-rec.ctx.Done():
				return
			case <-time.After(time.Until(a.start.Add(shardPoll))):
			}
		}
	})
}

// leaders returns, from the latest answers of live sent after since, the
// leader of each shard and how many each replica leads; ok is false if a
// replica has not answered since, or two answer that they lead one shard.
func (rec *shardRecorder) leaders(since time.Time, live []*shardReplica) (leaders map[string]string, counts map[string]int, ok bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	leaders, counts, ok = map[string]string{}, map[string]int{}, true
	for _, r := range live {
		a, found := rec.latest[r.id]
		if !found || a.err != nil || a.start.Before(since) {
			ok = false
			continue
		}
		counts[r.id] += 0
		for shard, st := range a.elections {
			if !st.IsLeader {
				continue
			}
			if leaders[shard] != "" {
				ok = false // the recording's check reports it
			}
			leaders[shard] = r.id
			counts[r.id]++
		}
	}
	return leaders, counts, ok
}

// stop stops polling and returns every shard's samples.
func (rec *shardRecorder) stop() map[string][]history.Sample {
	rec.cancel()
	rec.wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.samples
}

func countHolders(holders map[string]string) map[string]int {
	out := map[string]int{}
	for _, h := range holders {
		out[h]++
	}
	return out
}

func replicaIDs(rs []*shardReplica) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.id)
	}
	return strings.Join(out, ",")
}
