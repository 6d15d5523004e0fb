package elector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-elector/elector/internal/fakekube"
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
		c := fakekube.NewCluster()
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
			// Exactly the four documented fields, with these types.
			var raw map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			want := map[string]any{
				"is_leader": cand == leader,
				"leader":    leader.id,
				"node":      cand.id,
				"timestamp": time.Now().UTC().Format(time.RFC3339),
			}
			if diff := cmp.Diff(want, raw); diff != "" {
				t.Errorf("GET / on %s (-want +got):\n%s", cand.id, diff)
			}
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
	want := `{"is_leader":true,"leader":"k8s-elector-74c54b485f-hgf9z","node":"k8s-elector-74c54b485f-hgf9z","timestamp":"2019-05-02T18:29:26Z"}`
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
