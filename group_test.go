package elector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// groupMember is one process running a Group, on its own clientset.
type groupMember struct {
	id     string
	g      *Group
	client *fake.Clientset
	cancel context.CancelFunc
	done   chan error
}

// startMember runs a Group named "shards" as member id, with the elections
// shard-0 … shard-(n-1), on its own clientset of c, until the test ends
// or stop.
func startMember(t *testing.T, c *electortest.Cluster, id string, n int, opts ...Option) *groupMember {
	t.Helper()
	m := &groupMember{id: id, client: c.Client(), done: make(chan error, 1)}
	g, err := NewGroup("shards", append([]Option{WithClient(m.client), WithID(id), WithTTL(testTTL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.g = g
	for i := range n {
		if _, err := g.Add(fmt.Sprintf("shard-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- g.Run(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop cancels the member's Run and waits for it; Run must return nil.
func (m *groupMember) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	if err := <-m.done; err != nil {
		t.Errorf("%s: Run returned %v, want nil", m.id, err)
	}
}

// leads returns how many elections the member leads.
func (m *groupMember) leads() int {
	n := 0
	for _, e := range m.g.Electors() {
		if e.Status().IsLeader {
			n++
		}
	}
	return n
}

// checkOneLeaderEach fails the test if two members lead one election.
func checkOneLeaderEach(t *testing.T, members ...*groupMember) {
	t.Helper()
	by := map[string][]string{}
	for _, m := range members {
		for name, e := range m.g.Electors() {
			if e.Status().IsLeader {
				by[name] = append(by[name], m.id)
			}
		}
	}
	for name, ids := range by {
		if len(ids) > 1 {
			t.Fatalf("%s: two leaders %v", name, ids)
		}
	}
}

// waitShares advances virtual time until every election has a leader and
// the members lead want[i] each, checking that no election has two
// leaders meanwhile, and returns how long that took.
func waitShares(t *testing.T, limit time.Duration, n int, members []*groupMember, want []int) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		checkOneLeaderEach(t, members...)
		got, total := make([]int, len(members)), 0
		for i, m := range members {
			got[i] = m.leads()
			total += got[i]
		}
		if total == n && slices.Equal(got, want) {
			return time.Since(begin)
		}
		if time.Since(begin) > limit {
			t.Fatalf("after %s, the members lead %v of %d elections, want %v", limit, got, n, want)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
	}
}

// TestGroupSharesOneWatchPerKind: three members run the same 20 elections
// on Leases. Every election has one leader; each member opens one watch
// (and one list) of Leases, whatever the number of elections, and keeps
// one member Lease; and once settled, the members send nothing but the
// leaders' renewals.
func TestGroupSharesOneWatchPerKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		c := electortest.NewCluster()
		members := []*groupMember{startMember(t, c, "a", n), startMember(t, c, "b", n), startMember(t, c, "c", n)}
		for begin := time.Now(); ; {
			checkOneLeaderEach(t, members...)
			total := 0
			for _, m := range members {
				total += m.leads()
			}
			if total == n {
				break
			}
			if time.Since(begin) > 2*testTTL {
				t.Fatalf("%d of %d elections lead after 2 TTLs", total, n)
			}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		testkit.Settle(testTTL)
		before := make([]int, len(members))
		for i, m := range members {
			before[i] = len(m.client.Actions())
		}
		const window = time.Minute
		time.Sleep(window)
		synctest.Wait()
		checkOneLeaderEach(t, members...)
		renewals := 0
		for i, m := range members {
			verbs := map[string]int{}
			for _, a := range m.client.Actions() {
				if a.GetVerb() == "watch" || a.GetVerb() == "list" {
					verbs[a.GetVerb()+" "+a.GetResource().Resource]++
				}
			}
			if verbs["watch leases"] != 1 || verbs["list leases"] != 1 || len(verbs) != 2 {
				t.Errorf("member %s listed and watched %v, want one list and one watch of leases for its %d elections", m.id, verbs, n)
			}
			for _, a := range m.client.Actions()[before[i]:] {
				switch {
				case a.GetVerb() == "update" && a.GetResource().Resource == "leases" && !candidateWrite(a):
					renewals++
				default:
					t.Errorf("member %s sent %s %s in the steady state, want only renewals", m.id, a.GetVerb(), a.GetResource().Resource)
				}
			}
		}
		// Each election's leader renews every renew interval.
		if want := n * int(window/DefaultTimings(testTTL).RenewInterval); renewals < want-n || renewals > want+n {
			t.Errorf("%d renewals in %s, want about %d", renewals, window, want)
		}
		leases, err := c.Client().CoordinationV1().Leases("default").List(t.Context(), metav1ListAll)
		if err != nil {
			t.Fatal(err)
		}
		var memberLeases []string
		for _, l := range leases.Items {
			if l.Labels[memberLabel] != "" {
				memberLeases = append(memberLeases, l.Name)
			}
			if l.Labels[candidateLabel] != "" {
				t.Errorf("candidate Lease %s: a Group's elections keep none, the member Lease stands for them", l.Name)
			}
		}
		if want := []string{"shards-member-a", "shards-member-b", "shards-member-c"}; !slices.Equal(memberLeases, want) {
			t.Errorf("member Leases %v, want %v", memberLeases, want)
		}
	})
}

// TestGroupAddsAndRemovesWhileRunning: an election added to a running Group
// starts at once; one removed steps down, releasing its lock to another
// member in one handover, and leaves the Group's status and metrics.
func TestGroupAddsAndRemovesWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := startMember(t, c, "a", 1)
		waitShares(t, testTTL, 1, []*groupMember{a}, []int{1})
		b := startMember(t, c, "b", 1)
		testkit.Settle(maxRetryWait)
		e, err := a.g.Add("extra")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.g.Add("extra"); err == nil || !strings.Contains(err.Error(), "default/extra is in group shards already") {
			t.Errorf("adding an election twice: %v, want it refused", err)
		}
		testkit.WaitFor(t, testTTL, "a leads the added election", func() bool { return e.Status().IsLeader })
		if _, err := b.g.Add("extra"); err != nil {
			t.Fatal(err)
		}
		testkit.Settle(maxRetryWait)
		eb, _ := b.g.Elector("extra")
		released := time.Now()
		if err := a.g.Remove("", "extra"); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, successorWindow, "b leads the election a removed", func() bool { return eb.Status().IsLeader })
		t.Logf("b led %s after a removed the election", time.Since(released))
		if err := a.g.Remove("", "extra"); err == nil || !strings.Contains(err.Error(), "has no election default/extra") {
			t.Errorf("removing an election twice: %v, want it refused", err)
		}
		if _, ok := a.g.Elector("extra"); ok {
			t.Error("a still has the election it removed")
		}
		if n, err := testutil.GatherAndCount(a.g.Metrics(), "k8s_elector_is_leader"); err != nil || n != 1 {
			t.Errorf("a's is_leader series: %d, %v; want one, for shard-0", n, err)
		}
	})
}

