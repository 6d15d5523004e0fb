package elector

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// viewLog follows every view an Elector publishes, from the one current
// when it starts, and checks each as it comes.
type viewLog struct {
	t     *testing.T
	id    string
	views []*view
}

func followViews(t *testing.T, e *Elector) (stop func() []*view) {
	l := &viewLog{t: t, id: e.o.id}
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		v := e.views.load()
		for {
			l.views = append(l.views, v)
			select {
			case <-v.changed:
				v = v.next
			case <-quit:
				return
			}
		}
	}()
	return func() []*view {
		close(quit)
		<-done
		return l.views
	}
}

// checkViews checks that every view of id is consistent: leading implies
// that the record names id, and within one lock UID the token never goes
// down.
func checkViews(t *testing.T, id string, views []*view) {
	t.Helper()
	maxToken := map[string]int{}
	for i, v := range views {
		if v.leading && v.leader != id {
			t.Errorf("view %d of %s: is_leader with leader %q", i, id, v.leader)
		}
		if v.uid != "" {
			if m, ok := maxToken[string(v.uid)]; ok && v.transitions < m {
				t.Errorf("view %d of %s: token %d after %d, within lock %s", i, id, v.transitions, m, v.uid)
			}
			maxToken[string(v.uid)] = max(maxToken[string(v.uid)], v.transitions)
		}
		if i > 0 && views[i-1].same(v) {
			t.Errorf("view %d of %s shows nothing new", i, id)
		}
	}
}

// TestEveryViewIsConsistent follows every view published by two candidates
// through a takeover by a third party, an expiry, a resignation and a
// release.
func TestEveryViewIsConsistent(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		a := k.start(t, c, "a")
		b := k.start(t, c, "b")
		stopA, stopB := followViews(t, a.e), followViews(t, b.e)
		leader, _ := waitLeader(t, testTTL, a, b)
		time.Sleep(maxRetryWait)
		synctest.Wait()

		// A third party takes the lock; its lease runs out.
		admin := c.Client()
		rec := lockHolder(t, admin, k.lock)
		rec.HolderIdentity = "intruder"
		rec.LeaderTransitions++
		writeRecord(t, admin, k.lock, rec)
		leader, _ = waitLeader(t, 3*testTTL, a, b)

		// The leader resigns; the other takes over.
		if err := leader.e.ResignFor(context.Background(), time.Second); err != nil {
			t.Fatalf("resign: %v", err)
		}
		waitLeader(t, 3*testTTL, a, b)
		time.Sleep(2 * time.Second)
		synctest.Wait()

		// Both stop: the leader releases.
		a.stop(t)
		b.stop(t)
		checkViews(t, "a", stopA())
		checkViews(t, "b", stopB())
	})
}

// TestLeaderWorkGetsItsOwnTerm: the started-leading context carries the
// token of its own term, never a later one, and its valid-until ends with
// the term.
func TestLeaderWorkGetsItsOwnTerm(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		terms := make(chan Term, 4)
		var ctxs []context.Context
		work := func(ctx context.Context) {
			term, ok := TermFromContext(ctx)
			if !ok {
				t.Error("the started-leading context carries no term")
			}
			ctxs = append(ctxs, ctx)
			terms <- term
			<-ctx.Done()
		}
		a := k.startWork(t, c, "a", work)
		waitLeader(t, testTTL, a)
		synctest.Wait()
		first := <-terms
		s := a.e.Status()
		if first.LockUID != s.LockUID || first.LeaderTransitions != s.LeaderTransitions {
			t.Fatalf("term token %s/%d, want the status's %s/%d", first.LockUID, first.LeaderTransitions, s.LockUID, s.LeaderTransitions)
		}
		if got := first.ValidUntil(); !got.Equal(s.ValidUntil) {
			t.Errorf("term valid until %s, want the status's %s", got, s.ValidUntil)
		}
		if _, ok := TermFromContext(context.Background()); ok {
			t.Error("TermFromContext found a term in a context that has none")
		}

		// b takes over by resignation; a leads again later with a higher token.
		b := k.startWork(t, c, "b", work)
		time.Sleep(maxRetryWait)
		synctest.Wait()
		if err := a.e.ResignFor(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		waitLeader(t, testTTL, a, b)
		second := <-terms
		if second.LeaderTransitions <= first.LeaderTransitions {
			t.Errorf("second term's token %d is not above the first's %d", second.LeaderTransitions, first.LeaderTransitions)
		}
		if term, _ := TermFromContext(ctxs[0]); term.LeaderTransitions != first.LeaderTransitions {
			t.Errorf("the first term's context reports token %d, want its own %d", term.LeaderTransitions, first.LeaderTransitions)
		}
		if !first.ValidUntil().IsZero() {
			t.Errorf("the first term reports valid until %s after it ended, want zero", first.ValidUntil())
		}
	})
}

