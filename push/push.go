// Package push hands an Elector's Status to its application at every change
// of leadership, for applications that are not written in Go: a POST to a
// notify URL, or a status file.
//
//	sink, err := push.StatusFile("/run/elector/status.json")
//	if err != nil {
//		return err
//	}
//	e, err := elector.New("my-election", elector.WithRESTConfig(cfg),
//		elector.WithBeforeRelease(sink.BeforeRelease))
//	if err != nil {
//		return err
//	}
//	wait := sink.Follow(ctx, e, log) // before Run, so that it sees all of it
//	err = e.Run(ctx)
//	wait() // the last status is out, or its time is up
//
// A Sink never delays the election: it follows it with Observe and delivers
// on a goroutine of its own, retrying with backoff, always with the latest
// status.
package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/internal/loopback"
)

// SequenceHeader carries the sequence number of each POST to the notify URL
// (NotifyURL): it grows by one with every POST, so that a receiver can drop
// one that arrives after a later one.
const SequenceHeader = "X-Elector-Sequence"

// A Sink hands the Status to one place outside the process: a notify URL
// (NotifyURL) or a status file (StatusFile). It always delivers the status
// as it is at the time of the delivery, so a failed delivery is retried
// with the latest status and never with a stale one, and its deliveries are
// serialised: none can overwrite a later one. Build it with NotifyURL or
// StatusFile; its methods are safe for concurrent use.
type Sink struct {
	what    string // for the log: "notify URL …", "status file …"
	name    string // of the logger
	file    bool   // a status file: BeforeRelease writes it
	deliver func(ctx context.Context, seq uint64, body []byte) error

	mu  sync.Mutex // held by a delivery
	seq uint64
}

// NotifyURL returns the Sink that POSTs the status JSON (the body of GET /,
// Content-Type application/json) to rawURL, each POST with its sequence
// number in SequenceHeader. A POST passes on a 2xx answer; no redirect is
// followed. The URL must be http or https on a loopback address or
// localhost: a candidate tells its own application.
func NotifyURL(rawURL string) (*Sink, error) {
	u, err := loopback.URL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("notify URL: %v", err)
	}
	return notifier(u.String(), loopback.Client()), nil
}

// notifier returns the Sink that POSTs to target with client.
func notifier(target string, client *http.Client) *Sink {
	return &Sink{
		what: "notify URL " + target, name: "notify",
		deliver: func(ctx context.Context, seq uint64, body []byte) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(SequenceHeader, strconv.FormatUint(seq, 10))
			return loopback.Do(client, req)
		},
	}
}

// StatusFile returns the Sink that keeps the status JSON (the body of
// GET /) in the file at path. Each write replaces the file atomically (a
// temporary file in the same directory, synced, then renamed), so a reader
// never sees part of one; the file is readable by all (0644). The directory
// must exist and take a new file: StatusFile checks it, with a file that it
// removes.
func StatusFile(path string) (*Sink, error) {
	if err := checkWritableDir(path); err != nil {
		return nil, fmt.Errorf("status file %s cannot be written: %v", path, err)
	}
	return &Sink{
		what: "status file " + path, name: "status-file", file: true,
		deliver: func(_ context.Context, _ uint64, body []byte) error {
			return writeFileAtomic(path, body)
		},
	}, nil
}

// BeforeRelease is for elector.WithBeforeRelease: a status file is written
// with st (is_leader false) at once, so that it says not-leader before
// anyone else can lead; the write is serialised with the others. A slow
// disk delays the release, which keeps its own deadline. For a notify URL
// it does nothing and returns nil: the POST that follows the end of the
// term goes out in the background.
func (s *Sink) BeforeRelease(ctx context.Context, st elector.Status) error {
	if !s.file {
		return nil
	}
	return s.send(ctx, func() elector.Status { return st })
}

// send delivers the status that status returns at the time of the
// delivery, with the next sequence number.
func (s *Sink) send(ctx context.Context, status func() elector.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, err := json.Marshal(status())
	if err != nil {
		return err // unreachable: a Status always marshals
	}
	s.seq++
	return s.deliver(ctx, s.seq, append(body, '\n'))
}
