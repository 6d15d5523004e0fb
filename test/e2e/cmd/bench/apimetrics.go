package main

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// lockResource is the resource of the lock type the bench runs (leases, the
// default): the only requests it counts.
const lockResource = "leases"

// rates are API requests per minute on lockResource.
type rates struct {
	verbs     map[string]float64 // by verb (GET, LIST, WATCH, CREATE, UPDATE, ...)
	conflicts float64            // of all verbs, answered 409 Conflict
}

func (r rates) total() float64 {
	t := 0.0
	for _, v := range r.verbs {
		t += v
	}
	return t
}

// plus returns r + k·o.
func (r rates) plus(k float64, o rates) rates {
	s := rates{verbs: map[string]float64{}, conflicts: r.conflicts + k*o.conflicts}
	for v, n := range r.verbs {
		s.verbs[v] += n
	}
	for v, n := range o.verbs {
		s.verbs[v] += k * n
	}
	return s
}

// times returns k·r.
func (r rates) times(k float64) rates { return rates{}.plus(k, r) }

func (r rates) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.1f/min", r.total())
	for _, v := range slices.Sorted(maps.Keys(r.verbs)) {
		fmt.Fprintf(&b, " %s %.1f", v, r.verbs[v])
	}
	if r.conflicts != 0 {
		fmt.Fprintf(&b, " (409: %.1f)", r.conflicts)
	}
	return b.String()
}

// counts formats r as counts rather than rates.
func (r rates) counts() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.0f requests", r.total())
	for _, v := range slices.Sorted(maps.Keys(r.verbs)) {
		fmt.Fprintf(&b, " %s %.0f", v, r.verbs[v])
	}
	fmt.Fprintf(&b, " (409: %.0f)", r.conflicts)
	return b.String()
}

// window is what one measurement window saw.
type window struct {
	rates   rates   // per minute over the window
	watches float64 // open WATCH requests on lockResource at the end
}

// scrape is the part of kube-apiserver's /metrics the bench reads.
type scrape struct {
	at        time.Time
	counts    map[string]float64 // apiserver_request_total by verb
	conflicts float64
	watches   float64 // apiserver_longrunning_requests{verb="WATCH"}
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrapeMetrics reads apiserver_request_total and apiserver_longrunning_requests
// for lockResource from the API server's own /metrics.
func (b *bench) scrapeMetrics(ctx context.Context) (scrape, error) {
	raw, err := b.client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	at := time.Now()
	if err != nil {
		return scrape{at: at, counts: map[string]float64{}}, fmt.Errorf("GET /metrics from the API server: %w", err)
	}
	return parseMetrics(raw, at)
}

// parseMetrics reads the figures of a scrape taken at at from the text of
// /metrics.
func parseMetrics(raw []byte, at time.Time) (scrape, error) {
	s := scrape{at: at, counts: map[string]float64{}}
	seen := false
	for line := range strings.Lines(string(raw)) {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || (name != "apiserver_request_total" && name != "apiserver_longrunning_requests") {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			continue
		}
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(rest[:end], -1) {
			labels[m[1]] = m[2]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+1:]), 64)
		if err != nil || labels["resource"] != lockResource || labels["subresource"] != "" {
			continue
		}
		switch name {
		case "apiserver_request_total":
			seen = true
			s.counts[labels["verb"]] += v
			if labels["code"] == "409" {
				s.conflicts += v
			}
		case "apiserver_longrunning_requests":
			if labels["verb"] == "WATCH" {
				s.watches += v
			}
		}
	}
	if !seen && !strings.Contains(string(raw), "apiserver_request_total") {
		return s, fmt.Errorf("the API server's /metrics has no apiserver_request_total")
	}
	return s, nil
}

// measureWindow returns the API requests per minute on lockResource over d,
// from two scrapes d apart.
func (b *bench) measureWindow(ctx context.Context, d time.Duration) (window, error) {
	s0, err := b.scrapeMetrics(ctx)
	if err != nil {
		return window{}, err
	}
	if err := sleep(ctx, time.Until(s0.at.Add(d))); err != nil {
		return window{}, err
	}
	s1, err := b.scrapeMetrics(ctx)
	if err != nil {
		return window{}, err
	}
	return window{rates: perMinute(s0, s1), watches: s1.watches}, nil
}

// perMinute returns the requests per minute between two scrapes.
func perMinute(s0, s1 scrape) rates {
	return counted(s0, s1).times(1 / s1.at.Sub(s0.at).Minutes())
}

// counted returns the requests between two scrapes.
func counted(s0, s1 scrape) rates {
	r := rates{verbs: map[string]float64{}, conflicts: s1.conflicts - s0.conflicts}
	for v, n := range s1.counts {
		if d := n - s0.counts[v]; d != 0 {
			r.verbs[v] = d
		}
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
