package childrec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "record.jsonl")
	evs, err := Read(path)
	if err != nil || evs != nil {
		t.Fatalf("Read of a file not written yet: got %v, %v, want nothing", evs, err)
	}
	wall := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	want := []Event{
		{Kind: Start, Wall: wall, Mono: 100, PID: 10, PPID: 1, ID: "elector-1", LockUID: "uid", Transitions: "3"},
		{Kind: SIGTERM, Wall: wall.Add(time.Second), Mono: 200, PID: 10, PPID: 1},
		{Kind: Exit, Wall: wall.Add(2 * time.Second), Mono: 300, PID: 10, PPID: 1},
	}
	for _, e := range want {
		if err := Append(path, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 3 {
		t.Errorf("the file has %d lines, want one per event: 3", lines)
	}

	// A line still being written is left out.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"kind":"start","mo`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, err := Read(path); err != nil || len(got) != 3 {
		t.Errorf("Read with a partial last line: got %d events, %v, want 3", len(got), err)
	}
}

func TestReadPartialOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "record.jsonl")
	if err := os.WriteFile(path, []byte(`{"kind":"start"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path); err != nil || len(got) != 0 {
		t.Errorf("got %v, %v, want no event", got, err)
	}
}

func TestReadBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "record.jsonl")
	if err := os.WriteFile(path, []byte("{\"kind\":\"start\"}\nnot json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.HasSuffix(err.Error(), `: "not json"`) {
		t.Errorf("got %v, want an error naming the file and the line", err)
	}
}

func TestNow(t *testing.T) {
	before := Mono()
	e := Now(Exit)
	after := Mono()
	if e.Kind != Exit || e.PID != os.Getpid() || e.PPID != os.Getppid() {
		t.Errorf("got kind %q, pid %d, ppid %d, want %q, %d, %d", e.Kind, e.PID, e.PPID, Exit, os.Getpid(), os.Getppid())
	}
	if e.Mono < before || e.Mono > after {
		t.Errorf("Mono: got %d, want between %d and %d", e.Mono, before, after)
	}
	if d := time.Since(e.Wall); d < 0 || d > time.Minute {
		t.Errorf("Wall: got %v, %s ago, want now", e.Wall, d)
	}
}
