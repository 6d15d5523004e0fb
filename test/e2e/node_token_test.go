package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/manifests"
)

// tokenLifetime is the lifetime TestNodeTokenRotation asks of the projected
// ServiceAccount token: the API's minimum (a TokenRequest or a projected
// volume may not ask for less than 10 minutes). The kubelet replaces a
// token once 80% of its lifetime has passed (8 minutes here, a few seconds
// earlier with its jitter, at its next volume sync), and the old one stops
// working when it expires, 10 minutes after it was issued.
const tokenLifetime = 600 * time.Second

// tokenRotation is TestNodeTokenRotation's Deployment: deploy/example with
// 2 replicas and the token's lifetime at tokenLifetime, started with the
// node tests' cluster, so that the rotation happens while the other node
// tests run.
type tokenRotation struct {
	ns      string
	started time.Time
	err     error // the Deployment could not be started
}

// startTokenRotation applies TestNodeTokenRotation's Deployment.
func startTokenRotation(nc *nodeCluster) *tokenRotation {
	r := &tokenRotation{ns: "node-token", started: time.Now()}
	r.err = func() error {
		ctx := context.Background()
		if err := createNamespace(ctx, nc.client, r.ns); err != nil {
			return err
		}
		objs, err := manifests.Build(filepath.Join(controlplane.RepoRoot(), "deploy", "example"), r.ns)
		if err != nil {
			return err
		}
		localImages(objs, nc.image)
		found := 0
		for _, u := range objs {
			if u.GetKind() != "Deployment" {
				continue
			}
			v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec")
			spec, _ := v.(map[string]any)
			spec["replicas"] = int64(2)
			v, _, _ = unstructured.NestedFieldNoCopy(u.Object, "spec", "template", "spec", "volumes")
			vols, _ := v.([]any)
			for _, vol := range vols {
				projected, _ := vol.(map[string]any)["projected"].(map[string]any)
				sources, _ := projected["sources"].([]any)
				for _, src := range sources {
					if tok, ok := src.(map[string]any)["serviceAccountToken"].(map[string]any); ok {
						tok["expirationSeconds"] = int64(tokenLifetime.Seconds())
						found++
					}
				}
			}
		}
		if found != 1 {
			return fmt.Errorf("deploy/example has %d projected ServiceAccount tokens, want 1", found)
		}
		a, err := manifests.NewApplier(nc.Admin)
		if err != nil {
			return err
		}
		return a.Create(ctx, objs, false)
	}()
	return r
}

// jwtClaims are the claims of a ServiceAccount token the test reads.
type jwtClaims struct {
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
}

// readToken decodes the claims of the token in a Pod's projected volume, as
// the kubelet wrote it on the node.
func readToken(nc *nodeCluster, pod corev1.Pod) (jwtClaims, error) {
	var c jwtClaims
	paths, err := filepath.Glob(filepath.Join(nc.Dir(), "kubelet", "pods", string(pod.UID), "volumes", "kubernetes.io~projected", "*", "token"))
	if err != nil || len(paths) != 1 {
		return c, fmt.Errorf("the token of %s on the node: %d files (%v)", pod.Name, len(paths), err)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		return c, err
	}
	parts := strings.Split(strings.TrimSpace(string(b)), ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("the token of %s is not a JWT", pod.Name)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(payload, &c)
}

// TestNodeTokenRotation runs deploy/example with the projected token's
// lifetime at the API's minimum and checks that the electors keep working
// across the kubelet's rotation of it, with nothing but the Role of
// deploy/base: every Pod's token is replaced, and after the first tokens
// have expired, the leader of the start still holds the Lease (it was never
// taken over), renews it, and no elector has logged a rejected credential.
// The Deployment starts with the node tests' cluster; the test waits until
// every first token has expired, about 10 minutes after. It waits in
// parallel with the rest of the suite, and needs no turn of the node: its
// Pods were started with the cluster, before any other node test.
func TestNodeTokenRotation(t *testing.T) {
	t.Parallel()
	nc := startNode(t)
	r := nc.rotation
	if r.err != nil {
		t.Fatalf("the Deployment of the rotation: %v", r.err)
	}
	ctx := context.Background()
	leader := waitLeaderPod(t, nc, r.ns, 2, "", nodeWaitPods)
	pods, err := readyPods(ctx, nc.client, r.ns)
	if err != nil {
		t.Fatal(err)
	}
	// The first tokens were issued when the Pods' volumes were mounted,
	// before they were Ready; they expire tokenLifetime later. Follow each
	// Pod's token until the kubelet has replaced it and the first one has
	// expired.
	wait := time.Until(r.started.Add(tokenLifetime + 3*time.Minute))
	t.Logf("%s leads; following the tokens of %d Pods for up to %s", leader.Name, len(pods), wait.Round(time.Second))
	deadline := time.Now().Add(wait)
	for _, p := range pods {
		created := p.CreationTimestamp.Time
		// The first token was issued within seconds of the Pod's creation.
		firstExpired := created.Add(tokenLifetime + 30*time.Second)
		for {
			c, err := readToken(nc, p)
			if err != nil {
				t.Fatal(err)
			}
			issued := time.Unix(c.IssuedAt, 0).Sub(created)
			rotated := issued > tokenLifetime/2
			if rotated && time.Now().After(firstExpired) {
				t.Logf("%s: its token was issued %s after the Pod was created, for %ds; the first one has expired",
					p.Name, issued.Round(time.Second), c.Expiry-c.IssuedAt)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s after its creation, its token was issued %s after it (rotated: %t)",
					p.Name, time.Since(created).Round(time.Second), issued.Round(time.Second), rotated)
			}
			time.Sleep(time.Second)
		}
	}

	// Give the leader a few renewals on the new token, then check that it
	// never lost the Lease.
	time.Sleep(5 * time.Second)
	lease, err := nc.client.CoordinationV1().Leases(r.ns).Get(ctx, "k8s-elector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holder := ptrString(lease.Spec.HolderIdentity)
	transitions := int32(0)
	if lease.Spec.LeaseTransitions != nil {
		transitions = *lease.Spec.LeaseTransitions
	}
	renewed := time.Since(lease.Spec.RenewTime.Time)
	t.Logf("Lease: held by %s, %d transitions, renewed %s ago", holder, transitions, renewed.Round(time.Millisecond))
	if holder != leader.Name || transitions != 0 {
		t.Errorf("the Lease is held by %s after %d transitions: leadership moved from %s across the rotation", holder, transitions, leader.Name)
	}
	if renewed > 5*time.Second {
		t.Errorf("the Lease was last renewed %s ago: the leader stopped renewing", renewed)
	}
	if _, err := podStatus(ctx, leader); err != nil {
		t.Errorf("the leader's GET /: %v", err)
	}
	waitLeaderPod(t, nc, r.ns, 2, "", nodeWaitChange)
	for _, p := range pods {
		logs, _ := filepath.Glob(filepath.Join(nc.Dir(), "pod-logs", r.ns+"_"+p.Name+"_*", sidecarName, "*.log"))
		if len(logs) == 0 {
			t.Errorf("no log of %s's elector", p.Name)
		}
		for _, path := range logs {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if l := sc.Text(); strings.Contains(l, "Unauthorized") {
					t.Errorf("%s's elector: %s", p.Name, logMsg(l))
				}
			}
			f.Close()
		}
	}
}
