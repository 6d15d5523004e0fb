package history

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// builder makes synthetic histories: every sample takes 1ms unless said
// otherwise, and a leader's valid_until lies 5.88s after the request.
type builder struct{ h History }

func (b *builder) add(s Sample) *builder {
	b.h.Samples = append(b.h.Samples, s)
	return b
}

// lead adds leading answers of id every 15ms in [from, to] with token uid/n.
func (b *builder) lead(id string, from, to int, uid string, n int64) *builder {
	for ms := from; ms <= to; ms += 15 {
		b.add(leading(id, ms, ms+1, uid, n, ms+5880))
	}
	return b
}

// follow adds non-leading answers of id every 15ms in [from, to].
func (b *builder) follow(id string, from, to int, leader, uid string, n int64) *builder {
	for ms := from; ms <= to; ms += 15 {
		b.add(Sample{Elector: id, Start: at(ms), End: at(ms + 1),
			Status: fleet.Status{Node: id, Leader: leader, LockUID: uid, LeaderTransitions: int(n)}})
	}
	return b
}

// refused adds failed polls of id every 15ms in [from, to], as of a killed
// process.
func (b *builder) refused(id string, from, to int) *builder {
	for ms := from; ms <= to; ms += 15 {
		b.add(failed(id, ms, ms+1))
	}
	return b
}

func leading(id string, start, end int, uid string, n int64, validUntil int) Sample {
	return Sample{Elector: id, Start: at(start), End: at(end), Status: fleet.Status{
		IsLeader: true, Node: id, Leader: id, LockUID: uid, LeaderTransitions: int(n), ValidUntil: at(validUntil)}}
}

func failed(id string, start, end int) Sample {
	return Sample{Elector: id, Start: at(start), End: at(end), Err: context.DeadlineExceeded}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		name string
		h    *builder
		want int
	}{
		{"clean handover after expiry", new(builder).
			lead("a", 0, 1000, "u", 1).follow("b", 0, 7000, "a", "u", 1).
			lead("b", 7010, 8000, "u", 2), 0},
		{"two leaders sampled at the same time", new(builder).
			lead("a", 0, 1000, "u", 1).lead("b", 500, 1500, "u", 2), 1},
		// b's one answer falls between two of a's: a led throughout.
		{"a leader between another's samples", new(builder).
			lead("a", 0, 30, "u", 1).add(leading("b", 16, 17, "u", 2, 6000)), 1},
		// An answer computed before a SIGSTOP and delivered after the
		// SIGCONT speaks only until its valid_until.
		{"late answer bounded by valid_until", new(builder).
			add(leading("a", 1000, 9000, "u", 1, 6000)).lead("b", 7000, 9000, "u", 2), 0},
		{"late answer whose valid_until is too late", new(builder).
			add(leading("a", 1000, 9000, "u", 1, 9500)).lead("b", 7000, 9000, "u", 2), 1},
		// An error ends a run: nothing is known of a during its pause.
		{"error ends a run", new(builder).
			lead("a", 0, 100, "u", 1).add(failed("a", 115, 5000)).
			lead("b", 3000, 4000, "u", 2), 0},
		{"not leading ends a run", new(builder).
			lead("a", 0, 100, "u", 1).follow("a", 115, 115, "", "u", 1).lead("a", 5000, 5100, "u", 3).
			lead("b", 3000, 4000, "u", 2), 0},
		{"one elector with itself", new(builder).
			lead("a", 0, 100, "u", 1).lead("a", 100, 200, "u", 1), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.h.h.Overlaps()
			if len(got) != tt.want {
				t.Errorf("got %d overlaps %v, want %d", len(got), got, tt.want)
			}
		})
	}
}

func TestOverlapSpansTheCommonTime(t *testing.T) {
	h := new(builder).lead("a", 0, 1000, "u", 1).lead("b", 500, 1500, "u", 2).h
	o := h.Overlaps()
	if len(o) != 1 {
		t.Fatalf("got %d overlaps, want 1", len(o))
	}
	if !o[0].From.Equal(at(500)) || !o[0].To.Equal(at(991)) {
		t.Errorf("got overlap from %s to %s, want from %s to %s", stamp(o[0].From), stamp(o[0].To), stamp(at(500)), stamp(at(991)))
	}
	if !strings.Contains(o[0].String(), "two leaders") {
		t.Errorf("got %q, want it to say two leaders", o[0])
	}
}

func TestRunsBreakOnTokenChange(t *testing.T) {
	h := new(builder).lead("a", 0, 100, "u", 1).lead("a", 115, 200, "u", 2).h
	runs := h.Runs()
	if len(runs) != 2 {
		t.Fatalf("got %d runs %v, want 2", len(runs), runs)
	}
	if runs[0].Token.Transitions != 1 || runs[1].Token.Transitions != 2 {
		t.Errorf("got tokens %s, %s; want u/1, u/2", runs[0].Token, runs[1].Token)
	}
}

