package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func TestOrDash(t *testing.T) {
	for in, want := range map[string]string{"": "-", "elector-1": "elector-1", " ": " "} {
		if got := orDash(in); got != want {
			t.Errorf("orDash(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestTable(t *testing.T) {
	d := &demo{
		electors: []*fleet.Elector{
			{ID: "elector-1", Addr: "127.0.0.1:40001"},
			{ID: "elector-2", Addr: "127.0.0.1:40002"},
			{ID: "elector-3", Addr: "127.0.0.1:40003"},
			{ID: "elector-4", Addr: "127.0.0.1:40004"},
		},
		down: map[string]string{"elector-2": "killed"},
	}
	var leader, follower, lost fleet.Status
	leader.IsLeader, leader.Leader, leader.LeaderTransitions = true, "elector-1", 4
	follower.Leader, follower.LeaderTransitions = "elector-1", 4
	lost.LeaderTransitions = 5 // knows no leader
	statuses := map[string]fleet.Status{"elector-1": leader, "elector-3": follower, "elector-4": lost}
	// elector-2 was killed and does not answer; a killed one that answers
	// again shows its status.
	want := []string{
		"ELECTOR      HTTP                   IS_LEADER  LEADER       TRANSITIONS",
		"elector-1    127.0.0.1:40001        true       elector-1    4",
		"elector-2    127.0.0.1:40002        killed",
		"elector-3    127.0.0.1:40003        false      elector-1    4",
		"elector-4    127.0.0.1:40004        false      -            5",
		"",
	}
	if diff := cmp.Diff(want, strings.Split(d.table(statuses), "\n")); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	delete(d.down, "elector-2")
	if got, want := strings.Split(d.table(statuses), "\n")[2], "elector-2    127.0.0.1:40002        starting"; got != want {
		t.Errorf("a restarted elector that does not answer yet: got %q, want %q", got, want)
	}
	statuses["elector-2"] = follower
	d.down["elector-2"] = "killed"
	if got, want := strings.Split(d.table(statuses), "\n")[2], "elector-2    127.0.0.1:40002        false      elector-1    4"; got != want {
		t.Errorf("a killed elector that answers: got %q, want %q", got, want)
	}
}

func TestEvents(t *testing.T) {
	var out strings.Builder
	d := &demo{out: &out}
	for i := range 14 {
		d.event("event %d of %s", i+1, "the demo")
	}
	// Not live: every event is printed as it happens, and the last 12 kept.
	stamp := `\d\d:\d\d:\d\d\.\d\d\d  `
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 14 {
		t.Fatalf("printed %d lines, want 14:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		if re := regexp.MustCompile("^" + stamp + fmt.Sprintf("event %d of the demo$", i+1)); !re.MatchString(l) {
			t.Errorf("line %d: got %q, want it to match %s", i+1, l, re)
		}
	}
	if len(d.events) != 12 {
		t.Fatalf("kept %d events, want 12", len(d.events))
	}
	for i, e := range d.events {
		if want := fmt.Sprintf("event %d of the demo", i+3); !strings.HasSuffix(e, "  "+want) {
			t.Errorf("event %d kept: got %q, want %q", i, e, want)
		}
	}

	// Live, the events are drawn with the table, not printed.
	out.Reset()
	d.live = true
	d.event("quiet")
	if out.Len() != 0 {
		t.Errorf("live: an event printed %q, want nothing", out.String())
	}
}

func TestDraw(t *testing.T) {
	var out strings.Builder
	d := &demo{out: &out, events: []string{"12:00:00.000  one", "12:00:01.000  two"}}
	d.draw("TABLE\n")
	if got := out.String(); got != "TABLE\n" {
		t.Errorf("not live: got %q, want the table alone", got)
	}
	out.Reset()
	d.live = true
	d.draw("TABLE\n")
	re := regexp.MustCompile(`^\x1b\[H\x1b\[2Jk8s-elector demo \(Ctrl-C stops everything\)   \d\d:\d\d:\d\d\n\nTABLE\n\n12:00:00.000  one\n12:00:01.000  two\n$`)
	if got := out.String(); !re.MatchString(got) {
		t.Errorf("live: got %q, want it to match %s", got, re)
	}
}
