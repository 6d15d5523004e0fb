package elector

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

func TestDefaults(t *testing.T) {
	e, err := New("example", WithClient(fake.NewClientset()))
	if err != nil {
		t.Fatal(err)
	}
	o := e.o
	if o.namespace != "default" || o.lockType != LockLeases || o.ttl != 10*time.Second || !o.releaseOnCancel {
		t.Errorf("defaults: namespace %q lock %q ttl %s release %v, want default, leases, 10s, true",
			o.namespace, o.lockType, o.ttl, o.releaseOnCancel)
	}
	if o.renewDeadline != 10*time.Second/3 || o.retryPeriod != 10*time.Second/6 {
		t.Errorf("renew deadline %s, retry %s, want TTL/3 and TTL/6", o.renewDeadline, o.retryPeriod)
	}
	if got := e.o.requestTimeout(); got != 10*time.Second/3/2 {
		t.Errorf("request timeout %s, want renew deadline / 2", got)
	}
	if o.id == "" {
		t.Error("default ID is empty, want the hostname")
	}
	if o.podName != "" || o.events {
		t.Errorf("pod name %q, events %v, want \"\", false", o.podName, o.events)
	}
}

func TestLastOptionWins(t *testing.T) {
	e, err := New("example", WithClient(fake.NewClientset()),
		WithTTL(3*time.Second), WithTTL(4*time.Second), WithID("x"), WithID("y"),
		WithNamespace("a"), WithNamespace("b"), WithLockType(LockEndpoints), WithLockType(LockConfigMaps))
	if err != nil {
		t.Fatal(err)
	}
	if e.o.ttl != 4*time.Second || e.o.id != "y" || e.o.namespace != "b" || e.o.lockType != LockConfigMaps {
		t.Fatalf("got ttl %s id %q ns %q lock %q, want the last of each", e.o.ttl, e.o.id, e.o.namespace, e.o.lockType)
	}
}

