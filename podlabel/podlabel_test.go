package podlabel

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/backoff"
	"github.com/k8s-elector/elector/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Timing used by the tests: TTL 6s, renew deadline 2s, retry 1s.
const (
	testTTL   = 6 * time.Second
	testRetry = testTTL / 6
	// maxRetryWait is the longest a candidate waits between two attempts:
	// the election jitters the retry period by up to 1.2×.
	maxRetryWait = testRetry + testRetry*12/10
)

const testElection = "example"

// createPod creates a Pod in the default namespace with the given labels (nil
// for none).
func createPod(t *testing.T, c *electortest.Cluster, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod, err := c.Client().CoreV1().Pods("default").Create(context.Background(),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	return pod
}

func podLabels(t *testing.T, c *electortest.Cluster, name string) map[string]string {
	t.Helper()
	pod, err := c.Client().CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", name, err)
	}
	return pod.Labels
}

// patchLog records the label values of the pod patches that reach the cluster.
type patchLog struct {
	mu     sync.Mutex
	values []string
}

// client returns a clientset on c whose pod patches fail with fail (while it
// returns an error), and are otherwise recorded and applied.
func (p *patchLog) client(t *testing.T, c *electortest.Cluster, fail func() error) *fake.Clientset {
	client := c.Client()
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if fail != nil {
			if err := fail(); err != nil {
				return true, nil, err
			}
		}
		var body struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(a.(k8stesting.PatchAction).GetPatch(), &body); err != nil {
			t.Errorf("patch body: %v", err)
		}
		p.mu.Lock()
		p.values = append(p.values, body.Metadata.Labels[DefaultKey])
		p.mu.Unlock()
		return false, nil, nil
	})
	return client
}

func (p *patchLog) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.values...)
}

// config is how start builds a candidate; the zero value is a candidate
// whose Elector and Labeler share a clientset of their own, with the
// default key, and that logs nowhere.
type config struct {
	client      *fake.Clientset // of the Elector and, without labelClient, the Labeler
	labelClient *fake.Clientset // of the Labeler
	key         string
	log         logr.Logger
}

type candidate struct {
	id     string
	e      *elector.Elector
	client *fake.Clientset // of the Elector

	mu    sync.Mutex
	terms []string // "started" and "stopped", as the callbacks are called

	cancel   context.CancelFunc
	done     chan error
	wait     func() // Follow's
	returned time.Time
}

func (c *candidate) note(event string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.terms = append(c.terms, event)
}

func (c *candidate) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.terms...)
}

// start runs a candidate that labels the Pod named pod, with Follow called
// before Run, as the command-line tool does. It must be called inside a
// synctest bubble; stop (or the test's end) cancels it.
func start(t *testing.T, c *electortest.Cluster, id, pod string, cfg config) *candidate {
	t.Helper()
	if cfg.client == nil {
		cfg.client = c.Client()
	}
	if cfg.labelClient == nil {
		cfg.labelClient = cfg.client
	}
	cand := &candidate{id: id, client: cfg.client, done: make(chan error, 1)}
	e, err := elector.New(testElection, elector.WithClient(cfg.client), elector.WithID(id), elector.WithTTL(testTTL),
		elector.WithOnStartedLeading(func(ctx context.Context) {
			cand.note("started")
			<-ctx.Done()
		}),
		elector.WithOnStoppedLeading(func() { cand.note("stopped") }),
	)
	if err != nil {
		t.Fatalf("elector.New(%s): %v", id, err)
	}
	l, err := New(cfg.labelClient, "default", pod, cfg.key)
	if err != nil {
		t.Fatalf("New(%s): %v", pod, err)
	}
	cand.e = e
	log := cfg.log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cand.cancel = cancel
	cand.wait = l.Follow(ctx, e, log)
	go func() { cand.done <- e.Run(ctx) }()
	t.Cleanup(func() { cand.stop(t) })
	return cand
}

// stop cancels the candidate, waits for Run to return (it must return nil),
// notes when it did, and waits for Follow's goroutine to end.
func (c *candidate) stop(t *testing.T) {
	t.Helper()
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	if err := <-c.done; err != nil {
		t.Errorf("%s: Run returned %v, want nil after cancel", c.id, err)
	}
	c.returned = time.Now()
	c.wait()
}

