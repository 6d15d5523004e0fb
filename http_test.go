package elector

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-elector/elector/electortest"
)

func serveGET(h http.Handler, path string) *httptest.ResponseRecorder {
	return serve(h, http.MethodGet, path)
}

func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestGETRootAnswersTheSeedJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "pod-a", LockLeases)
		b := start(t, c, "pod-b", LockLeases)
		leader, _ := waitLeader(t, testTTL, a, b)
		time.Sleep(maxRetryWait) // the follower learns the leader at its next attempt
		synctest.Wait()
		follower := a
		if leader == a {
			follower = b
		}
		for _, cand := range []*candidate{leader, follower} {
			rec := serveGET(cand.e, "/")
			if rec.Code != http.StatusOK {
				t.Fatalf("GET / = %d, want 200", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			// The four fields of the original, unchanged, then the lock record
			// and, on the leader only, valid_until.
			var raw map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if !strings.HasPrefix(rec.Body.String(), `{"is_leader":`) {
				t.Errorf("body does not start with is_leader: %s", rec.Body)
			}
			lock := lockHolder(t, c.Client(), LockLeases)
			lease, err := c.Client().CoordinationV1().Leases("default").Get(t.Context(), testElection, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"is_leader":          cand == leader,
				"leader":             leader.id,
				"node":               cand.id,
				"timestamp":          time.Now().UTC().Format(time.RFC3339),
				"lock_uid":           string(lease.UID),
				"leader_transitions": float64(lock.LeaderTransitions),
				"acquire_time":       lock.AcquireTime.UTC().Format(jsonTime),
				"renew_time":         lock.RenewTime.UTC().Format(jsonTime),
			}
			if cand != leader {
				// A follower knows the renew time of its last read, which may
				// be one renewal behind.
				got, _ := raw["renew_time"].(string)
				if rt, err := time.Parse(time.RFC3339, got); err != nil || rt.After(lock.RenewTime.Time) {
					t.Errorf("follower renew_time %q: want a time no later than the lock's %v", got, lock.RenewTime)
				}
				want["renew_time"] = got
			}
			if cand == leader {
				want["valid_until"] = cand.e.Status().ValidUntil.UTC().Format(jsonTime)
				if !strings.Contains(rec.Body.String(), `"valid_until":"2000-01-01T00:00:`) ||
					!regexp.MustCompile(`"valid_until":"[0-9T:-]+\.[0-9]{3}Z"`).MatchString(rec.Body.String()) {
					t.Errorf("valid_until is not RFC3339 with milliseconds in UTC: %s", rec.Body)
				}
			}
			if diff := cmp.Diff(want, raw); diff != "" {
				t.Errorf("GET / on %s (-want +got):\n%s", cand.id, diff)
			}
		}
	})
}

// TestGETRootIsStatusAtEveryInstant checks the rendered-body cache of GET /
// and GET /leader against Status at each step of a handover: the leader's
// renewals stall until its validity runs out mid-second, and the other
// candidate takes over.
func TestGETRootIsStatusAtEveryInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := leaderAndFollower(t, electortest.NewCluster(), LockLeases)
		a.stall.Store(int64(3 * testTTL))
		var sawExpiry, sawTakeover bool
		for range int(3 * testTTL / (100 * time.Millisecond)) {
			for _, cand := range []*candidate{a, b} {
				// Time stands still within a synctest step: Status and the
				// handlers see the same instant.
				s := cand.e.Status()
				want, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, '\n')
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					rec := serve(cand.e, method, "/")
					wantBody := string(want)
					if method == http.MethodHead {
						wantBody = ""
					}
					if rec.Code != http.StatusOK || rec.Body.String() != wantBody ||
						rec.Header().Get("Content-Length") != strconv.Itoa(len(want)) {
						t.Fatalf("%s: %s / = %d %q (Content-Length %s) at %s, want 200 %s",
							cand.id, method, rec.Code, rec.Body, rec.Header().Get("Content-Length"), time.Now(), want)
					}
				}
				wantCode := http.StatusServiceUnavailable
				if s.IsLeader {
					wantCode = http.StatusOK
				}
				if rec := serveGET(cand.e, "/leader"); rec.Code != wantCode || rec.Body.String() != string(want) {
					t.Fatalf("%s: GET /leader = %d %q, want %d %s", cand.id, rec.Code, rec.Body, wantCode, want)
				}
				if cand == a && !s.IsLeader && s.Leader == "a" {
					sawExpiry = true // a's term ran out; it has not seen b yet
				}
				if cand == b && s.IsLeader {
					sawTakeover = true
				}
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		if !sawExpiry || !sawTakeover {
			t.Fatalf("the handover was not observed: expiry %v, takeover %v", sawExpiry, sawTakeover)
		}
	})
}