// TestCancelWithRenewalInFlightStartsNoTerm cancels Run while a renewal is
// in flight: when it lands, it must not start a term on the cancelled
// context.
func TestCancelWithRenewalInFlightStartsNoTerm(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		var logs testkit.Log
		a := k.start(t, c, "a", WithLogger(logs.Logger()))
		waitLeader(t, testTTL, a)
		synctest.Wait()
		a.stall.Store(int64(testRetry)) // the next renewal takes a retry period
		time.Sleep(testRetry + testRetry/2)
		synctest.Wait()
		a.stop(t)
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Errorf("callbacks = %v, want one term", got)
		}
		if n := metricValue(t, a.e, "k8s_elector_leadership_transitions_total"); n != 1 {
			t.Errorf("leadership transitions = %v, want 1", n)
		}
		if i, j := strings.LastIndex(logs.String(), "became leader"), strings.Index(logs.String(), "stopped leading"); i > j {
			t.Errorf("log says became leader after stopped leading:\n%s", logs.String())
		}
	})
}

// TestObserveSendsChangesAndEndsWithRun: Observe starts with the current
// status, sends each change of leadership, and closes when Run returns.
func TestObserveSendsChangesAndEndsWithRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		e, err := New(testElection, WithClient(c.Client()), WithID("a"), WithTTL(testTTL))
		if err != nil {
			t.Fatal(err)
		}
		ch := e.Observe(context.Background()) // before Run
		if s := <-ch; s.IsLeader || s.Leader != "" {
			t.Fatalf("first status %+v, want the empty status before Run", s)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		stopped := false
		defer func() { // fail fast: a failing check must not leave Run running
			if !stopped {
				cancel()
				<-done
			}
		}()
		for leading := false; !leading; {
			select {
			case s, ok := <-ch:
				if !ok {
					t.Fatal("the channel closed while Run runs")
				}
				leading = s.IsLeader
			case <-time.After(testTTL):
				t.Fatal("Observe sent no status that leads within a TTL of Run")
			}
		}
		time.Sleep(3 * testTTL) // renewals: no statuses
		synctest.Wait()
		select {
		case s := <-ch:
			t.Fatalf("a renewal was sent as a change: %+v", s)
		default:
		}
		cancel()
		<-done
		stopped = true
		var last Status
		for s := range ch { // closed when Run has returned
			last = s
		}
		if last.IsLeader {
			t.Errorf("last status %+v, want not leader", last)
		}

		// A context that ends closes the channel too.
		octx, ocancel := context.WithCancel(context.Background())
		ch = e.Observe(octx)
		<-ch
		ocancel()
		if _, ok := <-ch; ok {
			t.Error("the channel is open after its context ended")
		}
	})
}

// TestWatchStreamEndsWhenRunReturns: an embedder's http.Server.Shutdown
// must not wait for /watch clients once Run has returned.
func TestWatchStreamEndsWhenRunReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		w := &eventWriter{header: http.Header{}}
		served := make(chan struct{})
		go func() {
			defer close(served)
			a.e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/watch", nil))
		}()
		synctest.Wait()
		a.stop(t)
		synctest.Wait()
		select {
		case <-served:
		default:
			t.Fatal("the /watch stream is still open after Run returned")
		}
	})
}

func TestResignForRejectsCooldownsOutOfRange(t *testing.T) {
	e, err := New(testElection, WithClient(electortest.NewCluster().Client()), WithID("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{-time.Second, maxResignCooldown + time.Second} {
		err := e.ResignFor(context.Background(), d)
		if err == nil || !strings.Contains(err.Error(), "out of range: want 0s to 24h0m0s") {
			t.Errorf("ResignFor(%s) = %v, want an out-of-range error", d, err)
		}
	}
	if err := e.ResignFor(context.Background(), time.Second); !errors.Is(err, ErrNotLeader) {
		t.Errorf("ResignFor before Run = %v, want ErrNotLeader", err)
	}
}

func TestLeaderOnlyAndCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a, b := leaderAndFollower(t, c, LockLeases)
		ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		if got := serveGET(a.e.LeaderOnly(ok), "/x"); got.Code != http.StatusNoContent {
			t.Errorf("leader: code %d, want 204 from the wrapped handler", got.Code)
		}
		got := serveGET(b.e.LeaderOnly(ok), "/x")
		if got.Code != http.StatusServiceUnavailable || got.Header().Get("X-Leader") != "a" {
			t.Errorf("follower: code %d, X-Leader %q, want 503 and a", got.Code, got.Header().Get("X-Leader"))
		}
		for _, cand := range []*candidate{a, b} {
			if err := cand.e.Check(httptest.NewRequest(http.MethodGet, "/healthz", nil)); err != nil {
				t.Errorf("%s: Check = %v, want nil", cand.id, err)
			}
		}
	})
}
