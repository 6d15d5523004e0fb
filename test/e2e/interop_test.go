package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// Timing of the interop fleets, derived from the suite's TTL of 6s (retry
// period 1s, jitteredRetry 2.2s).
const (
	// interopSlack absorbs the latency of the lock requests and of GET /,
	// the recorder's polling, and a loaded 2-core machine.
	interopSlack = time.Second
	// unknownLeader is the holder a migration lock reports when its two
	// objects name different holders, as client-go's MultiLock did.
	unknownLeader = "leaderelection.k8s.io/unknown"
)

// The peers of a mixed fleet.
const (
	peerElector = "k8s-elector"
	peerV037    = "client-go v0.37"
	peerV023    = "client-go v0.23"
)

// interopKind is one kind of candidate in a mixed fleet: a program and the
// lock type it runs on.
type interopKind struct {
	peer   string // peerElector, peerV037 or peerV023
	lock   string
	binary string
}

func (k interopKind) String() string { return k.peer + " on " + k.lock }

// watches reports whether the kind takes over on an event of its watch of
// the lock (k8s-elector), rather than at its next attempt, every retry
// period jittered to up to 2.2×, as client-go does.
func (k interopKind) watches() bool { return k.peer == peerElector }

// id is the ID of the kind's n-th process.
func (k interopKind) id(n int) string {
	prefix := map[string]string{peerElector: "elector", peerV037: "v037", peerV023: "v023"}[k.peer]
	lock := map[string]string{"leases": "l", "configmaps": "cm", "endpoints": "ep", "configmapsleases": "cml", "endpointsleases": "epl"}[k.lock]
	return fmt.Sprintf("%s-%s-%d", prefix, lock, n)
}

// releaseBound bounds a takeover of a released lock by k, from the SIGTERM
// of the holder: a watching candidate acts on the release's event at once,
// a polling one at its next attempt, within a jittered retry period.
func (k interopKind) releaseBound() time.Duration {
	if k.watches() {
		return interopSlack
	}
	return jitteredRetry + interopSlack
}

// crashBound bounds a takeover by k of a lock whose holder was killed (or
// frozen, or cut off), from that instant. The holder's last renewal came
// before it, so the lease as anyone saw it ends at most a TTL after it. A
// watching candidate saw that renewal at once and takes over the drift
// margin (TTL/50) after the lease's end. A polling one saw it at its next
// attempt, up to a jittered retry period later, counts the lease from
// then, and takes over at its first attempt after the lease's end, up to
// another jittered retry period later.
func (k interopKind) crashBound() time.Duration {
	if k.watches() {
		return ttl + timings.DriftMargin + interopSlack
	}
	return ttl + 2*jitteredRetry + interopSlack
}

// crashFloor is the earliest a takeover may come after the holder was
// killed: the record as followers compare it may have last changed a
// second and a retry period before the kill (renewals in one wall-clock
// second change nothing they compare), and its lease runs a TTL from then.
var crashFloor = ttl - time.Second - retry - interopSlack

// isMigrationLock reports whether lock holds an old object and a Lease.
func isMigrationLock(lock string) bool {
	return lock == "configmapsleases" || lock == "endpointsleases"
}

// buildOldClientGo builds the module oldclientgo, a plain client-go v0.23
// LeaderElector, into a temporary directory. It is a module of its own, so
// go test ./... of this one does not compile it.
func buildOldClientGo(t *testing.T) string {
	t.Helper()
	return buildProgram(t, "oldclientgo", ".", "oldclientgo")
}

