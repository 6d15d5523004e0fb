// Package history records what every elector of a fleet reports over time,
// and checks the election's invariants over that record, for the
// fault-injection suite and the soak.
//
//	r := history.NewRecorder()
//	r.Add(e.ID, e.Status) // polls GET / every 15ms until Stop
//	... inject faults ...
//	h := r.Stop()
//	for _, v := range h.Violations() { t.Error(v) }
//
// # What a sample proves
//
// A sample is one GET / : the request was sent at Start and the answer had
// arrived at End, so the elector computed its answer at some unknown instant
// in [Start, End]. An answer of is_leader=true also carries valid_until, the
// instant until which the elector claims leadership; it computed the answer
// before that (it reports is_leader only while now < valid_until). So a
// leading sample proves a claim of leadership at some instant in
// [Start, min(End, valid_until)], and nothing about any other instant.
//
// The checks widen that, on the side of finding violations: consecutive
// leading samples of one elector with one fencing token form a run, taken to
// claim leadership all the way from the first sample's Start to the last
// one's min(End, valid_until). Between two samples 15ms apart the elector
// cannot have stopped leading and led again with the same token while
// somebody else led: that somebody would have taken a higher token. Any
// other answer (not leading, an error, a timeout) ends a run: it is unknown
// what the elector would have said then. The end of a run uses valid_until
// so that an answer computed before a SIGSTOP and delivered after the
// SIGCONT, whose End lies after a legitimate successor took over, is not
// mistaken for a claim at its End.
//
// Two runs of different electors that intersect are a possible instant with
// two leaders, and reported as such. This errs towards false alarms only by
// the latency of one GET / (about a millisecond on loopback), while a correct
// elector leaves a wider gap between one leader's last claim and the next
// one's first: when a lease runs out, at least 2% of the lease (the drift
// margin, 120ms at a TTL of 6s) between the old leader's valid_until and the
// earliest moment anyone else can acquire; on a graceful handover, the round
// trips of the release and of the acquisition, since a leader reports
// not-leader before it releases.
package history

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// Polling defaults.
const (
	// DefaultInterval is how often each elector is polled.
	DefaultInterval = 15 * time.Millisecond
	// DefaultTimeout bounds one GET / : a stopped process does not answer.
	DefaultTimeout = time.Second
	// claimTolerance absorbs valid_until being cut to milliseconds in JSON.
	claimTolerance = 5 * time.Millisecond
)

// Token is a fencing token: the lock object's UID and its transition count.
// Within one UID, a higher count is a later holder; a new UID (the lock
// object was deleted and created again) starts a new epoch.
type Token struct {
	UID         string
	Transitions int64
}

func (t Token) String() string {
	uid := t.UID
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s/%d", uid, t.Transitions)
}

// Sample is one GET / of one elector.
type Sample struct {
	Elector string
	Start   time.Time // the request was sent
	End     time.Time // the answer (or the error) had arrived
	Status  fleet.Status
	Err     error
}

// OK reports whether the elector answered.
func (s Sample) OK() bool { return s.Err == nil }

// Leading reports whether the elector answered is_leader=true.
func (s Sample) Leading() bool { return s.Err == nil && s.Status.IsLeader }

// Token is the fencing token the answer reports.
func (s Sample) Token() Token {
	return Token{UID: s.Status.LockUID, Transitions: int64(s.Status.LeaderTransitions)}
}

// claimEnd is the latest instant the sample can speak for.
func (s Sample) claimEnd() time.Time {
	if s.Leading() && !s.Status.ValidUntil.IsZero() && s.Status.ValidUntil.Before(s.End) {
		return s.Status.ValidUntil
	}
	return s.End
}

// Source reads one elector's GET /, as (*fleet.Elector).Status does.
type Source func(ctx context.Context) (fleet.Status, error)

// Recorder polls electors and keeps every sample. Each elector added is
// polled by a goroutine of its own until Stop. Every leading answer is also
// acted on by a client of a fenced Store, as an application would: it writes
// with the answer's token while the answer's valid_until has not passed.
// All methods are safe for concurrent use.
type Recorder struct {
	interval time.Duration
	timeout  time.Duration
	store    *Store
	begin    time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	electors []string
	samples  []Sample
	latest   map[string]Sample
	stopped  bool
	end      time.Time
}

// NewRecorder returns a Recorder that polls every DefaultInterval with
// requests bounded by DefaultTimeout. It polls nothing until Add.
func NewRecorder() *Recorder {
	ctx, cancel := context.WithCancel(context.Background())
	return &Recorder{
		interval: DefaultInterval, timeout: DefaultTimeout, store: NewStore(),
		begin: time.Now(), ctx: ctx, cancel: cancel, latest: map[string]Sample{},
	}
}

