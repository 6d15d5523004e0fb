package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Timing used by the election tests: TTL 6s, renew deadline 2s, retry 1s.
const (
	testTTL   = 6 * time.Second
	testRetry = testTTL / 6
	// flushBudget is what the last delivery has once Run has returned:
	// ShutdownBudget - RenewDeadline.
	flushBudget = time.Second
)

const testElection = "example"

// newElector returns candidate id on client, with the test's TTL.
func newElector(t *testing.T, client kubernetes.Interface, id string, opts ...elector.Option) *elector.Elector {
	t.Helper()
	e, err := elector.New(testElection, append([]elector.Option{
		elector.WithClient(client), elector.WithID(id), elector.WithTTL(testTTL),
	}, opts...)...)
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	return e
}

// running is a Run of an Elector in a goroutine of the test's bubble, with
// sinks following it.
type running struct {
	t        *testing.T
	cancel   context.CancelFunc
	done     chan error
	waits    []func()
	returned time.Time // when Run returned, once stop has seen it
	once     sync.Once
}

// run has sinks follow e and starts Run; the sinks get Run's context, as
// the command-line tool gives them. stop (or the test's end) cancels it.
func run(t *testing.T, e *elector.Elector, sinks ...*Sink) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, cancel: cancel, done: make(chan error, 1)}
	for _, s := range sinks {
		r.waits = append(r.waits, s.Follow(ctx, e, logr.Discard()))
	}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop cancels Run, waits for it to return nil, then for the sinks.
func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			r.t.Errorf("Run returned %v, want nil after cancel", err)
		}
		r.returned = time.Now()
		for _, wait := range r.waits {
			wait()
		}
	})
}

// readStatusFile parses the status file at path.
func readStatusFile(t *testing.T, path string) elector.Status {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s elector.Status
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("status file %q: %v", b, err)
	}
	return s
}

// TestStatusFileFollowsLeadership: the file is written at start, follows
// the leadership, says is_leader false before the lock is released on
// shutdown, and ends equal to Status.
func TestStatusFileFollowsLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "status.json")
		file, err := StatusFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := electortest.NewCluster()
		client := c.Client()
		var mu sync.Mutex
		var atRelease *elector.Status
		client.PrependReactor("update", "leases", func(act k8stesting.Action) (bool, runtime.Object, error) {
			l, ok := act.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
			if ok && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "") {
				s := readStatusFile(t, path)
				mu.Lock()
				atRelease = &s
				mu.Unlock()
			}
			return false, nil, nil
		})
		e := newElector(t, client, "a", elector.WithBeforeRelease(file.BeforeRelease))
		r := run(t, e, file)
		testkit.WaitFor(t, testTTL, "the file says a leads", func() bool {
			_, err := os.Stat(path)
			return err == nil && readStatusFile(t, path).IsLeader
		})
		if s, want := readStatusFile(t, path), e.Status(); s.LockUID != want.LockUID || s.Leader != "a" {
			t.Errorf("status file %+v, want %+v", s, want)
		}
		r.stop()
		mu.Lock()
		defer mu.Unlock()
		if atRelease == nil || atRelease.IsLeader {
			t.Fatalf("status file when the lock was released: %+v, want is_leader false", atRelease)
		}
		got, want := readStatusFile(t, path), e.Status()
		got.Timestamp, want.Timestamp = time.Time{}, time.Time{}
		if got.IsLeader || got.Leader != want.Leader || got.LockUID != want.LockUID || got.LeaderTransitions != want.LeaderTransitions {
			t.Errorf("final status file %+v, want Status %+v", got, want)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Errorf("the directory holds %d entries, want only the status file (no temporary left)", len(entries))
		}
	})
}

// post is one POST that a notify URL received.
type post struct {
	seq  int
	body elector.Status
	ct   string
}

// receiver is an application that takes POSTs to its notify URL.
type receiver struct {
	mu    sync.Mutex
	posts []post
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var s elector.Status
	_ = json.Unmarshal(b, &s)
	seq, _ := strconv.Atoi(r.Header.Get(SequenceHeader))
	rc.mu.Lock()
	rc.posts = append(rc.posts, post{seq, s, r.Header.Get("Content-Type")})
	rc.mu.Unlock()
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (rc *receiver) got() []post {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]post(nil), rc.posts...)
}