// buildProgram builds the package pkg of the module in dir ("" for this
// one) into a temporary directory, as name, one heavy build at a time.
func buildProgram(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	var out []byte
	var err error
	heavy(func() { out, err = cmd.CombinedOutput() })
	if err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// interopFleet is a fault fleet of mixed kinds of candidates, at most one
// process of each kind at a time, all of one election.
type interopFleet struct {
	*faultFleet
	kinds []interopKind
	kind  map[string]int // the kind of each process, by ID
	count []int          // processes started so far, per kind
	all   []*fleet.Elector
	steps []interopStep
}

// interopStep is one handover: the leader From got How at At, and To took
// over.
type interopStep struct {
	How              string // SIGTERM or SIGKILL
	From, To         string // IDs
	FromKind, ToKind int
	At               time.Time
	Took             time.Duration // from At to To's first is_leader answer
	Bound            time.Duration
	OK               bool
}

func newInteropFleet(t *testing.T, kinds []interopKind) *interopFleet {
	t.Helper()
	f := &interopFleet{faultFleet: newFaultFleet(t, kinds[0].lock), kinds: kinds, kind: map[string]int{}, count: make([]int, len(kinds))}
	t.Cleanup(func() {
		// The processes that left the fleet; check does the others.
		for _, e := range f.all {
			if lines := history.StackTraces(e.Logs()); len(lines) > 0 && !slices.Contains(f.electors, e) {
				t.Errorf("invariant (e): %s logged a stack trace: %q", e.ID, lines)
			}
		}
	})
	return f
}

// start starts a new process of kind k behind a proxy of its own.
func (f *interopFleet) start(k int) *fleet.Elector {
	f.t.Helper()
	kind := f.kinds[k]
	id := kind.id(f.count[k])
	f.count[k]++
	e := f.add(fleet.Config{
		Binary: kind.binary, Election: faultElection,
		Namespace: f.ns, LockType: kind.lock, TTL: ttl,
	}, id, false)
	f.kind[id] = k
	f.all = append(f.all, e)
	return e
}

// of returns the running process of kind k.
func (f *interopFleet) of(k int) *fleet.Elector {
	for _, e := range f.electors {
		if f.kind[e.ID] == k {
			return e
		}
	}
	f.t.Fatalf("no process of %s runs", f.kinds[k])
	return nil
}

// retire drops a stopped process from the fleet; the recorder keeps
// polling it (its answers are errors).
func (f *interopFleet) retire(e *fleet.Elector) {
	i := slices.Index(f.electors, e)
	f.electors = slices.Delete(f.electors, i, i+1)
	f.proxies = slices.Delete(f.proxies, i, i+1)
}

// settle waits for one leader that every other process follows, and
// returns it. A follower follows once it has read the leader's term: it
// reports the leader's token and names the leader or, on a migration lock
// whose two objects name different holders, the unknown holder. A follower
// healed from a partition may still report an older term for a while; a
// handover started before it caught up would time its takeover from when it
// learnt of the term.
func (f *interopFleet) settle() *fleet.Elector {
	f.t.Helper()
	l, ls := f.leader(recoverWithin, time.Time{}, nil)
	limit := jitteredRetry + faultSlack
	deadline := time.Now().Add(limit)
	for {
		agree := true
		for _, e := range f.electors {
			s, _ := f.rec.Latest(e.ID)
			if !s.OK() || e != l && (s.Status.IsLeader || s.Token() != ls.Token() ||
				s.Status.Leader != l.ID && s.Status.Leader != unknownLeader) {
				agree = false
			}
		}
		if agree {
			f.mark("%s (%s) leads, the others follow", l.ID, f.kinds[f.kind[l.ID]])
			return l
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the others do not follow %s within %s", l.ID, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handover stops the leader with how (SIGTERM or SIGKILL) so that the
// process of kind to takes over: every other follower is cut off from the
// API server until it has. A SIGKILL comes after the followers have seen
// the leader renew. The stopped leader is replaced by a fresh process of
// its kind, which follows.
func (f *interopFleet) handover(how string, to int) {
	t := f.t
	t.Helper()
	l := f.settle()
	next := f.of(to)
	if how == "SIGKILL" {
		f.renewal(l)
	}
	var held []string
	for _, e := range f.electors {
		if e != l && e != next {
			f.proxy(e).Blackhole()
			held = append(held, e.ID)
		}
	}
	if len(held) > 0 {
		f.mark("blackhole %s, so that %s takes over", strings.Join(held, ", "), next.ID)
	}
	at := f.mark("%s %s", how, l.ID)
	switch how {
	case "SIGTERM":
		if err := l.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	case "SIGKILL":
		l.Kill()
	}
	// The old leader may answer is_leader until its process acts on the
	// signal: wait for another.
	got, s := f.leader(2*ttl+2*jitteredRetry+faultSlack, at, func(s history.Sample) bool { return s.Elector != l.ID })
	f.mark("%s leads, token %s", got.ID, s.Token())
	for _, e := range f.electors {
		if slices.Contains(held, e.ID) {
			f.proxy(e).Pass()
		}
	}
	if got != next {
		t.Fatalf("%s took over, want %s: every other follower was cut off", got.ID, next.ID)
	}
	if how == "SIGTERM" {
		code, err := l.Wait(2 * ttl)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0", l.ID, code)
		}
	}
	f.retire(l)
	f.steps = append(f.steps, interopStep{How: how, From: l.ID, To: next.ID, FromKind: f.kind[l.ID], ToKind: to, At: at})
	f.start(f.kind[l.ID])
}

// renewal waits until the leader l, which every follower has seen leading,
// renews its lease in a way they can see, so that a crash comes in steady
// state: the followers have seen the lease renewed, not only read it once
// when they joined. (A follower that has only read the lease when it
// joined, or learnt of the holder late, is TestCrashAfterLostRace's case.)
// The leader's valid_until counts from its first write of the record as
// followers now see it (k8s-elector) or from its last write (client-go):
// once it lies more than a TTL after now, a write after now changed the
// record.
func (f *interopFleet) renewal(l *fleet.Elector) {
	f.t.Helper()
	now := time.Now()
	limit := 2*retry + faultSlack
	for deadline := now.Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if s, _ := f.rec.Latest(l.ID); s.Leading() && s.Status.ValidUntil.After(now.Add(ttl)) {
			f.mark("%s renewed: valid until %s", l.ID, stamp(s.Status.ValidUntil))
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not renew within %s", l.ID, limit)
		}
	}
}

// interopRow is one line of the matrix: a kind of peer in one fleet.
type interopRow struct {
	fleet    string
	kind     interopKind
	terms    int      // runs of leadership recorded
	after    []string // how it came to lead: start, SIGTERM, SIGKILL
	followed bool
}

// interopResult is what one fleet did.
type interopResult struct {
	name  string
	rows  []interopRow
	steps []interopStep
	kinds []interopKind
}

// runInterop runs a mixed fleet of one process per kind through a rotation
// of handovers: kinds[0] leads first; then each kind in turn takes over
// after the leader's SIGTERM, and again after its SIGKILL, so that every
// kind leads after a release and after a crash, and follows in between.
// It checks the invariants of TestFault over the whole recording, bounds
// every takeover by the protocol, and checks that every kind led and
// followed.
func runInterop(t *testing.T, name string, kinds []interopKind) interopResult {
	f := newInteropFleet(t, kinds)
	f.start(0)
	if l, _ := f.leader(recoverWithin, time.Time{}, nil); f.kind[l.ID] != 0 {
		t.Fatalf("%s leads, want %s, the only candidate", l.ID, kinds[0])
	}
	for k := 1; k < len(kinds); k++ {
		f.start(k)
	}
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		for i := 1; i <= len(kinds); i++ {
			f.handover(how, i%len(kinds))
		}
	}
	f.settle()
	time.Sleep(retry)
	h := f.check()

	res := interopResult{name: name, kinds: kinds}
	for i := range f.steps {
		st := &f.steps[i]
		kind := kinds[st.ToKind]
		s, ok := firstLeadingAfter(h, st.To, st.At)
		if !ok {
			t.Errorf("%s %s: no is_leader answer of %s after it", st.How, st.From, st.To)
			res.steps = append(res.steps, *st)
			continue
		}
		st.Took = s.End.Sub(st.At)
		st.Bound = kind.releaseBound()
		if st.How == "SIGKILL" {
			st.Bound = kind.crashBound()
		}
		st.OK = st.Took <= st.Bound
		if !st.OK {
			t.Errorf("%s %s (%s): %s (%s) led %s after, want within %s",
				st.How, st.From, kinds[st.FromKind], st.To, kind, st.Took.Round(time.Millisecond), st.Bound)
		}
		if st.How == "SIGKILL" && st.Took < crashFloor {
			st.OK = false
			t.Errorf("SIGKILL %s: %s led %s after, before the killed leader's lease could have run out (%s)",
				st.From, st.To, st.Took.Round(time.Millisecond), crashFloor)
		}
		t.Logf("%s %s (%s): %s (%s) led %s after (bound %s)", st.How, st.From, kinds[st.FromKind], st.To, kind,
			st.Took.Round(time.Millisecond), st.Bound)
		res.steps = append(res.steps, *st)
	}

	// Who led and who followed, from what each process answered.
	ids := map[string]bool{}
	for _, e := range f.all {
		ids[e.ID] = true
	}
	for k, kind := range kinds {
		row := interopRow{fleet: name, kind: kind}
		if k == 0 {
			row.after = append(row.after, "start")
		}
		for _, st := range f.steps {
			if st.ToKind == k && !slices.Contains(row.after, st.How) {
				row.after = append(row.after, st.How)
			}
		}
		for _, r := range h.Runs() {
			if f.kind[r.Elector] == k {
				row.terms++
			}
		}
		for _, s := range h.Samples {
			st := s.Status
			if f.kind[s.Elector] == k && s.OK() && !st.IsLeader && st.Leader != st.Node &&
				(ids[st.Leader] || st.Leader == unknownLeader) {
				row.followed = true
				break
			}
		}
		if row.terms == 0 {
			t.Errorf("%s never led", kind)
		}
		if !row.followed {
			t.Errorf("%s never followed another holder", kind)
		}
		res.rows = append(res.rows, row)
	}
	return res
}

// TestInterop runs mixed fleets on the real API server: k8s-elector with
// plain client-go v0.37 LeaderElectors (cmd/plainfollower) on leases, and
// with plain client-go v0.23 LeaderElectors (module oldclientgo, the last
// client-go with the ConfigMap and Endpoints locks and MultiLock) on
// configmaps and on endpoints, and a migration caught mid-flight:
// k8s-electors on configmapsleases (endpointsleases) with client-go v0.23
// on configmaps (endpoints) and on configmapsleases (endpointsleases).
//
// In each fleet every kind of peer leads and follows: the first kind leads
// from the start, then each kind in turn takes over after the leader's
// SIGTERM (a release), then again after its SIGKILL (a crash, once the
// followers have seen the leader renew); the other followers are cut off
// from the API server while a handover is steered to the one that should
// win it, and each stopped leader is replaced by a fresh process of its
// kind. Over the whole recording: never two leaders,
// no stale write accepted by the fenced store, and the other invariants of
// TestFault. Every takeover is bounded by the protocol: after a release,
// at once on the watch (k8s-elector) or within a jittered retry period
// (client-go); after a crash, by the lease's end plus the drift margin
// (watch) or plus two jittered retry periods (client-go's polling), and not
// before the lease could have run out. The test ends with a matrix of peer,
// lock type and role, and every handover's figure.
func TestInterop(t *testing.T) {
	parallelParent(t)
	plain := buildPlainFollower(t)
	old := buildOldClientGo(t)
	elector := func(lock string) interopKind { return interopKind{peerElector, lock, binary} }
	v023 := func(lock string) interopKind { return interopKind{peerV023, lock, old} }
	fleets := []struct {
		name  string
		kinds []interopKind
	}{
		{"leases", []interopKind{elector("leases"), {peerV037, "leases", plain}}},
		{"configmaps", []interopKind{elector("configmaps"), v023("configmaps")}},
		{"endpoints", []interopKind{elector("endpoints"), v023("endpoints")}},
		{"configmaps migration", []interopKind{elector("configmapsleases"), v023("configmaps"), v023("configmapsleases")}},
		{"endpoints migration", []interopKind{elector("endpointsleases"), v023("endpoints"), v023("endpointsleases")}},
	}
	var (
		mu      sync.Mutex
		results []interopResult
	)
	t.Cleanup(func() { logInterop(t, results) })
	for _, fl := range fleets {
		t.Run(strings.ReplaceAll(fl.name, " ", "_"), func(t *testing.T) {
			parallel(t)
			r := runInterop(t, fl.name, fl.kinds)
			mu.Lock()
			defer mu.Unlock()
			results = append(results, r)
		})
	}
}

// logInterop logs the matrix of peer × lock type × role, and every
// handover, of the fleets in the order TestInterop lists them.
func logInterop(t *testing.T, results []interopResult) {
	order := []string{"leases", "configmaps", "endpoints", "configmaps migration", "endpoints migration"}
	slices.SortFunc(results, func(a, b interopResult) int {
		return slices.Index(order, a.name) - slices.Index(order, b.name)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-21s %-16s %-17s %-24s %-5s %s\n", "fleet", "peer", "lock type", "led (took over after)", "terms", "followed")
	for _, r := range results {
		for _, row := range r.rows {
			followed := "no"
			if row.followed {
				followed = "yes"
			}
			fmt.Fprintf(&b, "%-21s %-16s %-17s %-24s %5d %s\n", row.fleet, row.kind.peer, row.kind.lock,
				strings.Join(row.after, ", "), row.terms, followed)
		}
	}
	b.WriteString("\nhandovers, from the SIGTERM or SIGKILL to the new leader's first is_leader answer:\n")
	for _, r := range results {
		for _, st := range r.steps {
			verdict := "ok"
			if !st.OK {
				verdict = "FAIL"
			}
			fmt.Fprintf(&b, "%-21s %-7s %-32s → %-32s %8s (bound %s) %s\n", r.name, st.How,
				r.kinds[st.FromKind].String(), r.kinds[st.ToKind].String(), st.Took.Round(time.Millisecond), st.Bound, verdict)
		}
	}
	t.Logf("mixed fleets, TTL %s:\n%s", ttl, b.String())
}

// interopFaultResult is what one fault scenario with a client-go v0.23
// follower saw.
type interopFaultResult struct {
	name            string
	leader, taker   string // kinds
	took            time.Duration
	bound           time.Duration
	margin          time.Duration
	overlaps, stale int
}

// TestInteropFaults freezes (SIGSTOP) or cuts off (a blackholed proxy) a
// k8s-elector leader whose followers are plain client-go v0.23
// LeaderElectors, until one of them takes over, then resumes or heals it.
// It asserts what TestFault does over the whole recording (never two
// leaders, no stale write accepted by the fenced store, one leader soon
// after the heal), that the old leader answers not-leader once resumed, or
// stops answering is_leader within a TTL of the cut, and that the follower
// took the lock only after the old leader's last valid_until: its acquiring
// write (the acquire_time oldclientgo reports, to the millisecond) was sent
// after it.
func TestInteropFaults(t *testing.T) {
	parallelParent(t)
	old := buildOldClientGo(t)
	elector := func(lock string) interopKind { return interopKind{peerElector, lock, binary} }
	v023 := func(lock string) interopKind { return interopKind{peerV023, lock, old} }
	scenarios := []struct {
		name      string
		kinds     []interopKind
		partition bool
	}{
		{"leader SIGSTOP past the TTL, configmaps", []interopKind{elector("configmaps"), v023("configmaps")}, false},
		{"leader blackholed, configmaps", []interopKind{elector("configmaps"), v023("configmaps")}, true},
		{"leader SIGSTOP past the TTL, endpoints", []interopKind{elector("endpoints"), v023("endpoints")}, false},
		{"leader SIGSTOP past the TTL, configmaps migration",
			[]interopKind{elector("configmapsleases"), v023("configmaps"), v023("configmapsleases")}, false},
	}
	var (
		mu      sync.Mutex
		results []interopFaultResult
	)
	t.Cleanup(func() {
		slices.SortFunc(results, func(a, b interopFaultResult) int { return strings.Compare(a.name, b.name) })
		var b strings.Builder
		for _, r := range results {
			fmt.Fprintf(&b, "%-52s %-30s → %-32s took %s (bound %s), margin %s, %d overlaps, %d stale writes accepted\n",
				r.name, r.leader, r.taker, r.took.Round(time.Millisecond), r.bound, r.margin.Round(time.Millisecond), r.overlaps, r.stale)
		}
		t.Logf("faults with client-go v0.23 followers, TTL %s; margin is the follower's acquiring write less the old leader's last valid_until:\n%s", ttl, b.String())
	})
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			parallel(t)
			r := runInteropFault(t, sc.kinds, sc.partition)
			r.name = sc.name
			mu.Lock()
			defer mu.Unlock()
			results = append(results, r)
		})
	}
}