// Add starts polling the elector id with src. A source that must follow an
// elector across restarts reads the current process on each call.
func (r *Recorder) Add(id string, src Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.electors = append(r.electors, id)
	r.wg.Go(func() { r.poll(id, src) })
}

func (r *Recorder) poll(id string, src Source) {
	for {
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		st, err := src(ctx)
		cancel()
		end := time.Now()
		if r.ctx.Err() != nil {
			return
		}
		s := Sample{Elector: id, Start: start, End: end, Status: st, Err: err}
		r.mu.Lock()
		r.samples = append(r.samples, s)
		r.latest[id] = s
		r.mu.Unlock()
		// The elector's client acts on what it was just told, and only until
		// the leadership it was told of expires.
		if s.Leading() && time.Now().Before(st.ValidUntil) {
			r.store.Write(id, s.Token())
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(time.Until(start.Add(r.interval))):
		}
	}
}

// Latest returns the latest sample of elector id.
func (r *Recorder) Latest(id string) (Sample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.latest[id]
	return s, ok
}

// Snapshot returns the history so far; recording goes on.
func (r *Recorder) Snapshot() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := r.end
	if !r.stopped {
		end = time.Now()
	}
	return History{
		Begin: r.begin, End: end,
		Electors: slices.Clone(r.electors),
		Samples:  slices.Clone(r.samples),
		Writes:   r.store.Writes(),
	}
}

// Stop stops polling, waits for every poller to return and returns the
// whole history. It is safe to call more than once.
func (r *Recorder) Stop() History {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		r.end = time.Now()
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return r.Snapshot()
}

// Write is one write to the fenced Store.
type Write struct {
	Elector  string
	Token    Token
	At       time.Time
	Accepted bool
}

// Store is a resource guarded by fencing tokens, as the README tells
// applications to build one: it accepts a write only if its token is at least
// the highest it has accepted. UIDs carry no order of their own: a UID the
// store has not seen before is taken to be a new epoch, newer than every
// token before it.
type Store struct {
	mu     sync.Mutex
	epochs map[string]int
	max    [2]int64
	has    bool
	writes []Write
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{epochs: map[string]int{}} }

// Write presents a write with token t from elector and reports whether the
// store accepted it.
func (s *Store) Write(elector string, t Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.epochs[t.UID]
	if !ok {
		e = len(s.epochs)
		s.epochs[t.UID] = e
	}
	key := [2]int64{int64(e), t.Transitions}
	ok = !s.has || cmp.Compare(key[0], s.max[0]) > 0 || key[0] == s.max[0] && key[1] >= s.max[1]
	if ok {
		s.max, s.has = key, true
	}
	s.writes = append(s.writes, Write{Elector: elector, Token: t, At: time.Now(), Accepted: ok})
	return ok
}

// Writes returns every write so far, in the order the store took them.
func (s *Store) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// History is a recording of a fleet.
type History struct {
	Begin, End time.Time
	Electors   []string
	Samples    []Sample // in the order recorded, which is about the order of End
	Writes     []Write  // the fenced store's writes, in order
}

// Of returns the samples of one elector, in order.
func (h History) Of(id string) []Sample {
	var out []Sample
	for _, s := range h.Samples {
		if s.Elector == id {
			out = append(out, s)
		}
	}
	return out
}