// TestGroupHTTP: GET / lists the elections with their status; GET
// /{election} and the paths below it are that election's API.
func TestGroupHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := startMember(t, c, "a", 2)
		waitShares(t, testTTL, 2, []*groupMember{a}, []int{2})
		get := func(path string) (int, string) {
			rec := httptest.NewRecorder()
			a.g.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			return rec.Code, string(body)
		}
		code, body := get("/")
		var list struct {
			Elections map[string]map[string]any `json:"elections"`
		}
		if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
			t.Fatalf("GET /: %d %q (%v)", code, body, err)
		}
		if len(list.Elections) != 2 || list.Elections["shard-1"]["is_leader"] != true || list.Elections["shard-1"]["leader"] != "a" {
			t.Errorf("GET / = %s, want both shards led by a", body)
		}
		if code, body := get("/shard-0"); code != http.StatusOK || !strings.Contains(body, `"is_leader":true`) {
			t.Errorf("GET /shard-0: %d %q, want the election's status", code, body)
		}
		for path, want := range map[string]int{"/shard-0/leader": 200, "/shard-0/healthz": 200, "/shard-0/readyz": 200, "/nope": 404, "/shard-0/nope": 404} {
			if code, body := get(path); code != want {
				t.Errorf("GET %s: %d %q, want %d", path, code, body, want)
			}
		}
		rec := httptest.NewRecorder()
		a.g.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST /: %d, want 405", rec.Code)
		}
	})
}

// TestGroupMetricsAreLabelledByElection: one registry, a series per
// election.
func TestGroupMetricsAreLabelledByElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := startMember(t, c, "a", 3)
		waitShares(t, testTTL, 3, []*groupMember{a}, []int{3})
		const want = `
# HELP k8s_elector_is_leader 1 while this candidate leads (holds the lock within its valid-until time), else 0.
# TYPE k8s_elector_is_leader gauge
k8s_elector_is_leader{election="default/shard-0",identity="a"} 1
k8s_elector_is_leader{election="default/shard-1",identity="a"} 1
k8s_elector_is_leader{election="default/shard-2",identity="a"} 1
`
		if err := testutil.GatherAndCompare(a.g.Metrics(), strings.NewReader(want), "k8s_elector_is_leader"); err != nil {
			t.Error(err)
		}
		if n, err := testutil.GatherAndCount(a.g.Metrics(), "k8s_elector_leadership_transitions_total"); err != nil || n != 3 {
			t.Errorf("transitions series: %d, %v; want 3", n, err)
		}
	})
}

// TestNewGroupValidates: bad input is refused before anything touches the
// cluster, with every problem at once.
func TestNewGroupValidates(t *testing.T) {
	client := fake.NewClientset()
	for _, tc := range []struct {
		name string
		opts []Option
		want []string
	}{
		{"", nil, []string{"group name is required"}},
		{"Shards", nil, []string{`group name "Shards" is not a valid object name`}},
		{"shards", []Option{WithWatch(false)}, []string{"WithWatch(false) does not apply to a Group"}},
		{"shards", []Option{WithCandidacyGate(func(context.Context) error { return nil }, 1)}, []string{"pass WithCandidacyGate to Add"}},
		{"shards", []Option{WithTTL(time.Second)}, []string{"TTL 1s is too short"}},
	} {
		_, err := NewGroup(tc.name, append([]Option{WithClient(client), WithID("a")}, tc.opts...)...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("NewGroup(%q): %v, want an error containing %q", tc.name, err, w)
			}
		}
	}
	g, err := NewGroup("shards", WithClient(client), WithID("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]Option{{WithID("b")}, {WithPriority(3)}, {WithSpread(true)}} {
		if _, err := g.Add("e", opts...); err == nil || !strings.Contains(err.Error(), "are the Group's") {
			t.Errorf("Add with a Group's option: %v, want it refused", err)
		}
	}
	if _, err := New("e", WithClient(client), WithSpread(true)); err == nil || !strings.Contains(err.Error(), "pass it to NewGroup") {
		t.Errorf("New with WithSpread: %v, want it refused", err)
	}
}

// metav1ListAll lists every object.
var metav1ListAll = metav1.ListOptions{}
