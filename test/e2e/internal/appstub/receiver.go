package appstub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/k8s-elector/elector/push"
)

// Post is one POST the receiver got.
type Post struct {
	Seq         uint64 // X-Elector-Sequence; 0 if missing or not a number
	RawSeq      string
	ContentType string
	Body        []byte
	Status      Status // the body, decoded
	BodyErr     error  // the body is not the status JSON
	Arrived     time.Time
	// Ended is when the receiver answered, or saw that the client had given
	// up (GaveUp): the request was held open from Arrived to Ended.
	Ended  time.Time
	GaveUp bool
	Code   int  // the answer: 200, or 503 for a request held to the end of a hold; 0 if the client gave up
	Held   bool // it arrived during a hold
	Done   bool // Ended, GaveUp and Code are set
}

// Open is how long the request was held open.
func (p Post) Open() time.Duration { return p.Ended.Sub(p.Arrived) }

// Delivered reports whether the POST was answered 2xx.
func (p Post) Delivered() bool { return p.Done && p.Code >= 200 && p.Code < 300 }

// Receiver is an application's endpoint for the status POSTs: it answers
// 200 at once, except during a hold, when it answers nothing until the hold
// ends (then 503) or the client gives up.
type Receiver struct {
	srv *httptest.Server

	mu        sync.Mutex
	posts     []Post
	holdUntil time.Time
}

// NewReceiver starts the receiver.
func NewReceiver() *Receiver {
	rc := &Receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	p := Post{Arrived: time.Now(), RawSeq: r.Header.Get(push.SequenceHeader), ContentType: r.Header.Get("Content-Type")}
	p.Seq, _ = strconv.ParseUint(p.RawSeq, 10, 64)
	// The whole body first: only then does the server notice a client that
	// closes the connection, and cancel the request's context.
	p.Body, p.BodyErr = io.ReadAll(r.Body)
	if p.BodyErr == nil {
		p.BodyErr = decodeStatus(p.Body, &p.Status)
	}
	if r.Method != http.MethodPost {
		p.BodyErr = errors.Join(p.BodyErr, fmt.Errorf("method %s, want POST", r.Method))
	}
	rc.mu.Lock()
	i := len(rc.posts)
	until := rc.holdUntil
	p.Held = p.Arrived.Before(until)
	rc.posts = append(rc.posts, p)
	rc.mu.Unlock()

	code := http.StatusOK
	gaveUp := false
	if p.Held {
		t := time.NewTimer(time.Until(until))
		select {
		case <-r.Context().Done():
			gaveUp = true
		case <-t.C:
			code = http.StatusServiceUnavailable
		}
		t.Stop()
	}
	ended := time.Now()
	rc.mu.Lock()
	q := &rc.posts[i]
	q.Ended, q.GaveUp, q.Done = ended, gaveUp, true
	if !gaveUp {
		q.Code = code
	}
	rc.mu.Unlock()
	if !gaveUp {
		w.WriteHeader(code)
	}
}

// URL is the value for -notify-url.
func (rc *Receiver) URL() string { return rc.srv.URL + "/notify" }

// Hold holds every POST that arrives in the next d open, unanswered, until
// d has passed or its client gives up; it returns when the hold begins and
// ends.
func (rc *Receiver) Hold(d time.Duration) (from, to time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	from = time.Now()
	rc.holdUntil = from.Add(d)
	return from, rc.holdUntil
}

// Posts returns every POST so far, in the order they arrived; one still
// held open has Done false.
func (rc *Receiver) Posts() []Post {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.posts)
}

// Close stops the receiver; requests still held are given up.
func (rc *Receiver) Close() {
	rc.srv.CloseClientConnections()
	rc.srv.Close()
}

// decodeStatus decodes one status JSON document, a single object with a
// trailing newline as the elector writes it, into s.
func decodeStatus(raw []byte, s *Status) error {
	switch {
	case len(raw) == 0:
		return errors.New("empty")
	case raw[len(raw)-1] != '\n':
		return fmt.Errorf("no trailing newline (%d bytes): %q", len(raw), tail(raw))
	case !json.Valid(raw):
		return fmt.Errorf("not valid JSON (%d bytes): %q", len(raw), tail(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(s); err != nil {
		return fmt.Errorf("not the status JSON: %w", err)
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	if s.Node == "" {
		return fmt.Errorf("no node: %q", tail(raw))
	}
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 80 {
		return b[len(b)-80:]
	}
	return b
}