// Since returns the samples whose request was sent at or after t.
func (h History) Since(t time.Time) []Sample {
	var out []Sample
	for _, s := range h.Samples {
		if !s.Start.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// Run is a stretch of leadership one elector claimed with one token: see the
// package documentation.
type Run struct {
	Elector  string
	Token    Token
	From, To time.Time // first sample's Start; last sample's min(End, valid_until)
	First    Sample
	Last     Sample
	Samples  int
}

func (r Run) String() string {
	return fmt.Sprintf("%s led with token %s from %s to %s (%d samples)", r.Elector, r.Token,
		r.From.Format("15:04:05.000"), r.To.Format("15:04:05.000"), r.Samples)
}

// Runs returns every run of leadership, ordered by From.
func (h History) Runs() []Run {
	var runs []Run
	open := map[string]*Run{}
	for _, s := range h.Samples {
		r := open[s.Elector]
		if r != nil && (!s.Leading() || s.Token() != r.Token) {
			runs = append(runs, *r)
			delete(open, s.Elector)
			r = nil
		}
		if !s.Leading() {
			continue
		}
		if r == nil {
			r = &Run{Elector: s.Elector, Token: s.Token(), From: s.Start, First: s}
			open[s.Elector] = r
		}
		r.Last, r.To = s, s.claimEnd()
		r.Samples++
	}
	for _, r := range open {
		runs = append(runs, *r)
	}
	slices.SortStableFunc(runs, func(a, b Run) int { return a.From.Compare(b.From) })
	return runs
}

// Overlap is a stretch of time in which two electors may both have claimed
// leadership.
type Overlap struct {
	A, B     Run
	From, To time.Time
}

func (o Overlap) String() string {
	return fmt.Sprintf("two leaders for up to %s from %s: %s; %s", o.To.Sub(o.From).Round(time.Millisecond),
		o.From.Format("15:04:05.000"), o.A, o.B)
}

// Overlaps returns every pair of runs of different electors that intersect:
// invariant (a), no instant with two leaders.
func (h History) Overlaps() []Overlap {
	runs := h.Runs()
	var out []Overlap
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if !b.From.Before(a.To) {
				break // runs are ordered by From
			}
			if a.Elector != b.Elector {
				out = append(out, Overlap{A: a, B: b, From: b.From, To: minTime(a.To, b.To)})
			}
		}
	}
	return out
}

// BadClaims returns the leading answers that break the status contract: a
// leader reports valid_until, it lies after the moment the answer was
// computed, and the leader names itself.
func (h History) BadClaims() []string {
	var out []string
	for _, s := range h.Samples {
		switch {
		case !s.Leading():
		case s.Status.ValidUntil.IsZero():
			out = append(out, fmt.Sprintf("%s answered is_leader without valid_until at %s", s.Elector, stamp(s.End)))
		case s.Status.ValidUntil.Before(s.Start.Add(-claimTolerance)):
			out = append(out, fmt.Sprintf("%s answered is_leader at %s with valid_until %s, already past when asked",
				s.Elector, stamp(s.End), stamp(s.Status.ValidUntil)))
		case s.Status.Leader != s.Status.Node:
			out = append(out, fmt.Sprintf("%s answered is_leader with leader %q at %s", s.Elector, s.Status.Leader, stamp(s.End)))
		case s.Status.LockUID == "":
			out = append(out, fmt.Sprintf("%s answered is_leader without lock_uid at %s", s.Elector, stamp(s.End)))
		}
	}
	return out
}

// TokenViolations checks invariant (b) over the runs in order: within one
// lock UID, the transition count never goes down, and two different electors
// never lead with the same token; a lock UID, once replaced, never comes back.
func (h History) TokenViolations() []string {
	type last struct {
		transitions int64
		run         Run
	}
	var out []string
	seen := map[string]last{}
	current := ""
	for _, r := range h.Runs() {
		uid := r.Token.UID
		if uid != current {
			if prev, ok := seen[uid]; ok {
				out = append(out, fmt.Sprintf("lock UID %s came back after %s: %s, after %s", uid, current, r, prev.run))
			}
			current = uid
		}
		if prev, ok := seen[uid]; ok {
			switch {
			case r.Token.Transitions < prev.transitions:
				out = append(out, fmt.Sprintf("token went down: %s, after %s", r, prev.run))
			case r.Token.Transitions == prev.transitions && r.Elector != prev.run.Elector:
				out = append(out, fmt.Sprintf("two electors led with one token: %s, after %s", r, prev.run))
			}
		}
		seen[uid] = last{r.Token.Transitions, r}
	}
	return out
}

// StaleWrite is a write the fenced store accepted although another elector
// had already answered is_leader with a newer token: fencing could not stop
// it, since the newer leader had not written yet.
type StaleWrite struct {
	Write Write
	Newer Sample
}

func (w StaleWrite) String() string {
	return fmt.Sprintf("store accepted %s's write with token %s at %s, after %s had answered is_leader with token %s at %s",
		w.Write.Elector, w.Write.Token, stamp(w.Write.At), w.Newer.Elector, w.Newer.Token(), stamp(w.Newer.End))
}

