package elector

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8s-elector/elector/electortest"
)

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
		p.values = append(p.values, body.Metadata.Labels[DefaultPodLabelKey])
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

func TestPodLabelsFollowLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		// pod-a has labels of its own, and a stale status; pod-b has none.
		createPod(t, c, "pod-a", map[string]string{"app": "web", DefaultPodLabelKey: "leader"})
		createPod(t, c, "pod-b", nil)
		a := start(t, c, "a", LockLeases, WithPodName("pod-a"))
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases, WithPodName("pod-b"))
		time.Sleep(maxRetryWait) // b has tried once and follows
		synctest.Wait()

		want := map[string]map[string]string{
			"pod-a": {"app": "web", DefaultPodLabelKey: PodLabelLeader},
			"pod-b": {DefaultPodLabelKey: PodLabelStandby},
		}
		for pod, w := range want {
			if diff := cmp.Diff(w, podLabels(t, c, pod)); diff != "" {
				t.Errorf("%s labels while a leads (-want +got):\n%s", pod, diff)
			}
		}

		// Run returns only after the former leader's Pod is labelled standby.
		a.stop(t)
		if diff := cmp.Diff(map[string]string{"app": "web", DefaultPodLabelKey: PodLabelStandby}, podLabels(t, c, "pod-a")); diff != "" {
			t.Errorf("pod-a labels after a stopped (-want +got):\n%s", diff)
		}
		waitLeader(t, maxRetryWait, b)
		synctest.Wait()
		if got := podLabels(t, c, "pod-b")[DefaultPodLabelKey]; got != PodLabelLeader {
			t.Errorf("pod-b label %q after taking over, want %q", got, PodLabelLeader)
		}
	})
}

func TestPodLabelKeyIsConfigurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", map[string]string{DefaultPodLabelKey: "kept"})
		a := start(t, c, "a", LockLeases, WithPodName("pod-a"), WithPodLabelKey("example.com/role"))
		waitLeader(t, testTTL, a)
		synctest.Wait()
		want := map[string]string{DefaultPodLabelKey: "kept", "example.com/role": PodLabelLeader}
		if diff := cmp.Diff(want, podLabels(t, c, "pod-a")); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
	})
}

func TestNoPodNameNoPatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		var patches patchLog
		a := start(t, c, "a", LockLeases, WithClient(patches.client(t, c, nil)))
		waitLeader(t, testTTL, a)
		a.stop(t)
		if got := patches.got(); len(got) != 0 {
			t.Errorf("patches %v without a pod name, want none", got)
		}
	})
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
		logs := &logSink{}
		a := start(t, c, "a", LockLeases, WithClient(client), WithPodName("pod-a"), WithLogger(logs.logger()))

		// The lock is free: a leads at once, whatever its Pod label.
		if _, took := waitLeader(t, testTTL, a); took > 0 {
			t.Errorf("became leader after %s, want at once", took)
		}
		// Failures back off 0.5s, 1s, 2s (or less, when the value changes).
		time.Sleep(3*time.Second + 600*time.Millisecond)
		synctest.Wait()
		if got := podLabels(t, c, "pod-a")[DefaultPodLabelKey]; got != PodLabelLeader {
			t.Fatalf("label %q after the failures, want %q\n%s", got, PodLabelLeader, logs)
		}
		// The standby value asked for at start was overtaken before it stuck.
		if diff := cmp.Diff([]string{PodLabelLeader}, patches.got()); diff != "" {
			t.Errorf("applied patches (-want +got):\n%s", diff)
		}
		if n := logs.errorsContaining("patch pod default/pod-a: connection refused"); n != 1 {
			t.Errorf("%d error lines for the failed patches, want 1:\n%s", n, logs)
		}
		if n := logs.infosContaining("labelling the pod succeeds again"); n != 1 {
			t.Errorf("%d recovery lines, want 1:\n%s", n, logs)
		}
		if got := a.log.terms(); !cmp.Equal(got, []string{"started"}) {
			t.Errorf("callbacks %v, want [started]", got)
		}
		if !a.e.Status().IsLeader {
			t.Error("a no longer leads")
		}
	})
}

// TestPodLabelLatestWins asks for several values before the labeler runs: one
// patch carries the last, and finishing applies standby.
func TestPodLabelLatestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		var patches patchLog
		e, err := New(testElection, WithClient(patches.client(t, c, nil)), WithID("a"), WithPodName("pod-a"))
		if err != nil {
			t.Fatal(err)
		}
		l := newPodLabeler(e.client, &e.o, logr.Discard())
		l.set(PodLabelStandby)
		l.set(PodLabelLeader)
		l.set(PodLabelStandby)
		l.set(PodLabelLeader)
		stop := startBackground(context.Background(), []backgroundWorker{l})
		synctest.Wait()
		if diff := cmp.Diff([]string{PodLabelLeader}, patches.got()); diff != "" {
			t.Errorf("patches (-want +got):\n%s", diff)
		}
		l.set(PodLabelLeader) // already applied: no patch
		synctest.Wait()
		stop(time.Time{})
		if diff := cmp.Diff([]string{PodLabelLeader, PodLabelStandby}, patches.got()); diff != "" {
			t.Errorf("patches after stop (-want +got):\n%s", diff)
		}
		if l.podUID() == "" {
			t.Error("the labeler did not note the Pod's UID")
		}
	})
}

// TestShutdownLabelIsBounded stops a leader whose API server refuses every
// patch from then on: Run gives up on the standby label when the shutdown
// budget runs out.
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
		logs := &logSink{}
		a := start(t, c, "a", LockLeases, WithClient(client), WithPodName("pod-a"), WithLogger(logs.logger()))
		waitLeader(t, testTTL, a)
		synctest.Wait()
		mu.Lock()
		broken = true
		mu.Unlock()

		begin := time.Now()
		a.stop(t)
		if took, want := time.Since(begin), DefaultTimings(testTTL).ShutdownBudget; took != want {
			t.Errorf("Run returned after %s, want the shutdown budget %s", took, want)
		}
		if got := podLabels(t, c, "pod-a")[DefaultPodLabelKey]; got != PodLabelLeader {
			t.Errorf("label %q, want %q left behind", got, PodLabelLeader)
		}
		if n := logs.errorsContaining("gave up labelling the pod on shutdown"); n != 1 {
			t.Errorf("%d give-up lines, want 1:\n%s", n, logs)
		}
	})
}