func TestBadClaims(t *testing.T) {
	noValidUntil := leading("a", 0, 1, "u", 1, 0)
	noValidUntil.Status.ValidUntil = time.Time{}
	otherLeader := leading("a", 0, 1, "u", 1, 5000)
	otherLeader.Status.Leader = "b"
	noUID := leading("a", 0, 1, "", 1, 5000)
	tests := []struct {
		name string
		s    Sample
		want string
	}{
		{"valid", leading("a", 0, 1, "u", 1, 5880), ""},
		{"valid_until cut to milliseconds", leading("a", 10, 11, "u", 1, 9), ""},
		{"no valid_until", noValidUntil, "without valid_until"},
		{"valid_until before the request", leading("a", 1000, 1001, "u", 1, 900), "already past"},
		{"names another leader", otherLeader, `leader "b"`},
		{"no lock UID", noUID, "without lock_uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := History{Samples: []Sample{tt.s}}.BadClaims()
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("got %v, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("got %v, want one saying %q", got, tt.want)
			}
		})
	}
}

func TestTokenViolations(t *testing.T) {
	tests := []struct {
		name string
		h    *builder
		want string
	}{
		{"increasing", new(builder).lead("a", 0, 100, "u", 1).lead("b", 7000, 7100, "u", 2).lead("a", 14000, 14100, "u", 3), ""},
		{"same leader again", new(builder).lead("a", 0, 100, "u", 1).lead("a", 7000, 7100, "u", 1), ""},
		{"new epoch", new(builder).lead("a", 0, 100, "u", 5).lead("b", 7000, 7100, "v", 0), ""},
		{"two electors one token", new(builder).lead("a", 0, 100, "u", 1).lead("b", 7000, 7100, "u", 1), "one token"},
		{"token went down", new(builder).lead("a", 0, 100, "u", 2).lead("b", 7000, 7100, "u", 1), "went down"},
		{"epoch came back", new(builder).lead("a", 0, 100, "u", 1).lead("b", 7000, 7100, "v", 0).lead("c", 14000, 14100, "u", 2), "came back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.h.h.TokenViolations()
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("got %v, want none", got)
			case tt.want != "" && (len(got) == 0 || !strings.Contains(got[0], tt.want)):
				t.Errorf("got %v, want one saying %q", got, tt.want)
			}
		})
	}
}

func TestStore(t *testing.T) {
	s := NewStore()
	steps := []struct {
		elector string
		tok     Token
		want    bool
	}{
		{"a", Token{"u", 1}, true},
		{"a", Token{"u", 1}, true}, // the same leader again
		{"b", Token{"u", 2}, true},
		{"a", Token{"u", 1}, false}, // stale
		{"c", Token{"v", 0}, true},  // a new epoch
		{"b", Token{"u", 7}, false}, // an old epoch
	}
	for i, st := range steps {
		if got := s.Write(st.elector, st.tok); got != st.want {
			t.Errorf("step %d: Write(%s, %s) = %v, want %v", i, st.elector, st.tok, got, st.want)
		}
	}
	if got := len(s.Writes()); got != len(steps) {
		t.Errorf("got %d writes logged, want %d", got, len(steps))
	}
}

func TestStaleWrites(t *testing.T) {
	base := func() History {
		return new(builder).lead("a", 0, 990, "u", 1).lead("b", 1000, 2000, "u", 2).h
	}
	w := func(id string, ms int, n int64, ok bool) Write {
		return Write{Elector: id, Token: Token{"u", n}, At: at(ms), Accepted: ok}
	}

	h := base()
	h.Writes = []Write{w("a", 500, 1, true), w("b", 1500, 2, true)}
	if acc, rej := h.StaleWrites(); len(acc) != 0 || len(rej) != 0 {
		t.Errorf("clean history: got %v accepted and %v rejected stale writes, want none", acc, rej)
	}

	// a writes after b answered is_leader with a newer token, before b
	// wrote: the store cannot tell, the check must.
	h = base()
	h.Writes = []Write{w("a", 500, 1, true), w("a", 1010, 1, true), w("b", 1500, 2, true)}
	acc, _ := h.StaleWrites()
	if len(acc) != 1 || acc[0].Write.Elector != "a" || acc[0].Newer.Elector != "b" {
		t.Fatalf("got %v, want a's write at 1.010s flagged as stale", acc)
	}
	if !strings.Contains(acc[0].String(), "store accepted a's write") {
		t.Errorf("got %q", acc[0])
	}

	h = base()
	h.Writes = []Write{w("b", 1500, 2, true), w("a", 1600, 1, false)}
	if acc, rej := h.StaleWrites(); len(acc) != 0 || len(rej) != 1 {
		t.Errorf("got %v accepted and %v rejected, want one rejected", acc, rej)
	}
	if v := h.Violations(); len(v) != 0 {
		t.Errorf("Violations() = %v, want none: a rejected write is fencing at work", v)
	}
}

