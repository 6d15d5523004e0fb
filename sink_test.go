package elector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8s-elector/elector/electortest"
	"github.com/k8s-elector/elector/internal/loopback"
)

// readStatusFile parses the status file at path.
func readStatusFile(t *testing.T, path string) Status {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s Status
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
		c := electortest.NewCluster()
		var mu sync.Mutex
		var atRelease *Status
		a := start(t, c, "a", LockLeases, WithStatusFile(path))
		onUpdate := func(act k8stesting.Action) {
			l, ok := act.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
			if ok && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "") {
				s := readStatusFile(t, path)
				mu.Lock()
				atRelease = &s
				mu.Unlock()
			}
		}
		a.onUpdate.Store(&onUpdate)
		waitFor(t, testTTL, "the file says a leads", func() bool {
			_, err := os.Stat(path)
			return err == nil && readStatusFile(t, path).IsLeader
		})
		if s, want := readStatusFile(t, path), a.e.Status(); s.LockUID != want.LockUID || s.Leader != "a" {
			t.Errorf("status file %+v, want %+v", s, want)
		}
		a.stop(t)
		mu.Lock()
		defer mu.Unlock()
		if atRelease == nil || atRelease.IsLeader {
			t.Fatalf("status file when the lock was released: %+v, want is_leader false", atRelease)
		}
		got, want := readStatusFile(t, path), a.e.Status()
		got.Timestamp, want.Timestamp = time.Time{}, time.Time{}
		if got.IsLeader || got.Leader != want.Leader || got.LockUID != want.LockUID || got.LeaderTransitions != want.LeaderTransitions {
			t.Errorf("final status file %+v, want Status %+v", got, want)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Errorf("the directory holds %d entries, want only the status file (no temporary left)", len(entries))
		}
	})
}

// TestSinkDeliversTheLatestInOrder fails deliveries while the status
// changes: every retry carries the latest status and a greater sequence
// number, and the last delivery is the final status.
func TestSinkDeliversTheLatestInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		current := Status{Leader: "a", LeaderTransitions: 0}
		var seqs []uint64
		var bodies []Status
		fail := true
		changes := make(chan Status, 1)
		k := &sink{
			what: "test", limit: time.Second, log: logr.Discard(), changes: changes,
			status: func() Status {
				mu.Lock()
				defer mu.Unlock()
				return current
			},
			deliver: func(_ context.Context, seq uint64, body []byte) error {
				mu.Lock()
				defer mu.Unlock()
				var s Status
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
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.run(context.Background())
		}()
		for i := 1; i <= 5; i++ {
			mu.Lock()
			current.LeaderTransitions = i
			mu.Unlock()
			changes <- current
			time.Sleep(300 * time.Millisecond)
			synctest.Wait()
		}
		mu.Lock()
		fail = false
		mu.Unlock()
		close(changes)
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
	type post struct {
		seq  int
		body Status
		ct   string
	}
	var mu sync.Mutex
	var got []post
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var s Status
		_ = json.Unmarshal(b, &s)
		seq, _ := strconv.Atoi(r.Header.Get(SequenceHeader))
		mu.Lock()
		got = append(got, post{seq, s, r.Header.Get("Content-Type")})
		mu.Unlock()
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	u, err := loopback.URL(srv.URL + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(u, time.Second, time.Second, func() Status { return Status{IsLeader: true, Leader: "a", Node: "a"} }, logr.Discard())
	for range 2 {
		if err := n.send(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].seq != 1 || got[1].seq != 2 || !got[1].body.IsLeader || got[1].ct != "application/json" {
		t.Errorf("posts %+v, want 2 with sequence 1 and 2 and the status", got)
	}
	srv.Close()
	if err := n.send(context.Background()); err == nil {
		t.Error("a POST to a closed server succeeded")
	}
}

// TestSinkOptionsAreValidated covers every bad sink option.
func TestSinkOptionsAreValidated(t *testing.T) {
	client := electortest.NewCluster().Client()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  Option
		want string
	}{
		{"remote notify", WithNotifyURL("http://192.168.1.1/x"), `notify URL: "http://192.168.1.1/x" is not on this host`},
		{"notify garbage", WithNotifyURL("::"), "notify URL:"},
		{"missing directory", WithStatusFile(filepath.Join(dir, "nope", "status.json")), "status file " + filepath.Join(dir, "nope", "status.json") + " cannot be written: directory " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"directory is a file", WithStatusFile(filepath.Join(file, "status.json")), "is not a directory"},
		{"path is a directory", WithStatusFile(dir), "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(testElection, WithClient(client), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := New(testElection, WithClient(client), WithStatusFile(filepath.Join(dir, "status.json")), WithNotifyURL("http://localhost:9/x")); err != nil {
		t.Errorf("good sink options: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("New left %d entries in the directory, want only the file that was there", len(entries))
	}
}

// TestSinkBacksOffAfterTheEnd: once Run has returned (the changes are
// closed), a failing delivery is retried with backoff, not in a tight loop,
// until the shutdown budget ends.
func TestSinkBacksOffAfterTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var tries int
		changes := make(chan Status)
		k := &sink{
			what: "test", limit: time.Second, log: logr.Discard(), changes: changes,
			status: func() Status { return Status{} },
			deliver: func(context.Context, uint64, []byte) error {
				mu.Lock()
				defer mu.Unlock()
				tries++
				return errors.New("connection refused")
			},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.run(ctx)
		}()
		changes <- Status{}
		time.Sleep(100 * time.Millisecond) // in the first retry's wait
		close(changes)
		<-done
		mu.Lock()
		defer mu.Unlock()
		// 0, 0.1 (the end of the changes), 0.6, 1.6, 2.6, 3.6, 4.6 s.
		if tries < 2 || tries > 8 {
			t.Errorf("%d deliveries in 5s of retries, want one at each backoff step (about 7)", tries)
		}
	})
}