// StaleWrites checks invariant (c). It returns the accepted stale writes
// (must be none: every elector's client acts only while it is told it leads,
// so a stale write means an elector claimed leadership it no longer had) and
// the writes the store rejected (stale writes that fencing caught).
//
// Tokens are ordered as the history shows them: a lock UID is older than
// another if it was seen first.
func (h History) StaleWrites() (accepted []StaleWrite, rejected []Write) {
	epoch := map[string]int{}
	byEnd := slices.Clone(h.Samples)
	slices.SortStableFunc(byEnd, func(a, b Sample) int { return a.End.Compare(b.End) })
	for _, s := range byEnd {
		if uid := s.Status.LockUID; s.OK() && uid != "" {
			if _, ok := epoch[uid]; !ok {
				epoch[uid] = len(epoch)
			}
		}
	}
	newer := func(a, b Token) bool { // a newer than b
		ea, eb := epoch[a.UID], epoch[b.UID]
		return ea > eb || ea == eb && a.Transitions > b.Transitions
	}
	best := map[string]Sample{} // per elector, its newest leading sample so far
	i := 0
	for _, w := range h.Writes {
		if !w.Accepted {
			rejected = append(rejected, w)
			continue
		}
		for ; i < len(byEnd) && byEnd[i].End.Before(w.At); i++ {
			s := byEnd[i]
			if b, ok := best[s.Elector]; s.Leading() && (!ok || newer(s.Token(), b.Token())) {
				best[s.Elector] = s
			}
		}
		for id, s := range best {
			if id != w.Elector && newer(s.Token(), w.Token) {
				accepted = append(accepted, StaleWrite{Write: w, Newer: s})
				break
			}
		}
	}
	return accepted, rejected
}

// TimeToOneLeader returns how long after t the fleet first had exactly one
// leader, counting only answers to requests sent at or after t: once every
// elector has answered (or failed to) since t, the latest answer of each is
// its state. It reports false if that never happened.
func (h History) TimeToOneLeader(t time.Time) (time.Duration, bool) {
	electors := h.Electors
	if len(electors) == 0 {
		for _, s := range h.Samples {
			if !slices.Contains(electors, s.Elector) {
				electors = append(electors, s.Elector)
			}
		}
	}
	after := h.Since(t)
	slices.SortStableFunc(after, func(a, b Sample) int { return a.End.Compare(b.End) })
	latest := map[string]bool{}
	for _, s := range after {
		latest[s.Elector] = s.Leading()
		if len(latest) < len(electors) {
			continue
		}
		n := 0
		for _, leading := range latest {
			if leading {
				n++
			}
		}
		if n == 1 {
			return s.End.Sub(t), true
		}
	}
	return 0, false
}

// Violations runs the checks of invariants (a), (b) and (c), and of the
// status contract, and returns one line per violation.
func (h History) Violations() []string {
	var out []string
	for _, o := range h.Overlaps() {
		out = append(out, "invariant (a): "+o.String())
	}
	for _, v := range h.TokenViolations() {
		out = append(out, "invariant (b): "+v)
	}
	stale, _ := h.StaleWrites()
	for _, w := range stale {
		out = append(out, "invariant (c): "+w.String())
	}
	for _, v := range h.BadClaims() {
		out = append(out, "status contract: "+v)
	}
	return out
}

// Timeline renders what each elector answered between from and to, one line
// per change of answer, for failure messages.
func (h History) Timeline(from, to time.Time) string {
	type span struct {
		first, last Sample
		n           int
	}
	key := func(s Sample) string {
		if !s.OK() {
			return "error: " + s.Err.Error()
		}
		st := s.Status
		return fmt.Sprintf("is_leader=%v leader=%q token=%s", st.IsLeader, st.Leader, s.Token())
	}
	var spans []span
	open := map[string]int{} // elector -> index in spans
	for _, s := range h.Samples {
		if s.End.Before(from) || s.Start.After(to) {
			continue
		}
		if i, ok := open[s.Elector]; ok && key(spans[i].last) == key(s) {
			spans[i].last = s
			spans[i].n++
			continue
		}
		open[s.Elector] = len(spans)
		spans = append(spans, span{first: s, last: s, n: 1})
	}
	var b strings.Builder
	for _, sp := range spans {
		line := fmt.Sprintf("%s–%s %-12s %3d× %s", stamp(sp.first.Start), stamp(sp.last.End), sp.first.Elector, sp.n, key(sp.first))
		if sp.last.Leading() {
			line += " valid_until=" + stamp(sp.last.Status.ValidUntil) // of the last answer
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// stackTrace matches what a Go panic, a fatal runtime error or a dumped
// goroutine prints.
var stackTrace = regexp.MustCompile(`(?m)^(panic: |goroutine \d+ \[|fatal error: ).*$`)

// StackTraces returns the lines of a process log that begin a Go stack trace:
// invariant (e), nothing crashes.
func StackTraces(log string) []string {
	return stackTrace.FindAllString(log, -1)
}
