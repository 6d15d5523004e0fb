package electortest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/k8s-elector/elector/internal/testkit"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-elector/elector/electortest"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func lease(name, holder string) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder},
	}
}

func getLease(t *testing.T, cs *fake.Clientset, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := cs.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease %s: %v", name, err)
	}
	return l
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// Two clients race from the same read: the first update wins, the second,
// with the resourceVersion both read, fails with a Conflict and changes
// nothing.
func TestUpdateWithStaleResourceVersionConflicts(t *testing.T) {
	c := electortest.NewCluster(lease("l", "a"))
	ctx := context.Background()
	a, b := c.Client(), c.Client()
	readA, readB := getLease(t, a, "l"), getLease(t, b, "l")
	if readA.ResourceVersion != readB.ResourceVersion {
		t.Fatalf("two reads of one version: got resourceVersions %q and %q", readA.ResourceVersion, readB.ResourceVersion)
	}

	readA.Spec.HolderIdentity = new("a2")
	wonA, err := a.CoordinationV1().Leases("default").Update(ctx, readA, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("first update: %v", err)
	}
	if wonA.ResourceVersion == readA.ResourceVersion {
		t.Errorf("the update kept resourceVersion %q, want a new one", wonA.ResourceVersion)
	}
	readB.Spec.HolderIdentity = new("b")
	if _, err := b.CoordinationV1().Leases("default").Update(ctx, readB, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with stale resourceVersion %q: got %v, want a Conflict", readB.ResourceVersion, err)
	}
	if got := getLease(t, b, "l"); holder(got) != "a2" || got.ResourceVersion != wonA.ResourceVersion {
		t.Errorf("after the conflict: got holder %q at %q, want a2 at %q", holder(got), got.ResourceVersion, wonA.ResourceVersion)
	}

	// With the current resourceVersion, b's update goes through.
	cur := getLease(t, b, "l")
	cur.Spec.HolderIdentity = new("b")
	if _, err := b.CoordinationV1().Leases("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update with the current resourceVersion: %v", err)
	}
	if got := holder(getLease(t, a, "l")); got != "b" {
		t.Errorf("holder after b's update: got %q, want b", got)
	}
}