// TestNotifyFollowsLeadership: the notify URL gets the status at start, at
// every change of leadership and as Run returns (the start and the lead
// may be one POST: each carries the status of its time), with sequence
// numbers 1, 2, 3…; the last POST says not-leader, though Run's context, which
// Follow got too, was cancelled before it. BeforeRelease POSTs nothing.
func TestNotifyFollowsLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{}
		notify := notifier("http://127.0.0.1:8080/leader", &http.Client{Transport: testkit.HandlerTransport{Handler: rc}})
		c := electortest.NewCluster()
		var before atomic.Int32
		e := newElector(t, c.Client(), "a", elector.WithBeforeRelease(func(ctx context.Context, s elector.Status) error {
			before.Store(int32(len(rc.got())))
			if err := notify.BeforeRelease(ctx, s); err != nil {
				t.Errorf("BeforeRelease: %v, want nil for a notify URL", err)
			}
			if n := len(rc.got()); n != int(before.Load()) {
				t.Errorf("BeforeRelease POSTed %d times, want none", n-int(before.Load()))
			}
			return nil
		}))
		r := run(t, e, notify)
		testkit.WaitFor(t, testTTL, "a POST says a leads", func() bool {
			p := rc.got()
			return len(p) > 0 && p[len(p)-1].body.IsLeader
		})
		r.stop()
		if before.Load() == 0 {
			t.Error("the function before the release did not run")
		}
		posts := rc.got()
		if len(posts) < 2 {
			t.Fatalf("%d POSTs, want at least the lead and the end: %+v", len(posts), posts)
		}
		for i, p := range posts {
			if p.seq != i+1 || p.ct != "application/json" {
				t.Errorf("POST %d has sequence %d and Content-Type %q, want %d and application/json", i, p.seq, p.ct, i+1)
			}
		}
		if first := posts[0].body; first.Node != "a" {
			t.Errorf("first POST %+v, want a's status", first)
		}
		got, want := posts[len(posts)-1].body, e.Status()
		if got.IsLeader || got.Leader != want.Leader || got.LockUID != want.LockUID || got.LeaderTransitions != want.LeaderTransitions {
			t.Errorf("last POST %+v, want the final Status %+v", got, want)
		}
	})
}

// TestSinkDeliversTheLatestInOrder fails deliveries while the status
// changes: every retry carries the latest status and a greater sequence
// number, and the last delivery is the final status.
func TestSinkDeliversTheLatestInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		current := elector.Status{Leader: "a", LeaderTransitions: 0}
		var seqs []uint64
		var bodies []elector.Status
		fail := true
		kicks := make(chan struct{}, 1)
		s := &Sink{
			what: "test",
			deliver: func(_ context.Context, seq uint64, body []byte) error {
				mu.Lock()
				defer mu.Unlock()
				var s elector.Status
				if err := json.Unmarshal(body, &s); err != nil {
					t.Errorf("body %q: %v", body, err)
				}
				seqs, bodies = append(seqs, seq), append(bodies, s)
				if fail {
					return errors.New("connection refused")
				}
				return nil
			},
		}
		f := &follower{
			sink: s, limit: time.Second, timeout: time.Second, log: logr.Discard(),
			status: func() elector.Status {
				mu.Lock()
				defer mu.Unlock()
				return current
			},
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.run(context.Background(), kicks)
		}()
		for i := 1; i <= 5; i++ {
			mu.Lock()
			current.LeaderTransitions = i
			mu.Unlock()
			kicks <- struct{}{}
			time.Sleep(300 * time.Millisecond)
			synctest.Wait()
		}
		mu.Lock()
		fail = false
		mu.Unlock()
		close(kicks)
		<-done
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("sequence %d after %d", seqs[i], seqs[i-1])
			}
			if bodies[i].LeaderTransitions < bodies[i-1].LeaderTransitions {
				t.Errorf("delivery %d carries transitions %d after %d: a stale status", i, bodies[i].LeaderTransitions, bodies[i-1].LeaderTransitions)
			}
		}
		if last := bodies[len(bodies)-1]; last.LeaderTransitions != 5 {
			t.Errorf("last delivery %+v, want the final status (transitions 5)", last)
		}
	})
}

// TestNotifierPOSTsTheStatusWithItsSequence sends to a real server.
func TestNotifierPOSTsTheStatusWithItsSequence(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n, err := NotifyURL(srv.URL + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	status := func() elector.Status { return elector.Status{IsLeader: true, Leader: "a", Node: "a"} }
	for range 2 {
		if err := n.send(context.Background(), status); err != nil {
			t.Fatal(err)
		}
	}
	if got := rc.got(); len(got) != 2 || got[0].seq != 1 || got[1].seq != 2 || !got[1].body.IsLeader || got[1].ct != "application/json" {
		t.Errorf("posts %+v, want 2 with sequence 1 and 2 and the status", got)
	}
	srv.Close()
	if err := n.send(context.Background(), status); err == nil {
		t.Error("a POST to a closed server succeeded")
	}
}

// TestNotifierFailsOnAnythingBut2xx: an answer that is not 2xx fails the
// POST with its status, a redirect too (it is not followed).
func TestNotifierFailsOnAnythingBut2xx(t *testing.T) {
	var code atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := int(code.Load()); c >= 300 && c < 400 {
			http.Redirect(w, r, "/elsewhere", c)
			return
		}
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	n, err := NotifyURL(srv.URL + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code int
		want string // in the error; "" for none
	}{{200, ""}, {204, ""}, {307, "307 Temporary Redirect"}, {404, "404 Not Found"}, {503, "503 Service Unavailable"}} {
		code.Store(int64(tc.code))
		err := n.send(context.Background(), func() elector.Status { return elector.Status{} })
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("answer %d: send returned %v, want an error with %q", tc.code, err, tc.want)
		}
	}
}

