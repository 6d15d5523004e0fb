package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 3, "a\nb\nc"},
		{"a\nb\nc\n", 10, "a\nb\nc"},
		{"a\nb\nc\n\n\n", 1, "c"}, // trailing blank lines are not lines
		{"", 5, ""},
		{"a\nb\n", 0, ""},
	} {
		if got := tail(tc.s, tc.n); got != tc.want {
			t.Errorf("tail(%q, %d): got %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// testGroup returns a group of members that run no process, each already
// answering GET /.
func testGroup(t *testing.T, ids ...string) (*group, map[string]*member) {
	t.Helper()
	b := testBench()
	b.logw = &strings.Builder{}
	g := b.newGroup(context.Background(), modeWatch, "election", 3*time.Second)
	t.Cleanup(g.cancel)
	ms := map[string]*member{}
	for _, id := range ids {
		m := &member{e: &fleet.Elector{ID: id}, upAt: time.Now()}
		g.members = append(g.members, m)
		ms[id] = m
	}
	return g, ms
}

// status is a member's answer: whether it leads, and whom it names.
func status(isLeader bool, leader string) fleet.Update {
	var u fleet.Update
	u.IsLeader, u.Leader = isLeader, leader
	return u
}

func TestGroupUpdate(t *testing.T) {
	g, ms := testGroup(t, "a")
	a := ms["a"]
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, step := range []struct {
		isLeader bool
		at       time.Time
		since    time.Time // leaderSince after the update
	}{
		{false, t0, time.Time{}},
		{true, t0.Add(time.Second), t0.Add(time.Second)},         // became leader
		{true, t0.Add(2 * time.Second), t0.Add(time.Second)},     // still: unchanged
		{false, t0.Add(3 * time.Second), t0.Add(time.Second)},    // lost it: kept
		{true, t0.Add(4 * time.Second), t0.Add(4 * time.Second)}, // leader again
	} {
		changed := g.changed
		u := status(step.isLeader, "a")
		u.At = step.at
		g.update(a, u, nil)
		if !a.leaderSince.Equal(step.since) || a.cur.IsLeader != step.isLeader {
			t.Errorf("at %s: got is_leader=%v since %v, want %v since %v", step.at, a.cur.IsLeader, a.leaderSince, step.isLeader, step.since)
		}
		select {
		case <-changed:
		default:
			t.Errorf("at %s: changed was not closed", step.at)
		}
	}
	boom := errors.New("boom")
	g.update(a, fleet.Update{}, boom)
	if a.err != boom || !a.cur.IsLeader {
		t.Errorf("after an error: got err %v, is_leader %v, want %v and the status before", a.err, a.cur.IsLeader, boom)
	}
}

func TestGroupStable(t *testing.T) {
	boom := errors.New("GET / never answered")
	for _, tc := range []struct {
		name    string
		set     func(ms map[string]*member)
		leader  string // "" for none within the limit
		wantErr error  // if not a timeout
	}{
		{
			name: "all agree",
			set: func(ms map[string]*member) {
				ms["a"].cur, ms["b"].cur, ms["c"].cur = status(false, "b").Status, status(true, "b").Status, status(false, "b").Status
			},
			leader: "b",
		},
		{
			name: "one names another leader",
			set: func(ms map[string]*member) {
				ms["a"].cur, ms["b"].cur, ms["c"].cur = status(false, "b").Status, status(true, "b").Status, status(false, "a").Status
			},
		},
		{
			name: "one not up yet",
			set: func(ms map[string]*member) {
				ms["a"].cur, ms["b"].cur, ms["c"].cur = status(false, "b").Status, status(true, "b").Status, status(false, "b").Status
				ms["c"].upAt = time.Time{}
			},
		},
		{
			name: "nobody leads",
			set: func(ms map[string]*member) {
				ms["a"].cur, ms["b"].cur, ms["c"].cur = status(false, "b").Status, status(false, "b").Status, status(false, "b").Status
			},
		},
		{
			name: "a member the bench stopped does not count",
			set: func(ms map[string]*member) {
				ms["a"].cur, ms["b"].cur, ms["c"].cur = status(true, "a").Status, status(true, "b").Status, status(false, "b").Status
				ms["a"].stopping = true
				ms["a"].err = boom
			},
			leader: "b",
		},
		{
			name: "one that never answered fails the wait",
			set: func(ms map[string]*member) {
				ms["a"].cur, ms["b"].cur, ms["c"].cur = status(false, "b").Status, status(true, "b").Status, status(false, "b").Status
				ms["c"].err = boom
			},
			wantErr: boom,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, ms := testGroup(t, "a", "b", "c")
			tc.set(ms)
			l, err := g.stable(30 * time.Millisecond)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("got %v, want %v", err, tc.wantErr)
				}
			case tc.leader == "":
				want := "a leader that every elector agrees on: not within 30ms\n"
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("got %v, want an error that starts %q", err, want)
				}
			case err != nil:
				t.Errorf("got %v, want %s", err, tc.leader)
			case l != ms[tc.leader]:
				t.Errorf("got %s, want %s", l.e.ID, tc.leader)
			}
		})
	}
}

func TestGroupStableWakesOnUpdate(t *testing.T) {
	g, ms := testGroup(t, "a", "b")
	ms["a"].cur = status(true, "a").Status
	go func() {
		time.Sleep(20 * time.Millisecond)
		g.update(ms["b"], status(false, "a"), nil)
	}()
	l, err := g.stable(10 * time.Second)
	if err != nil || l != ms["a"] {
		t.Errorf("got %v, %v, want a", l, err)
	}
}

func TestGroupNewLeader(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g, ms := testGroup(t, "a", "b", "c")
	lead := func(id string, since time.Time) {
		ms[id].cur, ms[id].leaderSince = status(true, id).Status, since
	}
	lead("a", t0.Add(time.Second)) // the old leader, still claiming
	lead("b", t0)                  // led before since: not new
	m, at, err := g.newLeader(ms["a"], t0, 30*time.Millisecond, "another leader")
	if err == nil || !strings.HasPrefix(err.Error(), "another leader: not within 30ms") {
		t.Errorf("with only the old leader and an earlier one: got %v, %v, %v, want a timeout", m, at, err)
	}
	lead("c", t0.Add(2*time.Second))
	m, at, err = g.newLeader(ms["a"], t0, time.Second, "another leader")
	if err != nil || m != ms["c"] || !at.Equal(t0.Add(2*time.Second)) {
		t.Errorf("got %v, %v, %v, want c at %v", m, at, err, t0.Add(2*time.Second))
	}
}

func TestGroupDescribe(t *testing.T) {
	g, ms := testGroup(t, "a", "b")
	ms["a"].cur = status(true, "a").Status
	ms["b"].cur, ms["b"].upAt = status(false, "").Status, time.Time{}
	want := "  a: exited=false up=true is_leader=true leader=\"a\"\n" +
		"  b: exited=false up=false is_leader=false leader=\"\"\n"
	if got := g.describe(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