func TestValidation(t *testing.T) {
	client := WithClient(fake.NewClientset())
	for _, tc := range []struct {
		name     string
		election string
		opts     []Option
		want     []string // substrings of the error, one per problem
	}{
		{"missing election", "", nil, []string{"election name is required"}},
		{"uppercase election", "Example", nil, []string{`election name "Example" is not a valid object name`}},
		{"slash in election", "a/b", nil, []string{`"a/b" is not a valid object name`}},
		{"election too long", strings.Repeat("a", 300), nil, []string{"is not a valid object name", "no more than 253"}},
		{"ttl zero", "e", []Option{WithTTL(0)}, []string{"TTL 0s is too short: want a whole number of seconds, at least 2s"}},
		{"ttl too short", "e", []Option{WithTTL(time.Second)}, []string{"TTL 1s is too short: want a whole number of seconds, at least 2s"}},
		{"ttl negative", "e", []Option{WithTTL(-time.Second)}, []string{"TTL -1s is too short: want a whole number of seconds, at least 2s"}},
		{"ttl 1s", "e", []Option{WithTTL(time.Second)}, []string{"TTL 1s is too short: want a whole number of seconds, at least 2s (the lock records whole seconds"}},
		{"ttl too short for the retry", "e", []Option{WithTTL(3 * time.Second), WithRenewDeadline(2500 * time.Millisecond), WithRetryPeriod(1500 * time.Millisecond)},
			[]string{"TTL 3s is too short for a retry period of 1.5s: followers see at most one renewal a second, so the lease less its drift margin (2.94s) must outlast the longest gap between renewals that followers see and a retry period (3s)"}},
		{"renew interval negative", "e", []Option{WithRenewInterval(-time.Second)}, []string{"renew interval -1s is negative: want more than 0, or 0 for 2.1 retry periods"}},
		{"renew interval below the retry period", "e", []Option{WithRenewInterval(time.Second)},
			[]string{"renew interval 1s is shorter than the retry period 1.666666666s: want at least the retry period"}},
		{"renew interval too long", "e", []Option{WithRenewInterval(9 * time.Second)},
			[]string{"renew interval 9s is too long for a TTL of 10s and a retry period of 1.666666666s: the lease less its drift margin (9.8s) must outlast the longest gap between renewals that followers see and a retry period (10.666666666s); want at most 8.132333334s"}},
		{"ttl negative", "e", []Option{WithTTL(-time.Second)}, []string{"TTL -1s is too short"}},
		{"ttl below 1s", "e", []Option{WithTTL(500 * time.Millisecond)}, []string{"TTL 500ms is too short"}},
		{"ttl fractional", "e", []Option{WithTTL(2500 * time.Millisecond)}, []string{"TTL 2.5s is not a whole number of seconds"}},
		{"unknown lock", "e", []Option{WithLockType("leasez")}, []string{`lock type "leasez" is not supported: want one of leases, endpoints, configmaps, endpointsleases, configmapsleases`}},
		{"empty id", "e", []Option{WithID("")}, []string{`ID "" is empty`}},
		{"blank id", "e", []Option{WithID("  ")}, []string{`ID "  " is empty`}},
		{"control char id", "e", []Option{WithID("a\nb")}, []string{"contains control characters"}},
		{"empty namespace", "e", []Option{WithNamespace("")}, []string{"namespace is empty"}},
		{"bad namespace", "e", []Option{WithNamespace("Kube_System")}, []string{`namespace "Kube_System" is not a valid namespace name`}},
		{"renew >= ttl", "e", []Option{WithTTL(6 * time.Second), WithRenewDeadline(6 * time.Second)}, []string{"renew deadline 6s must be shorter than the TTL 6s"}},
		{"renew <= 1.2 retry", "e", []Option{WithTTL(6 * time.Second), WithRenewDeadline(2 * time.Second), WithRetryPeriod(2 * time.Second)},
			[]string{"renew deadline 2s must be longer than 1.2 × the retry period 2s (2.4s)"}},
		{"negative renew", "e", []Option{WithRenewDeadline(-time.Second)}, []string{"renew deadline -1s is negative"}},
		{"negative retry", "e", []Option{WithRetryPeriod(-time.Second)}, []string{"retry period -1s is negative"}},
		{"bad pod name", "e", []Option{WithPodName("Pod_A")}, []string{`pod name "Pod_A" is not a valid Pod name: a lowercase RFC 1123 subdomain`}},
		{"every problem at once", "Bad", []Option{WithTTL(0), WithLockType("x"), WithID("")},
			[]string{"election name", "TTL 0s", `lock type "x"`, `ID ""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.election, append([]Option{client}, tc.opts...)...)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tc.want) && tc.name != "election too long" {
				t.Errorf("got %d problems, want %d:\n%v", got, len(tc.want), err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "elector: ") {
					t.Errorf("error line %q lacks the elector: prefix", line)
				}
			}
		})
	}
}

// TestTimings: the derived timings have one owner, and an Elector reports
// its own.
func TestTimings(t *testing.T) {
	got := DefaultTimings(10 * time.Second)
	retry := 10 * time.Second / 6
	want := Timings{TTL: 10 * time.Second, RenewDeadline: 10 * time.Second / 3, RetryPeriod: retry, RequestTimeout: 10 * time.Second / 6,
		RenewInterval: retry * 21 / 10, HoldSpan: retry*21/10 + retry,
		DriftMargin: 200 * time.Millisecond, ShutdownBudget: 10*time.Second/3 + time.Second, MaxStopGrace: 10*time.Second - 400*time.Millisecond - retry*21/10 - retry,
		SuccessorWindow: time.Second}
	if got != want {
		t.Errorf("DefaultTimings(10s) = %+v, want %+v", got, want)
	}
	// At 2s, 2.1 retry periods are under 1s: renewals every 1s, all
	// seen, and TTL/3 would outlast the gap between them.
	two := DefaultTimings(2 * time.Second)
	if two.RenewInterval != time.Second || two.HoldSpan != time.Second+2*time.Second/6 {
		t.Errorf("DefaultTimings(2s): renew interval %s, hold span %s, want 1s and 1s plus the retry period", two.RenewInterval, two.HoldSpan)
	}
	if g := two.MaxStopGrace; g != 2*time.Second-80*time.Millisecond-(time.Second+2*time.Second/6) {
		t.Errorf("DefaultTimings(2s).MaxStopGrace = %s, want the longest the lease holds", g)
	}
	// Where 2.1 retry periods cannot hold, the leader renews every
	// retry period, as client-go's does.
	e, err := New("e", WithClient(fake.NewClientset()), WithTTL(3*time.Second), WithRetryPeriod(time.Second), WithRenewDeadline(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Timings().RenewInterval; got != time.Second {
		t.Errorf("TTL 3s, retry 1s: renew interval %s, want the retry period", got)
	}
	for _, ttl := range []time.Duration{defaultTTL, 2 * time.Second, 6 * time.Second} {
		e, err := New("e", WithClient(fake.NewClientset()), WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e.Timings(), DefaultTimings(ttl); got != want {
			t.Errorf("TTL %s: Timings() = %+v, want the defaults %+v", ttl, got, want)
		}
		grace := DefaultTimings(ttl).MaxStopGrace
		e, err = New("e", WithClient(fake.NewClientset()), WithTTL(ttl), WithStopGrace(grace))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Timings().StopGrace; got != grace {
			t.Errorf("TTL %s: Timings().StopGrace = %s, want %s", ttl, got, grace)
		}
		if _, err := New("e", WithClient(fake.NewClientset()), WithTTL(ttl), WithStopGrace(grace+time.Millisecond)); err == nil ||
			!strings.Contains(err.Error(), "want at most "+grace.String()) {
			t.Errorf("TTL %s: a stop grace above the longest: err = %v, want it refused with the longest", ttl, err)
		}
	}
}

func TestClientRequired(t *testing.T) {
	_, err := New("e")
	if !errors.Is(err, errNoClient) {
		t.Fatalf("New without client: %v, want errNoClient", err)
	}
	if _, err := New("e", WithClient(nil)); err == nil || errors.Is(err, errNoClient) || !strings.Contains(err.Error(), "WithClient got nil") {
		t.Fatalf("New with WithClient(nil): %v, want an error naming WithClient's nil", err)
	}
	var typedNil *fake.Clientset
	if _, err := New("e", WithClient(typedNil)); err == nil || !strings.Contains(err.Error(), "WithClient got a nil *fake.Clientset") {
		t.Fatalf("New with a typed-nil client: %v, want an error naming it", err)
	}
	if _, err := New("e", WithClient(fake.NewClientset()), nil); err == nil || !strings.Contains(err.Error(), "option 2 of 2 is nil") {
		t.Fatalf("New with a nil option: %v, want an error naming it", err)
	}
	// A config that cannot become a client: its CA is not a certificate.
	_, err = New("e", WithRESTConfig(&rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("not a certificate")}}))
	if err == nil || !strings.HasPrefix(err.Error(), "elector: Kubernetes client config: ") {
		t.Fatalf("New with a CA that is not a certificate: %v, want a client config error", err)
	}
	if _, ok := err.(interface{ Unwrap() []error }); !ok {
		t.Fatalf("New's error %T is not joined like its other errors", err)
	}
	_, err = New("e", WithClient(fake.NewClientset()), WithRESTConfig(&rest.Config{}))
	if err == nil || !strings.Contains(err.Error(), "set only one") {
		t.Fatalf("New with both clients: %v, want an error", err)
	}
	if _, err := New("e", WithRESTConfig(&rest.Config{Host: "https://127.0.0.1:1"})); err != nil {
		t.Fatalf("New with a REST config: %v", err)
	}
}

// WithClient takes a full clientset and the fake one as they are.
var (
	_ kubernetes.Interface = (*kubernetes.Clientset)(nil)
	_ kubernetes.Interface = (*fake.Clientset)(nil)
	_ client               = kubernetes.Interface(nil)
)

func TestRESTConfigClientSharesOneConnectionPool(t *testing.T) {
	for _, lock := range []LockType{LockLeases, LockEndpoints} {
		o := options{restConfig: &rest.Config{Host: "https://127.0.0.1:1"}, lockType: lock}
		c, err := o.lockClient()
		if err != nil {
			t.Fatal(err)
		}
		coordination := c.CoordinationV1().RESTClient().(*rest.RESTClient)
		core := c.CoreV1().RESTClient().(*rest.RESTClient)
		if coordination.Client == nil || coordination.Client != core.Client {
			t.Errorf("%s: the coordination and core clients use different HTTP clients", lock)
		}
		if coordination.APIVersion().Group != "coordination.k8s.io" || core.APIVersion().Group != "" {
			t.Errorf("%s: groups %q and %q, want coordination.k8s.io and core", lock,
				coordination.APIVersion().Group, core.APIVersion().Group)
		}
		if ua := o.restConfig.UserAgent; ua != "" {
			t.Errorf("the caller's REST config was changed: user agent %q", ua)
		}
	}
}

func FuzzValidation(f *testing.F) {
	f.Add("example", "default", "pod-a", "leases", int64(10*time.Second), int64(0), int64(0))
	f.Add("", "", "", "", int64(0), int64(-1), int64(-1))
	f.Add("a.b-c", "ns", "x", "configmaps", int64(1500*time.Millisecond), int64(time.Second), int64(time.Second))
	f.Fuzz(func(t *testing.T, election, ns, id, lock string, ttl, renew, retry int64) {
		e, err := New(election, WithClient(fake.NewClientset()), WithNamespace(ns), WithID(id),
			WithLockType(LockType(lock)), WithTTL(time.Duration(ttl)),
			WithRenewDeadline(time.Duration(renew)), WithRetryPeriod(time.Duration(retry)))
		if err != nil {
			return
		}
		// Whatever New accepts must satisfy client-go's invariants and ours.
		o := e.o
		if o.ttl < minTTL || o.ttl%time.Second != 0 || o.renewDeadline >= o.ttl || o.ttl-driftMargin(o.ttl) <= holdSpan(o.renewInterval, o.retryPeriod) || o.renewInterval < o.retryPeriod ||
			o.renewDeadline <= time.Duration(jitterFactor*float64(o.retryPeriod)) || o.retryPeriod <= 0 || o.id == "" {
			t.Fatalf("New accepted invalid timing or ID: %+v", o)
		}
	})
}