// TestSinkOptionsAreValidated covers every bad notify URL and status file.
func TestSinkOptionsAreValidated(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		new  func() (*Sink, error)
		want string
	}{
		{"remote notify", func() (*Sink, error) { return NotifyURL("http://192.168.1.1/x") }, `notify URL: "http://192.168.1.1/x" is not on this host`},
		{"notify garbage", func() (*Sink, error) { return NotifyURL("::") }, "notify URL:"},
		{"missing directory", func() (*Sink, error) { return StatusFile(filepath.Join(dir, "nope", "status.json")) }, "status file " + filepath.Join(dir, "nope", "status.json") + " cannot be written: directory " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"directory is a file", func() (*Sink, error) { return StatusFile(filepath.Join(file, "status.json")) }, "is not a directory"},
		{"path is a directory", func() (*Sink, error) { return StatusFile(dir) }, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.new()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if s != nil {
				t.Errorf("got a Sink with the error %v, want nil", err)
			}
		})
	}
	if _, err := StatusFile(filepath.Join(dir, "status.json")); err != nil {
		t.Errorf("good status file: %v", err)
	}
	if _, err := NotifyURL("http://localhost:9/x"); err != nil {
		t.Errorf("good notify URL: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("StatusFile left %d entries in the directory, want only the file that was there", len(entries))
	}
}

// TestSinkBacksOffAfterTheEnd: once Run has returned (the changes are
// closed), a failing delivery is retried with backoff, not in a tight loop,
// until its time is up.
func TestSinkBacksOffAfterTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var tries int
		kicks := make(chan struct{})
		s := &Sink{
			what: "test",
			deliver: func(context.Context, uint64, []byte) error {
				mu.Lock()
				defer mu.Unlock()
				tries++
				return errors.New("connection refused")
			},
		}
		f := &follower{
			sink: s, limit: time.Second, timeout: time.Second, log: logr.Discard(),
			status: func() elector.Status { return elector.Status{} },
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.run(ctx, kicks)
		}()
		kicks <- struct{}{}
		time.Sleep(100 * time.Millisecond) // in the first retry's wait
		close(kicks)
		<-done
		mu.Lock()
		defer mu.Unlock()
		// 0, 0.1 (the end of the changes), 0.6, 1.6, 2.6, 3.6, 4.6 s.
		if tries < 2 || tries > 8 {
			t.Errorf("%d deliveries in 5s of retries, want one at each backoff step (about 7)", tries)
		}
	})
}

// TestSinkEndsWhenRunIsCancelledAtOnce: a Run cancelled before it started
// still ends the sink that follows it: Run and the last write are done at
// once, not at the end of the last delivery's time.
func TestSinkEndsWhenRunIsCancelledAtOnce(t *testing.T) {
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "status.json")
				file, err := StatusFile(path)
				if err != nil {
					t.Fatal(err)
				}
				e := newElector(t, electortest.NewCluster().Client(), "a", elector.WithBeforeRelease(file.BeforeRelease))
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				begin := time.Now()
				wait := file.Follow(ctx, e, logr.Discard())
				if err := e.Run(ctx); err != nil {
					t.Fatal(err)
				}
				wait()
				if took := time.Since(begin); took >= flushBudget {
					t.Errorf("Run and the sink ended %s after a cancelled start, want at once", took)
				}
				if s := readStatusFile(t, path); s.IsLeader || s.Node != "a" {
					t.Errorf("status file %+v, want a's, not leading", s)
				}
			})
		})
	}
}

// TestFollowGivesUpAfterTheBudget: a delivery that hangs when Run returns
// is given up ShutdownBudget-RenewDeadline later, not at the end of its
// own timeout.
func TestFollowGivesUpAfterTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tries atomic.Int32
		s := &Sink{
			what: "test", name: "test",
			deliver: func(ctx context.Context, _ uint64, _ []byte) error {
				tries.Add(1)
				<-ctx.Done() // an application that never answers
				return ctx.Err()
			},
		}
		// A TTL of 30s: each delivery has 5s.
		e := newElector(t, electortest.NewCluster().Client(), "a", elector.WithTTL(30*time.Second))
		tm := e.Timings()
		if budget := tm.ShutdownBudget - tm.RenewDeadline; budget != flushBudget {
			t.Fatalf("the last delivery has %s, want %s", budget, flushBudget)
		}
		if tm.RequestTimeout <= 2*flushBudget {
			t.Fatalf("request timeout %s, want one well past %s", tm.RequestTimeout, flushBudget)
		}
		r := run(t, e, s)
		testkit.WaitFor(t, 30*time.Second, "a leads", func() bool { return e.Status().IsLeader })
		r.stop()
		if took := time.Since(r.returned); took != flushBudget {
			t.Errorf("the sink ended %s after Run returned, want %s", took, flushBudget)
		}
		if tries.Load() == 0 {
			t.Error("no delivery was tried")
		}
	})
}