func TestStatusJSONFormat(t *testing.T) {
	s := Status{IsLeader: true, Leader: "k8s-elector-74c54b485f-hgf9z", Node: "k8s-elector-74c54b485f-hgf9z",
		Timestamp: time.Date(2019, 5, 2, 20, 29, 26, 123456789, time.FixedZone("CEST", 2*3600))}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"is_leader":true,"leader":"k8s-elector-74c54b485f-hgf9z","node":"k8s-elector-74c54b485f-hgf9z","timestamp":"2019-05-02T18:29:26Z","leader_transitions":0}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var back Status
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Timestamp.Equal(s.Timestamp.Truncate(time.Second)) || back.Leader != s.Leader || !back.IsLeader {
		t.Fatalf("round trip: got %+v", back)
	}
}

func TestHTTPContract(t *testing.T) {
	e, err := New(testElection, WithClient(fake.NewClientset()), WithID("pod-a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
		body         bool
	}{
		{http.MethodGet, "/", http.StatusOK, "", true},
		{http.MethodHead, "/", http.StatusOK, "", false},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodPut, "/", http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodGet, "/nope", http.StatusNotFound, "", true},
		{http.MethodGet, "/index.html", http.StatusNotFound, "", true},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := serve(e, tc.method, tc.path)
			if rec.Code != tc.code {
				t.Fatalf("code = %d, want %d", rec.Code, tc.code)
			}
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if got := rec.Body.Len() > 0; got != tc.body {
				t.Errorf("has body = %v, want %v (%q)", got, tc.body, rec.Body)
			}
			if tc.method == http.MethodHead && rec.Header().Get("Content-Length") == "" {
				t.Error("HEAD has no Content-Length")
			}
		})
	}
}

func TestStatusBeforeRun(t *testing.T) {
	e, err := New(testElection, WithClient(fake.NewClientset()), WithID("pod-a"))
	if err != nil {
		t.Fatal(err)
	}
	s := e.Status()
	if s.IsLeader || s.Leader != "" || s.Node != "pod-a" || time.Since(s.Timestamp) > time.Minute {
		t.Fatalf("Status before Run = %+v", s)
	}
	_ = context.Background()
}

func TestStatusJSONFencingFields(t *testing.T) {
	at := time.Date(2026, 11, 25, 18, 29, 26, 123456789, time.UTC)
	s := Status{IsLeader: true, Leader: "a", Node: "a", Timestamp: at, LockUID: "u-1", LeaderTransitions: 7,
		AcquireTime: at.Add(-time.Hour), RenewTime: at.Add(-time.Second), ValidUntil: at.Add(9 * time.Second)}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"is_leader":true,"leader":"a","node":"a","timestamp":"2026-11-25T18:29:26Z","lock_uid":"u-1","leader_transitions":7,` +
		`"acquire_time":"2026-11-25T17:29:26.123Z","renew_time":"2026-11-25T18:29:25.123Z","valid_until":"2026-11-25T18:29:35.123Z"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var back Status
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.LockUID != "u-1" || back.LeaderTransitions != 7 || !back.ValidUntil.Equal(s.ValidUntil.Truncate(time.Millisecond)) {
		t.Fatalf("round trip: got %+v", back)
	}
}

func TestLeaderEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a, b := start(t, c, "a", LockLeases), start(t, c, "b", LockLeases)
		leader, _ := waitLeader(t, testTTL, a, b)
		for _, cand := range []*candidate{a, b} {
			rec := serveGET(cand.e, "/leader")
			want := http.StatusServiceUnavailable
			if cand == leader {
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("%s: GET /leader = %d, want %d", cand.id, rec.Code, want)
			}
			var s Status
			if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.Node != cand.id {
				t.Errorf("%s: GET /leader body %q (%v), want the status", cand.id, rec.Body, err)
			}
		}
	})
}

func TestReadyzAfterFirstRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		e, err := New(testElection, WithClient(c.Client()), WithID("a"))
		if err != nil {
			t.Fatal(err)
		}
		if got := serveGET(e, "/readyz").Code; got != http.StatusServiceUnavailable {
			t.Fatalf("GET /readyz before Run = %d, want 503", got)
		}
		// A candidate that cannot read the lock stays unready.
		denied := errors.New(`leases.coordination.k8s.io "example" is forbidden`)
		blocked := startFaulted(t, c, "b", LockLeases, nil, denied)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- e.Run(ctx) }()
		// Fail fast: a failing check must not leave Run running.
		defer func() {
			cancel()
			<-done
		}()
		synctest.Wait()
		if got := serveGET(e, "/readyz").Code; got != http.StatusOK {
			t.Fatalf("GET /readyz after the first read = %d, want 200", got)
		}
		time.Sleep(testTTL)
		synctest.Wait()
		if got := serveGET(blocked.e, "/readyz").Code; got != http.StatusServiceUnavailable {
			t.Fatalf("GET /readyz on a candidate that cannot read the lock = %d, want 503", got)
		}
	})
}

func TestHealthzFailsOnlyForAStuckLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		const tolerance = healthTolerance
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases)
		time.Sleep(maxRetryWait)
		synctest.Wait()
		for _, cand := range []*candidate{a, b} {
			if rec := serveGET(cand.e, "/healthz"); rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
				t.Fatalf("%s: GET /healthz = %d %q, want 200 ok", cand.id, rec.Code, rec.Body)
			}
		}
		// a's election loop hangs in a request that ignores its timeout.
		a.stall.Store(int64(testTTL + 2*tolerance))
		begin := time.Now()
		for serveGET(a.e, "/healthz").Code == http.StatusOK {
			if time.Since(begin) > testTTL+2*tolerance {
				t.Fatal("GET /healthz still passes on a leader stuck past its lease and tolerance")
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		if since := time.Since(begin); since < testTTL+tolerance-maxRetryWait {
			t.Fatalf("GET /healthz failed %s into the stall, before lease + tolerance (%s)", since, testTTL+tolerance)
		}
		rec := serveGET(a.e, "/healthz")
		if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "lease was last renewed") {
			t.Fatalf("GET /healthz = %d %q", rec.Code, rec.Body)
		}
		// The follower, which took over meanwhile, is healthy.
		if rec := serveGET(b.e, "/healthz"); rec.Code != http.StatusOK {
			t.Fatalf("follower GET /healthz = %d, want 200", rec.Code)
		}
	})
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e, err := New(testElection, WithClient(fake.NewClientset()), WithID("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/leader", "/healthz", "/readyz", "/nope"} {
		rec := serveGET(e, path)
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s headers %v, want nosniff and no-store", path, rec.Header())
		}
	}
	rec := serveGET(e, "/<script>alert(1)</script>")
	if strings.Contains(rec.Body.String(), "script") {
		t.Errorf("404 body reflects the request: %q", rec.Body)
	}
}

// eventWriter is a ResponseWriter for streaming handlers: it keeps what was
// flushed, safely for a concurrent reader.
type eventWriter struct {
	mu     sync.Mutex
	header http.Header
	buf    strings.Builder
	events []string
}

func (w *eventWriter) Header() http.Header { return w.header }
func (w *eventWriter) WriteHeader(int)     {}
func (w *eventWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
func (w *eventWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range strings.SplitAfter(w.buf.String(), "\n\n") {
		if ev != "" {
			w.events = append(w.events, strings.TrimSuffix(ev, "\n\n"))
		}
	}
	w.buf.Reset()
}
func (w *eventWriter) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := w.events
	w.events = nil
	return ev
}

func TestWatchStreamsLeadershipChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases)
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases)
		time.Sleep(maxRetryWait)
		synctest.Wait()

		w := &eventWriter{header: http.Header{}}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() {
			defer close(served)
			b.e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/watch", nil).WithContext(ctx))
		}()
		synctest.Wait()
		if ct := w.Header().Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type = %q, want text/event-stream", ct)
		}
		decode := func(ev string) Status {
			t.Helper()
			var s Status
			if !strings.HasPrefix(ev, "data: ") || json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &s) != nil {
				t.Fatalf("bad event %q", ev)
			}
			return s
		}
		first := w.take()
		if len(first) != 1 {
			t.Fatalf("got %d initial events, want the current status: %q", len(first), first)
		}
		if s := decode(first[0]); s.IsLeader || s.Leader != "a" {
			t.Fatalf("initial event %+v, want follower of a", s)
		}

		// Renewals are not events; a keep-alive comment comes after 15s.
		time.Sleep(keepAliveInterval + time.Second)
		synctest.Wait()
		if got := w.take(); !slices.Equal(got, []string{": keep-alive"}) {
			t.Fatalf("events on a quiet stream = %q, want one keep-alive", got)
		}

		a.stop(t)
		waitLeader(t, testTTL, b)
		synctest.Wait()
		var got []Status
		for _, ev := range w.take() {
			got = append(got, decode(ev))
		}
		if len(got) == 0 || !got[len(got)-1].IsLeader || got[len(got)-1].Leader != "b" {
			t.Fatalf("events after a's release = %+v, want to end with b leading", got)
		}
		cancel()
		<-served // the handler returns when the client goes away
	})
}

func TestResignEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := electortest.NewCluster()
		a := start(t, c, "a", LockLeases, WithResignEndpoint(true))
		waitLeader(t, testTTL, a)
		b := start(t, c, "b", LockLeases, WithResignEndpoint(true))
		time.Sleep(maxRetryWait)
		synctest.Wait()
		post := func(e *Elector, remote, query string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/resign"+query, nil)
			req.RemoteAddr = remote
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			return rec
		}
		for _, tc := range []struct {
			name, remote, query string
			code                int
		}{
			{"remote client", "10.0.0.7:5555", "", http.StatusForbidden},
			{"bad cooldown", "127.0.0.1:5555", "?cooldown=<b>soon</b>", http.StatusBadRequest},
			{"negative cooldown", "127.0.0.1:5555", "?cooldown=-1s", http.StatusBadRequest},
			{"huge cooldown", "127.0.0.1:5555", "?cooldown=9999h", http.StatusBadRequest},
		} {
			rec := post(a.e, tc.remote, tc.query)
			if rec.Code != tc.code || strings.Contains(rec.Body.String(), "<b>") {
				t.Errorf("%s: POST /resign = %d %q, want %d without reflecting input", tc.name, rec.Code, rec.Body, tc.code)
			}
		}
		if !a.e.Status().IsLeader {
			t.Fatal("a refused resign request changed leadership")
		}
		if rec := post(b.e, "[::1]:5555", ""); rec.Code != http.StatusConflict {
			t.Fatalf("follower POST /resign = %d, want 409", rec.Code)
		}
		rec := post(a.e, "127.0.0.1:5555", "?cooldown=30s")
		if rec.Code != http.StatusOK {
			t.Fatalf("POST /resign = %d %q, want 200", rec.Code, rec.Body)
		}
		waitLeader(t, testTTL, a, b)
		if got := leaders(a, b); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("leaders after resign = %v, want [b]", got)
		}
	})
}

func TestResignEndpointOffByDefault(t *testing.T) {
	e, err := New(testElection, WithClient(fake.NewClientset()))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/resign", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("POST /resign without WithResignEndpoint = %d, want 404", rec.Code)
	}
}