// Objects get a UID when they are created (or given to NewCluster), keep it
// through updates that do not carry it, and a new one when created again.
func TestUIDsAreStamped(t *testing.T) {
	seeded := lease("seeded", "a")
	seeded.UID = "mine"
	c := electortest.NewCluster(seeded)
	cs := c.Client()
	ctx := context.Background()
	leases := cs.CoordinationV1().Leases("default")

	first := getLease(t, cs, "seeded")
	if first.UID == "" || first.UID == "mine" || first.ResourceVersion == "" {
		t.Errorf("object given to NewCluster: got UID %q, resourceVersion %q, want the cluster's own", first.UID, first.ResourceVersion)
	}
	created, err := leases.Create(ctx, lease("l", "a"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.UID == first.UID {
		t.Errorf("created: got UID %q, want a new one (not %q)", created.UID, first.UID)
	}
	if got := getLease(t, cs, "l").UID; got != created.UID {
		t.Errorf("read back: got UID %q, want %q", got, created.UID)
	}

	upd := created.DeepCopy()
	upd.UID = ""
	upd.Spec.HolderIdentity = new("b")
	updated, err := leases.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.UID != created.UID {
		t.Errorf("updated without a UID: got UID %q, want %q kept", updated.UID, created.UID)
	}

	if err := leases.Delete(ctx, "l", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again, err := leases.Create(ctx, lease("l", "c"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.UID == "" || again.UID == created.UID {
		t.Errorf("created again: got UID %q, want a new one (not %q)", again.UID, created.UID)
	}
}

// next returns the event waiting on w, without blocking: the cluster sends
// events before the write that makes them returns.
func next(t *testing.T, w watch.Interface) (watch.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		return ev, ok
	default:
		t.Fatal("no event waiting on the watch, and it is open")
		return watch.Event{}, false
	}
}

// A partitioned client's requests fail without reaching the cluster, with an
// error that is not an API status, and its watches end; the other clients go
// on; after Heal, it reads and writes again, and new watches see the others'
// writes.
func TestPartitionAndHeal(t *testing.T) {
	c := electortest.NewCluster(lease("l", "a"))
	ctx := context.Background()
	a, b := c.Client(), c.Client()
	w, err := a.CoordinationV1().Leases("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	read := getLease(t, a, "l")

	c.Partition(a)
	c.Partition(a) // twice is once
	cut := func(what string, err error) {
		t.Helper()
		var status apierrors.APIStatus
		switch {
		case err == nil:
			t.Errorf("%s while partitioned: got no error, want ErrPartitioned", what)
		case !errors.Is(err, electortest.ErrPartitioned):
			t.Errorf("%s while partitioned: got %v, want ErrPartitioned", what, err)
		case errors.As(err, &status):
			t.Errorf("%s while partitioned: got API status %v, want a network error", what, err)
		}
	}
	leasesA := a.CoordinationV1().Leases("default")
	_, err = leasesA.Get(ctx, "l", metav1.GetOptions{})
	cut("get", err)
	_, err = leasesA.List(ctx, metav1.ListOptions{})
	cut("list", err)
	_, err = leasesA.Create(ctx, lease("other", "a"), metav1.CreateOptions{})
	cut("create", err)
	stale := read.DeepCopy()
	stale.Spec.HolderIdentity = new("a-partitioned")
	_, err = leasesA.Update(ctx, stale, metav1.UpdateOptions{})
	cut("update", err)
	_, err = a.CoreV1().ConfigMaps("default").Get(ctx, "cm", metav1.GetOptions{})
	cut("get configmap", err)
	_, err = leasesA.Watch(ctx, metav1.ListOptions{})
	cut("watch", err)
	if ev, open := next(t, w); open {
		t.Errorf("watch open before the partition: got event %v, want it ended", ev.Type)
	}

	// b goes on, and sees that none of a's writes landed.
	if got := getLease(t, b, "l"); holder(got) != "a" || got.ResourceVersion != read.ResourceVersion {
		t.Errorf("after a's writes while partitioned: got holder %q at %q, want a at %q", holder(got), got.ResourceVersion, read.ResourceVersion)
	}
	if _, err := b.CoordinationV1().Leases("default").Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease created while partitioned: got %v, want NotFound", err)
	}
	taken := read.DeepCopy()
	taken.Spec.HolderIdentity = new("b")
	if _, err := b.CoordinationV1().Leases("default").Update(ctx, taken, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("b's update while a is partitioned: %v", err)
	}

	c.Heal(a)
	c.Heal(a) // twice is once
	if got := holder(getLease(t, a, "l")); got != "b" {
		t.Errorf("a reads after Heal: got holder %q, want b", got)
	}
	w2, err := leasesA.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch after Heal: %v", err)
	}
	defer w2.Stop()
	if _, err := b.CoordinationV1().Leases("default").Create(ctx, lease("new", "b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev, open := next(t, w2); !open || ev.Type != watch.Added || ev.Object.(*coordinationv1.Lease).Name != "new" {
		t.Errorf("a's watch after Heal: got %v (open %v), want the Lease new added", ev.Type, open)
	}
	if _, err := leasesA.Create(ctx, lease("from-a", "a"), metav1.CreateOptions{}); err != nil {
		t.Errorf("a's create after Heal: %v", err)
	}
}

// Partition cuts one client only: another client's watch still sees every
// write, its own and others'.
func TestPartitionIsPerClient(t *testing.T) {
	c := electortest.NewCluster()
	ctx := context.Background()
	a, b, d := c.Client(), c.Client(), c.Client()
	w, err := b.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	c.Partition(a)
	for _, cs := range []*fake.Clientset{b, d} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "cm"}}
		if cs == d {
			cm.Name = "cm-d"
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s beside a partitioned client: %v", cm.Name, err)
		}
		if ev, open := next(t, w); !open || ev.Object.(*corev1.ConfigMap).Name != cm.Name {
			t.Errorf("b's watch: got %v (open %v), want %s added", ev.Type, open, cm.Name)
		}
	}
}

func TestPartitionPanicsOnAForeignClient(t *testing.T) {
	for name, f := range map[string]func(*electortest.Cluster, *fake.Clientset){
		"Partition": (*electortest.Cluster).Partition,
		"Heal":      (*electortest.Cluster).Heal,
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s of another cluster's client: got no panic, want one", name)
				}
			}()
			f(electortest.NewCluster(), electortest.NewCluster().Client())
		})
	}
}