func runInteropFault(t *testing.T, kinds []interopKind, partition bool) interopFaultResult {
	f := newInteropFleet(t, kinds)
	f.start(0)
	if l, _ := f.leader(recoverWithin, time.Time{}, nil); f.kind[l.ID] != 0 {
		t.Fatalf("%s leads, want %s, the only candidate", l.ID, kinds[0])
	}
	for k := 1; k < len(kinds); k++ {
		f.start(k)
	}
	l := f.settle()
	held, _ := f.rec.Latest(l.ID)
	if !held.Leading() {
		t.Fatalf("%s answers %+v, want is_leader=true: the fleet had settled on it", l.ID, held.Status)
	}

	var cut time.Time
	if partition {
		f.proxy(l).Blackhole()
		cut = f.mark("blackhole %s", l.ID)
	} else {
		kill := time.Now()
		if err := l.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// Only a request sent after every thread has stopped is surely
		// answered after the SIGCONT.
		stopped, err := waitStopped(l.PID(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cut = stopped
		f.mark("SIGSTOP %s (stopped %s after the kill)", l.ID, stopped.Sub(kill).Round(100*time.Microsecond))
	}
	next, first := f.takeover(l, cut, 2*ttl+2*jitteredRetry+faultSlack)
	took := first.End.Sub(cut)
	var healed time.Time
	if partition {
		// The old leader keeps answering while cut off: leave it so for a
		// retry period more, then heal.
		time.Sleep(retry)
		healed = f.mark("%s leads with token %s: heal %s", next.ID, first.Token(), l.ID)
		f.proxy(l).Pass()
	} else {
		if err := l.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		healed = f.mark("%s leads with token %s: SIGCONT %s", next.ID, first.Token(), l.ID)
	}
	time.Sleep(jitteredRetry + faultSlack)
	h := f.check(healed)

	old, taker := kinds[f.kind[l.ID]], kinds[f.kind[next.ID]]
	res := interopFaultResult{leader: old.String(), taker: taker.String(), took: took, bound: taker.crashBound()}
	if took > res.bound {
		t.Errorf("%s (%s) led %s after %s was cut off, want within %s", next.ID, taker, took.Round(time.Millisecond), l.ID, res.bound)
	}
	if partition {
		for _, r := range runsOf(h, cut, h.End)[l.ID] {
			if r.To.After(cut.Add(ttl)) && r.From.Before(healed) {
				t.Errorf("%s claimed leadership until %s, more than a TTL after it was cut off at %s", l.ID, stamp(r.To), stamp(cut))
			}
		}
	} else {
		// A request sent just before the SIGSTOP may have been answered
		// before it, and delivered after.
		s, ok := firstAnswer(h, l.ID, cut.Add(10*time.Millisecond))
		switch {
		case !ok:
			t.Errorf("%s did not answer after SIGCONT", l.ID)
		case s.Leading():
			t.Errorf("%s answered is_leader (valid_until %s) at %s, right after SIGCONT; its lease had run out while it was stopped",
				l.ID, stamp(s.Status.ValidUntil), stamp(s.End))
		}
	}
	// On a migration lock, while a follower that took over writes only the
	// old object, the Lease still names the old leader: the holder is
	// unknown.
	follows := []string{next.ID}
	if isMigrationLock(old.lock) && !isMigrationLock(taker.lock) {
		follows = append(follows, unknownLeader)
	}
	if s := h.Of(l.ID); len(s) == 0 || !s[len(s)-1].OK() || !slices.Contains(follows, s[len(s)-1].Status.Leader) {
		t.Errorf("%s does not name %s as leader within %s after it was resumed or healed", l.ID, strings.Join(follows, " or "), jitteredRetry+faultSlack)
	}

	// The old leader's last valid_until with the token it held, and the
	// send time of the write that gave the follower the lock.
	var lastValid time.Time
	for _, s := range h.Of(l.ID) {
		if s.Leading() && s.Token() == held.Token() && s.Status.ValidUntil.After(lastValid) {
			lastValid = s.Status.ValidUntil
		}
	}
	acquired := first.Status.AcquireTime
	switch {
	case taker.peer != peerV023:
		t.Fatalf("%s (%s) took over; want a client-go v0.23 follower, whose acquire_time is its write's send time", next.ID, taker)
	case acquired.IsZero():
		t.Errorf("%s answered is_leader without acquire_time", next.ID)
	default:
		res.margin = acquired.Sub(lastValid)
		t.Logf("%s (token %s) last reported valid_until %s; %s (token %s) sent its acquiring write at %s: margin %s",
			l.ID, held.Token(), micros(lastValid), next.ID, first.Token(), micros(acquired), res.margin.Round(time.Millisecond))
		if res.margin <= 0 {
			t.Errorf("%s took the lock with a write sent at %s, %s before %s's last valid_until %s; want after it",
				next.ID, micros(acquired), -res.margin, l.ID, micros(lastValid))
		}
	}
	stale, _ := h.StaleWrites()
	res.overlaps, res.stale = len(h.Overlaps()), len(stale)
	return res
}

// takeover waits until a process other than old answers is_leader to a
// request sent after since, and returns it with that answer. It checks more
// often than the recorder polls, so that the old leader is resumed soon
// after somebody else leads.
func (f *interopFleet) takeover(old *fleet.Elector, since time.Time, limit time.Duration) (*fleet.Elector, history.Sample) {
	f.t.Helper()
	deadline := since.Add(limit)
	for {
		for _, e := range f.electors {
			if s, _ := f.rec.Latest(e.ID); e != old && s.Leading() && s.Start.After(since) {
				return e, s
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("nobody but %s answered is_leader within %s of the fault", old.ID, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
