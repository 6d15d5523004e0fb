package elector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/k8s-elector/elector/internal/backoff"
)

// SequenceHeader carries the sequence number of each POST to the notify URL
// (WithNotifyURL): it grows by one with every POST, so that a receiver can
// drop one that arrives after a later one.
const SequenceHeader = "X-Elector-Sequence"

// sink hands the Status to one place outside the process (WithNotifyURL,
// WithStatusFile) at every change that Observe reports. It always delivers
// the status as it is at the time of the delivery, so a failed delivery is
// retried, with backoff, with the latest status and never with a stale one,
// and deliveries are serialised: none can overwrite a later one. It never
// delays the election: Run hands it changes and goes on.
type sink struct {
	what    string // for the log: "notify URL", "status file"
	deliver func(ctx context.Context, seq uint64, body []byte) error
	status  func() Status
	limit   time.Duration // longest wait between retries
	log     logr.Logger
	changes <-chan Status // from Observe; set by Run

	mu  sync.Mutex // held by a delivery
	seq uint64
}

// send delivers the current status.
func (k *sink) send(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	body, err := json.Marshal(k.status())
	if err != nil {
		return err // unreachable: see views.body
	}
	k.seq++
	return k.deliver(ctx, k.seq, append(body, '\n'))
}

// run delivers at every change, and once more when the changes end (Run
// returned), until that last delivery is done or ctx ends.
func (k *sink) run(ctx context.Context) {
	var delay time.Duration
	var lastErr string
	changes := k.changes // nil once closed: a closed channel would not wait
	pending := false
	for {
		if !pending {
			if changes == nil {
				return
			}
			select {
			case _, ok := <-changes:
				// A change, or the end of Run: the last status goes out
				// too.
				pending = true
				if !ok {
					changes = nil
				}
				continue
			case <-ctx.Done():
				return
			}
		}
		err := k.send(ctx)
		if err == nil {
			pending, delay = false, 0
			if lastErr != "" {
				lastErr = ""
				k.log.Info("delivering the status succeeds again", "to", k.what)
			}
			continue
		}
		if ctx.Err() != nil {
			k.log.Error(err, "gave up delivering the status on shutdown", "to", k.what)
			return
		}
		delay = backoff.Next(delay, k.limit)
		if err.Error() != lastErr {
			lastErr = err.Error()
			k.log.Error(err, "cannot deliver the status; retrying", "to", k.what, "retryIn", delay)
		} else {
			k.log.V(1).Info("delivering the status failed again", "to", k.what, "err", err.Error(), "retryIn", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case _, ok := <-changes: // a newer status: try it at once
			if !ok {
				changes = nil
			}
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// finish implements backgroundWorker: a sink ends when its changes do.
func (k *sink) finish() {}

// newNotifier returns the sink that POSTs the status to u, each POST
// bounded by timeout, retries at most limit apart.
func newNotifier(u *url.URL, timeout, limit time.Duration, status func() Status, log logr.Logger) *sink {
	client := localClient(timeout)
	target := u.String()
	return &sink{
		what: "notify URL " + target, status: status, limit: limit, log: log,
		deliver: func(ctx context.Context, seq uint64, body []byte) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(SequenceHeader, strconv.FormatUint(seq, 10))
			return localDo(client, req)
		},
	}
}

// newStatusFile returns the sink that keeps the status in the file at
// path, retries at most limit apart.
func newStatusFile(path string, limit time.Duration, status func() Status, log logr.Logger) *sink {
	return &sink{
		what: "status file " + path, status: status, limit: limit, log: log,
		deliver: func(_ context.Context, _ uint64, body []byte) error {
			return writeFileAtomic(path, body)
		},
	}
}

// writeFileAtomic replaces the file at path with data, so that a reader
// sees the old content or the new, never part of either: it writes a
// temporary file in the same directory, syncs it, and renames it over path.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Readable by the application, which may run as another user on a
	// shared volume.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkWritableDir reports why the status file cannot be written in dir,
// if it cannot: the directory must exist and take a new file.
func checkWritableDir(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("directory %s: %w", dir, unwrapPathError(err))
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	f, err := os.CreateTemp(dir, ".k8s-elector-probe-*")
	if err != nil {
		return fmt.Errorf("directory %s cannot be written: %w", dir, unwrapPathError(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