// waitLeader advances virtual time in small steps until exactly one of cands
// leads, and returns it with the time that took. It fails the test after
// limit.
func waitLeader(t *testing.T, limit time.Duration, cands ...*candidate) (*candidate, time.Duration) {
	t.Helper()
	begin := time.Now()
	for {
		synctest.Wait()
		var leaders []*candidate
		for _, c := range cands {
			if c.e.Status().IsLeader {
				leaders = append(leaders, c)
			}
		}
		switch {
		case len(leaders) == 1:
			return leaders[0], time.Since(begin)
		case len(leaders) > 1:
			t.Fatalf("two leaders at once: %s and %s", leaders[0].id, leaders[1].id)
		}
		if time.Since(begin) > limit {
			t.Fatalf("no leader among %d candidates after %s", len(cands), limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPodLabelsFollowLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		// pod-a has labels of its own, and a stale status; pod-b has none.
		createPod(t, c, "pod-a", map[string]string{"app": "web", DefaultKey: "leader"})
		createPod(t, c, "pod-b", nil)
		a := start(t, c, "a", "pod-a", config{})
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", "pod-b", config{})
		time.Sleep(maxRetryWait) // b has tried once and follows
		synctest.Wait()

		want := map[string]map[string]string{
			"pod-a": {"app": "web", DefaultKey: Leader},
			"pod-b": {DefaultKey: Standby},
		}
		for pod, w := range want {
			if diff := cmp.Diff(w, podLabels(t, c, pod)); diff != "" {
				t.Errorf("%s labels while a leads (-want +got):\n%s", pod, diff)
			}
		}

		// Follow's goroutine ends only after the former leader's Pod is
		// labelled standby.
		a.stop(t)
		if diff := cmp.Diff(map[string]string{"app": "web", DefaultKey: Standby}, podLabels(t, c, "pod-a")); diff != "" {
			t.Errorf("pod-a labels after a stopped (-want +got):\n%s", diff)
		}
		waitLeader(t, maxRetryWait, b)
		synctest.Wait()
		if got := podLabels(t, c, "pod-b")[DefaultKey]; got != Leader {
			t.Errorf("pod-b label %q after taking over, want %q", got, Leader)
		}
	})
}

func TestPodLabelKeyIsConfigurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", map[string]string{DefaultKey: "kept"})
		a := start(t, c, "a", "pod-a", config{key: "example.com/role"})
		waitLeader(t, testTTL, a)
		synctest.Wait()
		want := map[string]string{DefaultKey: "kept", "example.com/role": Leader}
		if diff := cmp.Diff(want, podLabels(t, c, "pod-a")); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
	})
}

