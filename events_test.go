package elector

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

// event is what the tests check of a recorded Event.
type event struct {
	Reason, Type, Message      string
	Kind, APIVersion, Name     string
	UID                        types.UID
	Component, Controller, Who string
	Count                      int32
}

// listEvents returns the core/v1 Events in the default namespace, sorted by
// reason and kind.
// createPod creates the Pod name in the default namespace of c.
func createPod(t *testing.T, c *electortest.Cluster, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod, err := c.Client().CoreV1().Pods("default").Create(context.Background(),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	return pod
}

func listEvents(t *testing.T, c *electortest.Cluster) []event {
	t.Helper()
	list, err := c.Client().CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []event
	for _, e := range list.Items {
		if e.Namespace != e.InvolvedObject.Namespace {
			t.Errorf("event %s in namespace %q about an object in %q", e.Name, e.Namespace, e.InvolvedObject.Namespace)
		}
		out = append(out, event{
			Reason: e.Reason, Type: e.Type, Message: e.Message,
			Kind: e.InvolvedObject.Kind, APIVersion: e.InvolvedObject.APIVersion, Name: e.InvolvedObject.Name, UID: e.InvolvedObject.UID,
			Component: e.Source.Component, Controller: e.ReportingController, Who: e.ReportingInstance,
			Count: e.Count,
		})
	}
	slices.SortFunc(out, func(a, b event) int {
		return strings.Compare(a.Reason+a.Kind, b.Reason+b.Kind)
	})
	return out
}

func TestEventsOnLockAndPod(t *testing.T) {
	forEachLock(t, func(t *testing.T, k kit) {
		c := electortest.NewCluster()
		pod := createPod(t, c, "pod-a", nil)
		a := k.start(t, c, "a", WithPodName("pod-a"), WithEvents(true))
		waitLeader(t, testTTL, a)
		synctest.Wait()

		kind, version := map[LockType]string{LockLeases: "Lease", LockConfigMaps: "ConfigMap", LockEndpoints: "Endpoints",
			LockConfigMapsLeases: "ConfigMap", LockEndpointsLeases: "Endpoints"}[k.lock], "v1"
		if k.lock == LockLeases {
			version = "coordination.k8s.io/v1"
		}
		lockUID := types.UID(a.e.Status().LockUID)
		if lockUID == "" {
			t.Fatal("status has no lock UID")
		}
		ev := func(reason, message, kind, version, name string, uid types.UID) event {
			return event{Reason: reason, Type: corev1.EventTypeNormal, Message: message,
				Kind: kind, APIVersion: version, Name: name, UID: uid,
				Component: "k8s-elector", Controller: "k8s-elector", Who: "a", Count: 1}
		}
		elected := []event{
			ev(eventReasonLeaderElected, "a became leader", kind, version, testElection, lockUID),
			ev(eventReasonLeaderElected, "a became leader", "Pod", "v1", "pod-a", pod.UID),
		}
		slices.SortFunc(elected, func(a, b event) int { return strings.Compare(a.Kind, b.Kind) })
		if diff := cmp.Diff(elected, listEvents(t, c)); diff != "" {
			t.Fatalf("events while leading (-want +got):\n%s", diff)
		}

		a.stop(t)
		stopped := []event{
			ev(eventReasonStoppedLeading, "a stopped leading", kind, version, testElection, lockUID),
			ev(eventReasonStoppedLeading, "a stopped leading", "Pod", "v1", "pod-a", pod.UID),
		}
		slices.SortFunc(stopped, func(a, b event) int { return strings.Compare(a.Kind, b.Kind) })
		if diff := cmp.Diff(append(elected, stopped...), listEvents(t, c)); diff != "" {
			t.Fatalf("events after stopping (-want +got):\n%s", diff)
		}
	})
}

func TestEventsOffByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		createPod(t, c, "pod-a", nil)
		a := start(t, c, "a", LockLeases, WithPodName("pod-a"))
		waitLeader(t, testTTL, a)
		a.stop(t)
		if got := listEvents(t, c); len(got) != 0 {
			t.Errorf("events %v without WithEvents, want none", got)
		}
	})
}