func TestTimeToOneLeader(t *testing.T) {
	h := new(builder).
		lead("a", 0, 1000, "u", 1).refused("a", 1015, 9000).
		follow("b", 0, 7990, "a", "u", 1).lead("b", 8005, 9000, "u", 2).
		follow("c", 0, 9000, "a", "u", 1).h
	got, ok := h.TimeToOneLeader(at(1000))
	if !ok || got != 7006*time.Millisecond {
		t.Errorf("TimeToOneLeader(1s) = %s, %v; want 7.006s, true", got, ok)
	}
	// Answers to requests sent before the heal do not count.
	if got, ok := h.TimeToOneLeader(at(1001)); !ok || got != 7005*time.Millisecond {
		t.Errorf("TimeToOneLeader(1.001s) = %s, %v; want 7.005s, true", got, ok)
	}
	if _, ok := new(builder).follow("a", 0, 1000, "", "u", 0).h.TimeToOneLeader(at(0)); ok {
		t.Error("a history without a leader reports one")
	}
	two := new(builder).lead("a", 0, 100, "u", 1).lead("b", 0, 100, "u", 2).h
	if _, ok := two.TimeToOneLeader(at(10)); ok {
		t.Error("two leaders throughout count as one")
	}
}

func TestViolationsOfACleanAndABadHistory(t *testing.T) {
	clean := new(builder).lead("a", 0, 1000, "u", 1).follow("b", 0, 8000, "a", "u", 1).lead("b", 7500, 8000, "u", 2).h
	if v := clean.Violations(); len(v) != 0 {
		t.Errorf("clean history: %v", v)
	}
	bad := new(builder).lead("a", 0, 1000, "u", 1).lead("b", 500, 1500, "u", 1).h
	v := bad.Violations()
	if len(v) != 2 || !strings.HasPrefix(v[0], "invariant (a)") || !strings.HasPrefix(v[1], "invariant (b)") {
		t.Errorf("got %q, want an overlap and a shared token", v)
	}
	if tl := bad.Timeline(at(0), at(2000)); !strings.Contains(tl, "is_leader=true") || strings.Count(tl, "\n") != 2 {
		t.Errorf("Timeline:\n%s\nwant one line per elector", tl)
	}
}

func TestStackTraces(t *testing.T) {
	log := strings.Join([]string{
		`{"level":"info","msg":"became leader"}`,
		`{"level":"error","msg":"lock request failed; retrying","err":"panic: not really"}`,
		`panic: runtime error: invalid memory address or nil pointer dereference`,
		`goroutine 42 [running]:`,
		`fatal error: concurrent map writes`,
	}, "\n")
	got := StackTraces(log)
	if len(got) != 3 {
		t.Errorf("got %q, want the panic, goroutine and fatal error lines", got)
	}
	if got := StackTraces(`{"msg":"goroutine 1 [running] in a message"}`); len(got) != 0 {
		t.Errorf("got %q from a log line, want none", got)
	}
}

// fakeElector is a Source whose answers the test sets.
type fakeElector struct {
	mu  sync.Mutex
	st  fleet.Status
	err error
}

func (f *fakeElector) set(st fleet.Status, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st, f.err = st, err
}

func (f *fakeElector) status(context.Context) (fleet.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

func TestRecorderPollsAndWritesOnlyWhileValid(t *testing.T) {
	a, b := &fakeElector{}, &fakeElector{}
	a.set(fleet.Status{IsLeader: true, Node: "a", Leader: "a", LockUID: "u", LeaderTransitions: 1,
		ValidUntil: time.Now().Add(time.Hour)}, nil)
	b.set(fleet.Status{}, errors.New("connection refused"))
	r := NewRecorder()
	r.Add("a", a.status)
	r.Add("b", b.status)
	waitFor(t, func() bool { _, ok := r.Latest("b"); return len(r.Snapshot().Writes) >= 3 && ok })

	// A leader whose valid_until has passed gets no write through.
	a.set(fleet.Status{IsLeader: true, Node: "a", Leader: "a", LockUID: "u", LeaderTransitions: 1,
		ValidUntil: time.Now().Add(-time.Second)}, nil)
	mark := time.Now()
	waitFor(t, func() bool { s, _ := r.Latest("a"); return s.Start.After(mark) })
	writes := len(r.Snapshot().Writes)
	time.Sleep(5 * DefaultInterval)
	h := r.Stop()
	if got := len(h.Writes); got != writes {
		t.Errorf("got %d writes after valid_until had passed, want none", got-writes)
	}
	if len(h.Of("a")) < 5 || len(h.Of("b")) < 5 {
		t.Errorf("got %d and %d samples, want polls every %s", len(h.Of("a")), len(h.Of("b")), DefaultInterval)
	}
	for _, s := range h.Of("b") {
		if s.OK() || s.End.Before(s.Start) {
			t.Fatalf("b's sample %+v, want an error with End after Start", s)
		}
	}
	if n := len(r.Stop().Samples); n != len(h.Samples) {
		t.Errorf("samples recorded after Stop: %d, then %d", len(h.Samples), n)
	}
	// The stale claim is a broken contract, found by the checks.
	if v := h.BadClaims(); len(v) == 0 {
		t.Error("a leading answer with valid_until in the past was not flagged")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