// TestNew checks New's validation: without a Pod name there is no Labeler,
// and so no patch; every problem is reported at once.
func TestNew(t *testing.T) {
	c := electortest.NewCluster()
	for _, tc := range []struct {
		name   string
		client kubernetes.Interface
		pod    string
		key    string
		want   []string // substrings of the error, one per problem; nil for none
	}{
		{"ok", c.Client(), "pod-a", "", nil},
		{"own key", c.Client(), "pod-a", "example.com/role", nil},
		{"no pod name", c.Client(), "", "", []string{"podlabel: pod name is empty: want this candidate's Pod"}},
		{"bad pod name", c.Client(), "Pod_A", "", []string{`podlabel: pod name "Pod_A" is not a valid Pod name: a lowercase RFC 1123 subdomain`}},
		{"bad key", c.Client(), "pod-a", "a/b/c", []string{`podlabel: pod label key "a/b/c" is not a valid label key: a valid label key must consist of`}},
		{"key with uppercase prefix", c.Client(), "pod-a", "Example.com/role", []string{`podlabel: pod label key "Example.com/role" is not a valid label key: prefix part`}},
		{"nil client", nil, "pod-a", "", []string{"podlabel: client is nil: pass a clientset"}},
		{"nil clientset", (*fake.Clientset)(nil), "pod-a", "", []string{"podlabel: got a nil *fake.Clientset: pass a clientset"}},
		{"all at once", nil, "Pod_A", "a/b/c", []string{"client is nil", `pod name "Pod_A"`, `pod label key "a/b/c"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(tc.client, "default", tc.pod, tc.key)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("New: %v, want no error", err)
				}
				want := tc.key
				if want == "" {
					want = DefaultKey
				}
				if l.key != want || l.ref != "default/"+tc.pod {
					t.Errorf("key %q, ref %q, want %q, %q", l.key, l.ref, want, "default/"+tc.pod)
				}
				return
			}
			if l != nil || err == nil {
				t.Fatalf("New = %v, %v, want an error", l, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("%d problems reported, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestPodLabelRetriedWithoutDelayingTheElection fails the first patches: the
// election goes on as usual, the failure is logged once, and the label is
// retried with the latest value until it sticks.
func TestPodLabelRetriedWithoutDelayingTheElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		var mu sync.Mutex
		failures := 3
		var patches patchLog
		client := patches.client(t, c, func() error {
			mu.Lock()
			defer mu.Unlock()
			if failures == 0 {
				return nil
			}
			failures--
			return errors.New("connection refused")
		})
		logs := &testkit.Log{}
		a := start(t, c, "a", "pod-a", config{client: client, log: logs.Logger()})

		// The lock is free: a leads at once, whatever its Pod label.
		if _, took := waitLeader(t, testTTL, a); took > 0 {
			t.Errorf("became leader after %s, want at once", took)
		}
		// Failures back off 0.5s, 1s, 2s (or less, when the value changes).
		time.Sleep(3*time.Second + 600*time.Millisecond)
		synctest.Wait()
		if got := podLabels(t, c, "pod-a")[DefaultKey]; got != Leader {
			t.Fatalf("label %q after the failures, want %q\n%s", got, Leader, logs)
		}
		// The standby value asked for at start was overtaken before it stuck.
		if diff := cmp.Diff([]string{Leader}, patches.got()); diff != "" {
			t.Errorf("applied patches (-want +got):\n%s", diff)
		}
		if n := logs.ErrorsContaining("patch pod default/pod-a: connection refused"); n != 1 {
			t.Errorf("%d error lines for the failed patches, want 1:\n%s", n, logs)
		}
		if n := logs.InfosContaining("labelling the pod succeeds again"); n != 1 {
			t.Errorf("%d recovery lines, want 1:\n%s", n, logs)
		}
		if got := a.calls(); !cmp.Equal(got, []string{"started"}) {
			t.Errorf("callbacks %v, want [started]", got)
		}
		if !a.e.Status().IsLeader {
			t.Error("a no longer leads")
		}
	})
}

// TestPodLabelLatestWins hands the follower several statuses before it
// runs: one patch carries the last, and Run's return applies standby.
func TestPodLabelLatestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		var patches patchLog
		l, err := New(patches.client(t, c, nil), "default", "pod-a", "")
		if err != nil {
			t.Fatal(err)
		}
		f := &follower{Labeler: l, timeout: time.Second, limit: backoff.Limit(testRetry), budget: time.Second, log: logr.Discard()}
		statuses := make(chan elector.Status, 4)
		for _, leads := range []bool{false, true, false, true} {
			statuses <- elector.Status{IsLeader: leads}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.run(context.Background(), statuses)
		}()
		synctest.Wait()
		if diff := cmp.Diff([]string{Leader}, patches.got()); diff != "" {
			t.Errorf("patches (-want +got):\n%s", diff)
		}
		statuses <- elector.Status{IsLeader: true} // already applied: no patch
		synctest.Wait()
		close(statuses) // Run returned
		<-done
		if diff := cmp.Diff([]string{Leader, Standby}, patches.got()); diff != "" {
			t.Errorf("patches after Run returned (-want +got):\n%s", diff)
		}
	})
}

// TestShutdownLabelIsBounded stops a leader whose API server refuses every
// patch from then on: Run does not wait for the label, and Follow gives up
// on it when the shutdown budget less the renew deadline has passed since
// Run returned.
func TestShutdownLabelIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		var mu sync.Mutex
		broken := false
		var patches patchLog
		client := patches.client(t, c, func() error {
			mu.Lock()
			defer mu.Unlock()
			if broken {
				return errors.New("connection refused")
			}
			return nil
		})
		logs := &testkit.Log{}
		a := start(t, c, "a", "pod-a", config{client: client, log: logs.Logger()})
		waitLeader(t, testTTL, a)
		synctest.Wait()
		mu.Lock()
		broken = true
		mu.Unlock()

		begin := time.Now()
		a.stop(t)
		if took := a.returned.Sub(begin); took != 0 {
			t.Errorf("Run returned after %s, want at once: it does not wait for the label", took)
		}
		timings := a.e.Timings()
		if took, want := time.Since(a.returned), timings.ShutdownBudget-timings.RenewDeadline; took != want {
			t.Errorf("Follow ended %s after Run returned, want the shutdown budget less the renew deadline, %s", took, want)
		}
		if got := podLabels(t, c, "pod-a")[DefaultKey]; got != Leader {
			t.Errorf("label %q, want %q left behind", got, Leader)
		}
		if n := logs.ErrorsContaining("gave up labelling the pod on shutdown"); n != 1 {
			t.Errorf("%d give-up lines, want 1:\n%s", n, logs)
		}
	})
}

// TestPodLabelEndsWithTheTerm cuts the leader's election client off from
// the cluster while its labels still get through: its term ends at
// ValidUntil, and its Pod says standby before the follower can take over.
func TestPodLabelEndsWithTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		createPod(t, c, "pod-b", nil)
		a := start(t, c, "a", "pod-a", config{labelClient: c.Client()})
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", "pod-b", config{})
		synctest.Wait()
		c.Partition(a.client)
		for begin := time.Now(); a.e.Status().IsLeader; time.Sleep(10 * time.Millisecond) {
			if time.Since(begin) > testTTL {
				t.Fatalf("a still leads %s after it was cut off", testTTL)
			}
		}
		synctest.Wait()
		if b.e.Status().IsLeader {
			t.Fatal("b leads as soon as a's term ends")
		}
		if got := podLabels(t, c, "pod-a")[DefaultKey]; got != Standby {
			t.Errorf("pod-a label %q once a's term ended, want %q", got, Standby)
		}
		waitLeader(t, testTTL, a, b)
		synctest.Wait()
		if got := podLabels(t, c, "pod-b")[DefaultKey]; got != Leader {
			t.Errorf("pod-b label %q after taking over, want %q", got, Leader)
		}
		c.Heal(a.client)
	})
}

// TestPodLabelAfterPartition cuts the leader off from the cluster: its Pod
// keeps the leader label while the follower takes over (the label is not
// atomic with leadership), and says standby within a retry of the Heal.
func TestPodLabelAfterPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		createPod(t, c, "pod-b", nil)
		logs := &testkit.Log{}
		a := start(t, c, "a", "pod-a", config{log: logs.Logger()})
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", "pod-b", config{})
		synctest.Wait()
		c.Partition(a.client)
		for begin := time.Now(); !b.e.Status().IsLeader; time.Sleep(10 * time.Millisecond) {
			if time.Since(begin) > testTTL+maxRetryWait {
				t.Fatalf("b does not lead %s after a was cut off", testTTL+maxRetryWait)
			}
		}
		synctest.Wait()
		for pod, want := range map[string]string{"pod-a": Leader, "pod-b": Leader} {
			if got := podLabels(t, c, pod)[DefaultKey]; got != want {
				t.Errorf("%s label %q while a is cut off, want %q", pod, got, want)
			}
		}
		if n := logs.ErrorsContaining(electortest.ErrPartitioned.Error()); n != 1 {
			t.Errorf("%d error lines for the failed patches, want 1:\n%s", n, logs)
		}

		c.Heal(a.client)
		time.Sleep(backoff.Limit(testRetry))
		synctest.Wait()
		if got := podLabels(t, c, "pod-a")[DefaultKey]; got != Standby {
			t.Errorf("pod-a label %q a retry after the heal, want %q\n%s", got, Standby, logs)
		}
	})
}