// TestRepeatedTermsCountOneEvent resigns twice: the repeated Events on the
// lock are one Event each, counted, as kubectl shows them.
func TestRepeatedTermsCountOneEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases, WithEvents(true))
		for range 2 {
			waitLeader(t, testTTL, a)
			if err := a.e.ResignFor(context.Background(), 0); err != nil {
				t.Fatalf("ResignFor: %v", err)
			}
		}
		waitLeader(t, testTTL, a)
		synctest.Wait()
		counts := map[string]int32{}
		for _, e := range listEvents(t, c) {
			counts[e.Reason] += e.Count
			if e.Count == 1 && e.Reason == eventReasonLeaderElected {
				t.Errorf("LeaderElected recorded anew instead of counted: %+v", e)
			}
		}
		if diff := cmp.Diff(map[string]int32{eventReasonLeaderElected: 3, eventReasonStoppedLeading: 2}, counts); diff != "" {
			t.Errorf("event counts (-want +got):\n%s", diff)
		}
		if got := len(listEvents(t, c)); got != 2 {
			t.Errorf("%d events, want 2 (one per reason)", got)
		}
	})
}

// TestEventsForbiddenDoNotStopTheElection refuses every Event, as a missing
// RBAC rule does: each is tried once and logged, and the election goes on.
func TestEventsForbiddenDoNotStopTheElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		client := c.Client()
		var creates atomic.Int32
		client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
			creates.Add(1)
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", nil)
		})
		logs := &testkit.Log{}
		a := start(t, c, "a", LockLeases, WithClient(client), WithEvents(true), WithLogger(logs.Logger()))
		if _, took := waitLeader(t, testTTL, a); took > 0 {
			t.Errorf("became leader after %s, want at once", took)
		}
		a.stop(t)
		if got := creates.Load(); got != 2 {
			t.Errorf("%d event creates, want 2 (one per event, no retries)", got)
		}
		if n := logs.ErrorsContaining("cannot record an event"); n != 2 {
			t.Errorf("%d error lines, want 2:\n%s", n, logs)
		}
		if got := a.log.terms(); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Errorf("callbacks %v, want [started stopped]", got)
		}
	})
}

// TestPodEventsCarryTheUIDWhenLabellingFails refuses every pod patch: the
// Events on the Pod still carry its UID, read with a get, so that kubectl
// describe pod lists them.
func TestPodEventsCarryTheUIDWhenLabellingFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		pod := createPod(t, c, "pod-a", nil)
		client := c.Client()
		client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "pod-a", nil)
		})
		a := start(t, c, "a", LockLeases, WithClient(client), WithPodName("pod-a"), WithEvents(true))
		waitLeader(t, testTTL, a)
		synctest.Wait()
		var uids []types.UID
		for _, e := range listEvents(t, c) {
			if e.Kind == "Pod" {
				uids = append(uids, e.UID)
			}
		}
		if diff := cmp.Diff([]types.UID{pod.UID}, uids); diff != "" {
			t.Errorf("UIDs of the Events on the Pod (-want +got):\n%s", diff)
		}
	})
}

// TestStoppedLeadingEventFollowsTheRelease: the Event of a term's end is
// posted after the release, not beside it, so that it does not slow the
// write the successor waits for.
func TestStoppedLeadingEventFollowsTheRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		entered, proceed := make(chan struct{}), make(chan struct{})
		a := start(t, c, "a", LockLeases, WithEvents(true), WithBeforeRelease(func(context.Context, Status) error {
			close(entered) // the release is next
			<-proceed
			return nil
		}))
		waitLeader(t, testTTL, a)
		synctest.Wait()
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			a.stop(t)
		}()
		<-entered
		synctest.Wait() // whatever was queued to be posted is posted by now
		stoppedEvents := func() int {
			n := 0
			for _, e := range listEvents(t, c) {
				if e.Reason == eventReasonStoppedLeading {
					n++
				}
			}
			return n
		}
		if n := stoppedEvents(); n != 0 {
			t.Errorf("%d stopped-leading Events posted before the release", n)
		}
		close(proceed)
		<-stopped
		if rec := lockHolder(t, c.Client(), LockLeases); rec.HolderIdentity != "" {
			t.Errorf("holder %q after stopping, want the lock released", rec.HolderIdentity)
		}
		if n := stoppedEvents(); n != 1 {
			t.Errorf("%d stopped-leading Events after the release, want 1", n)
		}
	})
}
