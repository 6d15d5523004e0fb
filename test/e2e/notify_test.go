package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k8s-elector/elector/push"
	"github.com/k8s-elector/elector/test/e2e/internal/appstub"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
	"github.com/k8s-elector/elector/test/e2e/internal/history"
)

// Timing of the push scenarios (-notify-url, -status-file), from the
// suite's TTL of 6s.
const (
	// pushElection is the election of the push scenarios, each in a
	// namespace of its own.
	pushElection = "push"
	// handoverCount is how many times leadership changes hands in a
	// scenario; every termEvery-th handover is a SIGTERM of the leader,
	// after which a new elector joins, and the others are POST /resign.
	handoverCount = 20
	termEvery     = 5
	// resignCooldown keeps a leader that resigned out until another has
	// taken the lock; handoverPause, the time from one handover to the
	// next, is longer, so that two candidates are back by then.
	resignCooldown = 500 * time.Millisecond
	handoverPause  = 700 * time.Millisecond
	// A failed POST is retried after 500ms, then twice as long each time, up
	// to max(retry period, 500ms); at once if the status changes.
	notifyRetryMin = 500 * time.Millisecond
	// holdFor is how long the receiver holds every POST open, answering
	// nothing, as a blackholed endpoint would.
	holdFor = 5 * time.Second
	// holdSlack is what a loaded machine may add to the client's timeout
	// before the receiver sees the connection close, or to a backoff
	// timer.
	holdSlack = 500 * time.Millisecond
	// sendLatency bounds the time from the status a POST carries to its
	// arrival.
	sendLatency = 300 * time.Millisecond
)

var (
	// notifyTimeout is the POST timeout: the request timeout,
	// max(renew deadline / 2, 1s).
	notifyTimeout = max(renewDeadline/2, time.Second)
	// notifyRetryMax is the longest wait between retries of a POST.
	notifyRetryMax = max(retry, notifyRetryMin)
)

// pushFleet is a fault fleet whose leadership is handed over again and
// again, by POST /resign and by SIGTERM; an elector that exits is replaced
// by a new one, with a new ID, so that three run.
type pushFleet struct {
	*faultFleet
	prefix    string
	flags     func(id string) []string // what each new elector adds
	started   int
	alive     []*fleet.Elector
	handovers []handover
}

// handover is one change of leader the test made.
type handover struct {
	n        int
	from, to *fleet.Elector
	term     bool      // by SIGTERM; else by POST /resign
	at       time.Time // the SIGTERM or the POST /resign was sent
	exited   time.Time // with term: the old leader had exited
	joined   *fleet.Elector
}

func (h handover) how() string {
	if h.term {
		return "SIGTERM"
	}
	return "resign"
}

// newPushFleet starts three electors, prefix-0 to prefix-2, with
// -allow-resign and flags(id).
func newPushFleet(t *testing.T, prefix string, flags func(id string) []string) *pushFleet {
	t.Helper()
	p := &pushFleet{faultFleet: newFaultFleet(t, "leases"), prefix: prefix, flags: flags}
	for range 3 {
		p.join()
	}
	return p
}

// join starts a new elector.
func (p *pushFleet) join() *fleet.Elector {
	id := fmt.Sprintf("%s-%d", p.prefix, p.started)
	p.started++
	e := p.add(fleet.Config{
		Binary: binary, Election: pushElection, Namespace: p.ns, LockType: "leases", TTL: ttl,
		Extra: append([]string{"-allow-resign"}, p.flags(id)...),
	}, id, false)
	p.alive = append(p.alive, e)
	return e
}

// elector returns the elector id.
func (p *pushFleet) elector(id string) *fleet.Elector {
	for _, e := range p.electors {
		if e.ID == id {
			return e
		}
	}
	return nil
}

// run settles the fleet and makes n handovers, calling before(i) before
// the i-th.
func (p *pushFleet) run(n int, before func(i int)) {
	l := p.settle()
	for i := range n {
		if before != nil {
			before(i)
		}
		h := p.handOver(i, l, i%termEvery == termEvery-1)
		l = h.to
		time.Sleep(handoverPause)
	}
}

