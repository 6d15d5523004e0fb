package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetryTimes(t *testing.T) {
	for _, tc := range []struct {
		ttl                   time.Duration
		retry, maxWait, settl time.Duration
	}{
		// RP = TTL/6; the longest wait is RP + 1.2·RP; settle is RP, at
		// least 1 s.
		{3 * time.Second, 500 * time.Millisecond, 1100 * time.Millisecond, time.Second},
		{6 * time.Second, time.Second, 2200 * time.Millisecond, time.Second},
		{10 * time.Second, 1666666666, 1666666666 + 1999999999, 1666666666},
		{60 * time.Second, 10 * time.Second, 22 * time.Second, 10 * time.Second},
	} {
		if got := retryPeriod(tc.ttl); got != tc.retry {
			t.Errorf("retryPeriod(%s): got %s, want %s", tc.ttl, got, tc.retry)
		}
		if got := maxRetryWait(tc.ttl); got != tc.maxWait {
			t.Errorf("maxRetryWait(%s): got %s, want %s", tc.ttl, got, tc.maxWait)
		}
		if got := settle(tc.ttl); got != tc.settl {
			t.Errorf("settle(%s): got %s, want %s", tc.ttl, got, tc.settl)
		}
	}
}

func TestSteadyOf(t *testing.T) {
	type verbs = map[string]float64
	// The API server renews its own leases: 2 GETs a minute, and one
	// watch is open without any elector.
	baseline := rates{verbs: verbs{"GET": 2}}
	alone := window{rates: rates{verbs: verbs{"GET": 2, "PUT": 6}, conflicts: 0.5}, watches: 2}
	all := window{rates: rates{verbs: verbs{"GET": 4, "PUT": 6, "WATCH": 1}, conflicts: 2.5}, watches: 4}
	want := steady{
		// alone − baseline
		leader: rates{verbs: verbs{"GET": 0, "PUT": 6}, conflicts: 0.5},
		// (all − alone) / 2
		follower: rates{verbs: verbs{"GET": 1, "PUT": 0, "WATCH": 0.5}, conflicts: 1},
		// all − baseline
		fleet: rates{verbs: verbs{"GET": 2, "PUT": 6, "WATCH": 1}, conflicts: 2.5},
		// (4 − 1) / 3
		watches: 1,
	}
	got := steadyOf(baseline, 1, alone, all)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(steady{}, rates{})); diff != "" {
		t.Errorf("steadyOf (-want +got):\n%s", diff)
	}
}

func TestBeyondSteady(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s0 := scrape{at: t0, counts: map[string]float64{"GET": 100, "PUT": 50}}
	s1 := scrape{at: t0.Add(30 * time.Second), counts: map[string]float64{"GET": 140, "PUT": 70}, conflicts: 10}
	// Over half a minute the steady rate accounts for 30 GETs, 12 PUTs and
	// 6 conflicts; the handover made the rest.
	rate := rates{verbs: map[string]float64{"GET": 60, "PUT": 24}, conflicts: 12}
	want := rates{verbs: map[string]float64{"GET": 10, "PUT": 8}, conflicts: 4}
	if diff := cmp.Diff(want, beyondSteady(s0, s1, rate), cmpRates); diff != "" {
		t.Errorf("beyondSteady (-want +got):\n%s", diff)
	}
}
