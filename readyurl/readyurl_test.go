package readyurl

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Timing used by the election tests: TTL 6s, renew deadline 2s, retry 1s,
// request timeout 1s.
const (
	testTTL     = 6 * time.Second
	testRetry   = testTTL / 6
	testTimeout = time.Second
	// maxRetryWait is the longest a candidate waits between two attempts:
	// client-go jitters the retry period by up to 1.2×.
	maxRetryWait = testRetry + 12*testRetry/10
)

// TestCheckRejectsBadURLs covers every bad ready URL, and good ones.
func TestCheckRejectsBadURLs(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		want string
	}{
		{"remote host", "http://10.0.0.1:8080/ready", `ready URL: "http://10.0.0.1:8080/ready" is not on this host`},
		{"remote name", "http://example.com/ready", "is not on this host"},
		{"no scheme", "127.0.0.1:8080/ready", "ready URL:"},
		{"ftp", "ftp://127.0.0.1/ready", `is not an http or https URL`},
		{"no host", "http:///ready", "has no host"},
		{"garbage", "http://[::1", "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check, err := Check(tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error with %q", err, tc.want)
			}
			if check != nil {
				t.Errorf("got a check with the error %v, want nil", err)
			}
		})
	}
	for _, u := range []string{"http://127.0.0.1:8080/ready", "http://localhost/ready", "https://[::1]:8443/healthz", "http://127.0.0.2/"} {
		if _, err := Check(u); err != nil {
			t.Errorf("Check(%q): %v", u, err)
		}
	}
}

// TestCheckPassesOn2xxOnly checks the HTTP check against a real server: a
// failure names the status, and a redirect is not followed.
func TestCheckPassesOn2xxOnly(t *testing.T) {
	var code atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := int(code.Load()); c >= 300 && c < 400 {
			http.Redirect(w, r, "/elsewhere", c)
			return
		}
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	check, err := Check(srv.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code int
		ok   bool
		want string // in the error
	}{{200, true, ""}, {204, true, ""}, {302, false, "302 Found"}, {404, false, "404 Not Found"}, {503, false, "503 Service Unavailable"}} {
		code.Store(int64(tc.code))
		err := check(context.Background())
		if (err == nil) != tc.ok {
			t.Errorf("answer %d: check returned %v, want ok=%v", tc.code, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "GET "+srv.URL+"/ready: "+tc.want) {
			t.Errorf("answer %d: check returned %q, want it to name the URL and the status %q", tc.code, err, tc.want)
		}
	}
	srv.Close()
	if err := check(context.Background()); err == nil {
		t.Error("a closed server passed the check")
	}
}

// TestCheckEndsWithItsContext: an application that does not answer fails
// the check when the check's context ends.
func TestCheckEndsWithItsContext(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	check, err := Check(srv.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := check(ctx); err == nil {
		t.Error("a check of an application that does not answer passed")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("the check returned %s after its context ended, want at once", took)
	}
}

// app is an application's ready URL: it answers 200 when ready, 503 when
// not, and nothing at all (until the request ends) when hung.
type app struct {
	ready, hung atomic.Bool
	mu          sync.Mutex
	at          []time.Time // when it was asked
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
	switch {
	case a.hung.Load():
		<-r.Context().Done()
	case a.ready.Load():
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

func (a *app) asked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// TestCheckGatesCandidacy: as a candidacy gate, the check keeps a candidate
// whose application answers 503 out of the election; it leads within a
// check and an attempt of the application becoming ready; and a leader
// whose application stops answering steps down once its checks have timed
// out DefaultCandidacyGateFailures times, each at the request timeout.
func TestCheckGatesCandidacy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const failures = 3
		a := &app{}
		check := check("http://127.0.0.1:8080/ready", &http.Client{Transport: testkit.HandlerTransport{Handler: a}})
		e, err := elector.New("example", elector.WithClient(electortest.NewCluster().Client()),
			elector.WithID("a"), elector.WithTTL(testTTL), elector.WithCandidacyGate(check, failures))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v, want nil after cancel", err)
			}
		}()

		time.Sleep(3 * testTTL)
		synctest.Wait()
		if s := e.Status(); s.IsLeader || s.Leader != "" || s.Candidate == nil || *s.Candidate {
			t.Fatalf("status %+v, want a follower that is no candidate, and no leader", s)
		}
		if n := a.asked(); n < 3 {
			t.Fatalf("the application was asked %d times in %s, want every retry period", n, 3*testTTL)
		}

		a.ready.Store(true)
		ready := time.Now()
		testkit.WaitFor(t, 2*testRetry+maxRetryWait, "a leads once ready", func() bool { return e.Status().IsLeader })
		if took := time.Since(ready); took > testRetry+maxRetryWait {
			t.Errorf("a led %s after its application became ready, want within a check and an attempt", took)
		}

		a.hung.Store(true)
		hung := time.Now()
		testkit.WaitFor(t, 2*failures*(testTimeout+testRetry), "a steps down", func() bool { return !e.Status().IsLeader })
		// The first failure comes at most a retry period and a timeout
		// from now, each further one a timeout and a retry period later.
		took := time.Since(hung)
		if least := failures*testTimeout + (failures-1)*testRetry; took < least {
			t.Errorf("a stepped down %s after its application hung, want after %d checks that time out (%s)", took, failures, least)
		}
		if s := e.Status(); s.Candidate == nil || *s.Candidate {
			t.Errorf("candidate %v after stepping down, want false", s.Candidate)
		}
	})
}