// handOver makes the leader l hand over, by SIGTERM (then a new elector
// joins) or by POST /resign, and waits for the next leader.
func (p *pushFleet) handOver(n int, l *fleet.Elector, term bool) handover {
	t := p.t
	t.Helper()
	h := handover{n: n, from: l, term: term}
	if term {
		h.at = p.mark("handover %d: SIGTERM %s", n, l.ID)
		if err := l.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	} else {
		h.at = p.mark("handover %d: POST /resign to %s", n, l.ID)
		resp, err := (&http.Client{Timeout: 2 * ttl}).Post("http://"+l.Addr+"/resign?cooldown="+resignCooldown.String(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /resign to %s: %s %s", l.ID, resp.Status, body)
		}
	}
	h.to = p.nextLeader(h, takeoverWithin+faultSlack)
	if term {
		code, err := l.Wait(timings.ShutdownBudget + deathSlack)
		if err != nil {
			t.Fatal(err)
		}
		h.exited = time.Now()
		if code != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0", l.ID, code)
		}
		p.alive = slices.DeleteFunc(p.alive, func(e *fleet.Elector) bool { return e == l })
		h.joined = p.join()
	}
	p.handovers = append(p.handovers, h)
	return h
}

// nextLeader waits up to limit for an elector other than h.from to be the
// only one that answers is_leader to a request sent after h.at.
func (p *pushFleet) nextLeader(h handover, limit time.Duration) *fleet.Elector {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var leaders []*fleet.Elector
		for _, e := range p.electors {
			if s, _ := p.rec.Latest(e.ID); s.Leading() && s.Start.After(h.at) {
				leaders = append(leaders, e)
			}
		}
		if len(leaders) == 1 && leaders[0] != h.from {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			var ids []string
			for _, e := range leaders {
				ids = append(ids, e.ID)
			}
			p.t.Fatalf("handover %d: no new leader within %s of %s's %s (leading: %v): the election waits", h.n, limit, h.from.ID, h.how(), ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkHandovers checks, over the recording, that every handover took
// less than takeoverWithin from the SIGTERM or the POST /resign to the next
// leader's first is_leader answer, and logs them, with what note says of
// each.
func (p *pushFleet) checkHandovers(h history.History, note func(handover) string) {
	t := p.t
	t.Helper()
	var lines []string
	var worst time.Duration
	for _, ho := range p.handovers {
		s, ok := firstLeadingAfter(h, ho.to.ID, ho.at)
		if !ok {
			t.Errorf("handover %d: %s never answered is_leader after %s's %s", ho.n, ho.to.ID, ho.from.ID, ho.how())
			continue
		}
		took := s.End.Sub(ho.at)
		worst = max(worst, took)
		if took > takeoverWithin {
			t.Errorf("handover %d: %s answered is_leader %s after %s's %s, want within %s", ho.n, ho.to.ID, took.Round(time.Millisecond), ho.from.ID, ho.how(), takeoverWithin)
		}
		line := fmt.Sprintf("%2d %-7s %s → %s in %s", ho.n, ho.how(), ho.from.ID, ho.to.ID, took.Round(time.Millisecond))
		if ho.term {
			line += fmt.Sprintf(", exited in %s", ho.exited.Sub(ho.at).Round(time.Millisecond))
		}
		if note != nil {
			line += note(ho)
		}
		lines = append(lines, line)
	}
	t.Logf("%d handovers, the slowest in %s:\n%s", len(p.handovers), worst.Round(time.Millisecond), strings.Join(lines, "\n"))
}

// statusKey is what the status JSON says of leadership: what Observe, and
// so every POST and every write of the status file, follows.
type statusKey struct {
	IsLeader    bool
	Leader      string
	UID         string
	Transitions int
}

func keyOf(s fleet.Status) statusKey {
	return statusKey{s.IsLeader, s.Leader, s.LockUID, s.LeaderTransitions}
}

func (k statusKey) String() string {
	return fmt.Sprintf("is_leader=%v leader=%q token=%s", k.IsLeader, k.Leader, history.Token{UID: k.UID, Transitions: int64(k.Transitions)})
}

// progress orders the states one elector goes through within one lock UID:
// the lock's transitions count, then, at one count, a holder before the
// release. Leading and not leading at one count are not ordered: a new
// leader answers is_leader false with itself as the holder for a moment
// between its write and its term, and again when it steps down.
func (k statusKey) progress() [2]int {
	p := [2]int{k.Transitions, 0}
	if k.Leader == "" {
		p[1] = 1
	}
	return p
}

func behind(a, b statusKey) bool { // a is older than b
	pa, pb := a.progress(), b.progress()
	return a.UID == b.UID && a.UID != "" && slices.Compare(pa[:], pb[:]) < 0
}

// quietStatuses reads GET / of every running elector at a moment when no
// POST or file write is under way: before and after the reads, done
// returns the same count.
func (p *pushFleet) quietStatuses(done func() int) map[string]fleet.Status {
	t := p.t
	t.Helper()
	for range 10 {
		before := done()
		out := map[string]fleet.Status{}
		for e, s := range poll(p.alive) {
			out[e.ID] = s
		}
		if len(out) != len(p.alive) {
			t.Fatalf("only %d of the %d running electors answered GET /", len(out), len(p.alive))
		}
		if done() == before {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the electors never stopped pushing their status")
	return nil
}

// TestNotify hands leadership over 20 times in a fleet of three electors
// with -notify-url, by POST /resign and by SIGTERM (a new elector joins
// after each), while a receiver records every POST, and holds every POST
// open for 5s over the last handovers, as a blackholed endpoint would. It
// checks that: every elector's sequence numbers grow by one with
// every POST, retries included, in the order they arrive; no POST is held
// open longer than the request timeout (and slack); a failed POST is
// retried after the backoff, at once if the status changed, and always
// with the status of the moment; the election does not wait: handovers
// during the hold are as quick as the others; and at the end, once the
// retries after the hold are done, every running elector's last POST says
// what its GET / says, and every elector that exited last said it was not
// leading.
func TestNotify(t *testing.T) {
	parallel(t)
	rc := appstub.NewReceiver()
	t.Cleanup(rc.Close) // after the electors are killed
	p := newPushFleet(t, "notify", func(string) []string { return []string{"-notify-url=" + rc.URL()} })
	var holdFrom, holdTo time.Time
	p.run(handoverCount, func(i int) {
		// The hold spans the last handovers, the last a SIGTERM: what the
		// electors say at the end reaches the receiver only by retries.
		if i == handoverCount-4 {
			holdFrom, holdTo = rc.Hold(holdFor)
			p.mark("the receiver holds every POST open for %s", holdFor)
		}
	})
	// The last changes are delivered by a retry after the hold.
	time.Sleep(time.Until(holdTo) + notifyRetryMax + holdSlack)
	statuses := p.quietStatuses(func() int {
		n := 0
		for _, post := range rc.Posts() {
			if post.Done {
				n++
			}
		}
		return n
	})
	posts := rc.Posts()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("every POST, in the order they arrived:\n%s", describePosts(posts))
		}
	})
	h := p.check()
	during := func(at time.Time) bool { return !at.Before(holdFrom) && at.Before(holdTo) }
	p.checkHandovers(h, func(ho handover) string {
		if during(ho.at) {
			return ", the receiver holding every POST"
		}
		return ""
	})

	byNode := map[string][]appstub.Post{}
	for _, post := range posts {
		switch {
		case post.BodyErr != nil:
			t.Errorf("a POST that arrived at %s: its body: %v", stamp(post.Arrived), post.BodyErr)
			continue
		case post.ContentType != "application/json":
			t.Errorf("%s's POST %s: Content-Type %q, want application/json", post.Status.Node, post.RawSeq, post.ContentType)
		case p.elector(post.Status.Node) == nil:
			t.Errorf("a POST names node %q, no elector of the fleet", post.Status.Node)
			continue
		}
		byNode[post.Status.Node] = append(byNode[post.Status.Node], post)
	}

	var held, gaveUp, retried int
	var longest, shortestGaveUp time.Duration
	for _, e := range p.electors {
		ps := byNode[e.ID]
		if len(ps) == 0 {
			t.Errorf("%s sent no POST", e.ID)
			continue
		}
		var term *handover
		for i := range p.handovers {
			if p.handovers[i].term && p.handovers[i].from == e {
				term = &p.handovers[i]
			}
		}
		samples := h.Of(e.ID)
		for i, post := range ps {
			// The sequence: 1, 2, 3, ... in the order of arrival.
			if post.Seq != uint64(i+1) {
				t.Errorf("%s's POST number %d carries %s %q, want %d (the one before: %s)", e.ID, i+1, push.SequenceHeader, post.RawSeq, i+1, prevSeq(ps, i))
			}
			// Held open no longer than the request timeout.
			if !post.Done {
				t.Errorf("%s's POST %d, held since %s, is still open", e.ID, post.Seq, stamp(post.Arrived))
				continue
			}
			if post.Held {
				held++
			}
			longest = max(longest, post.Open())
			if post.Open() > notifyTimeout+holdSlack {
				t.Errorf("%s held its POST %d open for %s, want at most its timeout %s (+%s slack)", e.ID, post.Seq, post.Open().Round(time.Millisecond), notifyTimeout, holdSlack)
			}
			if post.GaveUp {
				gaveUp++
				if shortestGaveUp == 0 || post.Open() < shortestGaveUp {
					shortestGaveUp = post.Open()
				}
				// An elector that exits cuts its last POSTs short at the end of
				// its shutdown budget.
				if post.Open() < notifyTimeout-250*time.Millisecond && (term == nil || post.Arrived.Before(term.at)) {
					t.Errorf("%s gave up its POST %d after %s, before its timeout %s", e.ID, post.Seq, post.Open().Round(time.Millisecond), notifyTimeout)
				}
			}
			// The status of the moment: never behind what GET / had said
			// before the POST was sent.
			for _, s := range samples {
				if s.OK() && s.End.Before(post.Arrived.Add(-sendLatency)) && behind(keyOf(post.Status), keyOf(s.Status)) {
					t.Errorf("%s's POST %d at %s says %s, behind its GET / at %s: %s", e.ID, post.Seq, stamp(post.Arrived),
						keyOf(post.Status), stamp(s.End), keyOf(s.Status))
					break
				}
			}
			// A retry of the same status comes after the backoff; a changed
			// one may come at once.
			if i == 0 || ps[i-1].Delivered() || term != nil && post.Arrived.After(term.at) {
				continue
			}
			prev := ps[i-1]
			if keyOf(prev.Status) != keyOf(post.Status) {
				continue
			}
			retried++
			// The receiver may see the connection close a little after the
			// client gave up: half the first backoff still tells a backoff
			// from none.
			if gap := post.Arrived.Sub(prev.Ended); gap < notifyRetryMin/2 || gap > notifyRetryMax+holdSlack {
				t.Errorf("%s retried its POST %d (%s) %s after POST %d failed, want after a backoff of %s to %s",
					e.ID, post.Seq, keyOf(post.Status), gap.Round(time.Millisecond), prev.Seq, notifyRetryMin, notifyRetryMax)
			}
		}

		// The end: the last POST of an elector that runs says what its GET /
		// says, and was delivered; that of one that exited, not leading.
		last := ps[len(ps)-1]
		if st, running := statuses[e.ID]; running {
			if keyOf(last.Status) != keyOf(st) || !last.Delivered() {
				t.Errorf("%s's last POST (%d, delivered %v) says %s; its GET / says %s", e.ID, last.Seq, last.Delivered(), keyOf(last.Status), keyOf(st))
			}
		} else if term != nil {
			if last.Status.IsLeader || last.Status.Leader == e.ID {
				t.Errorf("%s's last POST (%d), after its SIGTERM, says %s, want it not leading", e.ID, last.Seq, keyOf(last.Status))
			}
			if last.Arrived.After(term.exited) {
				t.Errorf("%s's last POST arrived at %s, after it had exited", e.ID, stamp(last.Arrived))
			}
		}
		// An elector that ran through the hold tried, and gave up.
		if startedBefore(e, p, holdFrom) && (term == nil || term.at.After(holdTo)) && !slices.ContainsFunc(ps, func(x appstub.Post) bool { return x.GaveUp }) {
			t.Errorf("%s ran through the hold, but gave up no POST", e.ID)
		}
	}
	if gaveUp == 0 || retried == 0 {
		t.Errorf("%d POSTs given up and %d retries of the same status: the hold tested nothing", gaveUp, retried)
	}
	t.Logf("%d POSTs from %d electors; %d arrived during the %s hold, %d given up by the elector (after %s at the soonest); %d retries of an unchanged status; the longest held open %s (timeout %s)",
		len(posts), len(byNode), held, holdFor, gaveUp, shortestGaveUp.Round(time.Millisecond), retried, longest.Round(time.Millisecond), notifyTimeout)
}

// startedBefore reports whether e was one of the fleet's electors before t:
// the first three, or one that joined after a handover before t.
func startedBefore(e *fleet.Elector, p *pushFleet, t time.Time) bool {
	for _, ho := range p.handovers {
		if ho.joined == e {
			return ho.exited.Before(t)
		}
	}
	return true
}

func prevSeq(ps []appstub.Post, i int) string {
	if i == 0 {
		return "none"
	}
	return ps[i-1].RawSeq
}

func describePosts(posts []appstub.Post) string {
	var b strings.Builder
	for _, p := range posts {
		fmt.Fprintf(&b, "%s %-9s seq %-3s %s held=%v open %s", stamp(p.Arrived), p.Status.Node, p.RawSeq, keyOf(p.Status), p.Held, p.Open().Round(time.Millisecond))
		switch {
		case !p.Done:
			b.WriteString(" still open")
		case p.GaveUp:
			b.WriteString(" given up by the client")
		default:
			fmt.Fprintf(&b, " answered %d", p.Code)
		}
		if p.BodyErr != nil {
			fmt.Fprintf(&b, " body: %v", p.BodyErr)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestStatusFile hands leadership over 20 times in a fleet of three
// electors with -status-file, as TestNotify does, while a reader opens and
// parses every elector's file every millisecond. It checks that: the file
// never reads partial, invalid or missing once written; it says is_leader
// false before the lock is released, at a resign as at a SIGTERM, so that
// no file says is_leader while another elector's file or GET / does; and
// at the end, every running elector's file says what its GET / says, and
// the file of every elector that exited says it was not leading.
func TestStatusFile(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	rd := appstub.ReadFiles(time.Millisecond)
	t.Cleanup(rd.Stop)
	paths := map[string]string{}
	p := newPushFleet(t, "file", func(id string) []string {
		paths[id] = filepath.Join(dir, id+".json")
		rd.Add(id, paths[id])
		return []string{"-status-file=" + paths[id]}
	})
	p.run(handoverCount, nil)
	time.Sleep(retry)
	statuses := p.quietStatuses(func() int {
		n := 0
		for id := range paths {
			n += len(contents(rd.Reads(id)))
		}
		return n
	})
	rd.Stop()
	h := p.check()
	iterations, maxGap := rd.Stats()

	// Every read, once the file is there, is one whole status of its
	// elector.
	var fileSamples []history.Sample
	reads, bad, writes := 0, 0, 0
	for _, e := range p.electors {
		rs := rd.Reads(e.ID)
		reads += len(rs)
		appeared := false
		var last appstub.Read
		for _, r := range rs {
			switch {
			case r.Absent && !appeared:
				continue
			case r.Absent:
				err := fmt.Errorf("no file at %s, after it was written", stamp(r.Start))
				bad++
				if bad <= 10 {
					t.Errorf("%s's status file: %v", e.ID, err)
				}
				continue
			case r.Err != nil || r.Status.Node != e.ID:
				bad++
				if bad <= 10 {
					t.Errorf("%s's status file read at %s: node %q: %v", e.ID, stamp(r.Start), r.Status.Node, r.Err)
				}
				continue
			}
			appeared, last = true, r
			s := history.Sample{Elector: e.ID + " (file)", Start: r.Start, End: r.End, Status: r.Status}
			// The file is written at changes, not at renewals: its
			// valid_until is that of its write. It claims leadership for as
			// long as it says is_leader.
			s.Status.ValidUntil = time.Time{}
			fileSamples = append(fileSamples, s)
		}
		if !appeared {
			t.Errorf("%s's status file was never read", e.ID)
			continue
		}
		writes += len(contents(rs))
		// A fresh read agrees with the reader's last.
		raw, err := os.ReadFile(paths[e.ID])
		if err != nil || !bytes.Equal(raw, last.Raw) {
			t.Errorf("%s's status file at the end: %q (%v); the reader's last read: %q", e.ID, raw, err, last.Raw)
		}
		if st, running := statuses[e.ID]; running {
			if keyOf(last.Status) != keyOf(st) {
				t.Errorf("%s's status file says %s at the end; its GET / says %s", e.ID, keyOf(last.Status), keyOf(st))
			}
		} else if last.Status.IsLeader || last.Status.Leader == e.ID {
			t.Errorf("%s exited, and its status file says %s, want it not leading", e.ID, keyOf(last.Status))
		}
	}
	if bad > 10 {
		t.Errorf("%d bad reads of the status files in all", bad)
	}
	t.Logf("the reader made %d rounds of every file (the longest gap between two %s), %d reads in all, and saw %d contents written; %d bad reads",
		iterations, maxGap.Round(time.Millisecond), reads, writes, bad)

	// No file says is_leader while another elector's file or GET / does:
	// a file is rewritten with is_leader false before its lock is released,
	// and written with is_leader true after it is acquired.
	merged := history.History{Begin: h.Begin, End: h.End, Samples: append(slices.Clone(h.Samples), fileSamples...)}
	slices.SortStableFunc(merged.Samples, func(a, b history.Sample) int { return a.End.Compare(b.End) })
	for _, o := range merged.Overlaps() {
		if a, b := o.A.Elector, o.B.Elector; electorOf(a) != electorOf(b) && (a != electorOf(a) || b != electorOf(b)) {
			t.Errorf("status files: %s", o)
		}
	}
	files := history.History{Samples: slices.Clone(fileSamples)}
	slices.SortStableFunc(files.Samples, func(a, b history.Sample) int { return a.End.Compare(b.End) })
	for _, v := range files.TokenViolations() {
		t.Errorf("status files: %s", v)
	}

	// At every handover: the old leader's file said is_leader false before
	// the new leader's GET / or file said is_leader true.
	p.checkHandovers(h, func(ho handover) string {
		old, ok := lastLeadingBefore(h, ho.from.ID, ho.at)
		if !ok {
			return ""
		}
		var lastTrue, firstFalse *appstub.Read
		rs := rd.Reads(ho.from.ID)
		for i, r := range rs {
			if r.Err == nil && !r.Absent && r.Status.IsLeader && r.Status.LeaderTransitions == old.Status.LeaderTransitions {
				lastTrue, firstFalse = &rs[i], nil
			} else if lastTrue != nil && firstFalse == nil && r.Err == nil && !r.Absent && !r.Status.IsLeader {
				firstFalse = &rs[i]
			}
		}
		newGet, ok := firstLeadingAfter(h, ho.to.ID, ho.at)
		newFile := firstLeadingRead(rd.Reads(ho.to.ID), ho.at)
		switch {
		case !ok || newFile == nil:
			t.Errorf("handover %d: %s's GET / or status file never said is_leader", ho.n, ho.to.ID)
			return ""
		case lastTrue == nil || firstFalse == nil:
			t.Errorf("handover %d: the reader never saw %s's status file say is_leader with token %s, then not", ho.n, ho.from.ID, old.Token())
			return ""
		case !lastTrue.Start.Before(newGet.End) || !lastTrue.Start.Before(newFile.End):
			t.Errorf("handover %d (%s): %s's status file still said is_leader at a read begun at %s, after %s had said is_leader (GET / by %s, its file by %s)",
				ho.n, ho.how(), ho.from.ID, stamp(lastTrue.Start), ho.to.ID, stamp(newGet.End), stamp(newFile.End))
		case ho.term && !firstFalse.End.Before(newGet.End):
			// The reader was late: what it saw does not tell.
			t.Logf("handover %d: the reader saw %s's file say is_leader false only at %s, after %s's GET / said is_leader at %s",
				ho.n, ho.from.ID, stamp(firstFalse.End), ho.to.ID, stamp(newGet.End))
		}
		if !ho.term {
			return ""
		}
		return fmt.Sprintf("; the old leader's file said is_leader false %s before the new leader's GET / said is_leader, %s before its file (mtime %s before its acquire_time)",
			newGet.End.Sub(firstFalse.End).Round(time.Millisecond), newFile.Start.Sub(firstFalse.End).Round(time.Millisecond),
			newGet.Status.AcquireTime.Sub(firstFalse.ModTime).Round(time.Millisecond))
	})
}

// electorOf is the elector of a sample of the merged history: "id" for
// its GET /, "id (file)" for its status file.
func electorOf(name string) string { return strings.TrimSuffix(name, " (file)") }

// contents returns the reads of one file whose content differs from the
// read before: each is a write the reader saw.
func contents(rs []appstub.Read) []appstub.Read {
	var out []appstub.Read
	var prev []byte
	for _, r := range rs {
		if r.Absent || r.Err != nil {
			continue
		}
		if prev == nil || !bytes.Equal(r.Raw, prev) {
			out = append(out, r)
		}
		prev = r.Raw
	}
	return out
}

// firstLeadingRead returns the first read of a status file begun after
// from that says is_leader.
func firstLeadingRead(rs []appstub.Read, from time.Time) *appstub.Read {
	for i, r := range rs {
		if r.Start.After(from) && r.Err == nil && !r.Absent && r.Status.IsLeader {
			return &rs[i]
		}
	}
	return nil
}

// lastLeadingBefore returns the last is_leader answer of id to a request
// sent before t.
func lastLeadingBefore(h history.History, id string, t time.Time) (history.Sample, bool) {
	var last history.Sample
	ok := false
	for _, s := range h.Of(id) {
		if s.Start.Before(t) && s.Leading() {
			last, ok = s, true
		}
	}
	return last, ok
}
