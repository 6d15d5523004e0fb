package main

import (
	"context"
	"testing"

	"k8s.io/client-go/rest"
)

// fakeCandidate leads or not.
type fakeCandidate bool

func (fakeCandidate) run(context.Context) error { return nil }
func (f fakeCandidate) leads() bool             { return bool(f) }

func TestLeading(t *testing.T) {
	elections := [][]candidate{
		{fakeCandidate(false), fakeCandidate(true), fakeCandidate(false)},
		{fakeCandidate(false), fakeCandidate(false), fakeCandidate(false)},
		{fakeCandidate(true), fakeCandidate(true), fakeCandidate(false)}, // two at a handover: one election
		{fakeCandidate(true)},
	}
	if got := leading(elections); got != 3 {
		t.Errorf("leading: got %d, want 3", got)
	}
}

func TestCandidateID(t *testing.T) {
	for _, tc := range []struct {
		j, n int
		want string
	}{
		{0, 1, "scaleworker"},
		{0, 3, "scaleworker-1"},
		{2, 3, "scaleworker-3"},
	} {
		if got := candidateID(tc.j, tc.n); got != tc.want {
			t.Errorf("candidateID(%d, %d): got %q, want %q", tc.j, tc.n, got, tc.want)
		}
	}
}

func TestOwnTransport(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	transport := func(c *rest.Config) any {
		rt, err := rest.TransportFor(c)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	if transport(cfg) != transport(rest.CopyConfig(cfg)) {
		t.Fatal("client-go no longer shares a transport among equal configs: the test's premise is gone")
	}
	if transport(ownTransport(cfg)) == transport(ownTransport(cfg)) {
		t.Error("two configs from ownTransport share a transport")
	}
	if cfg.Proxy != nil {
		t.Error("ownTransport changed the config it was given")
	}
}
