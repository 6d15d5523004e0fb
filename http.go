package elector

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// keepAliveInterval is how often GET /watch writes a comment line on an idle
// stream, so that proxies and clients can tell a quiet stream from a dead one.
const keepAliveInterval = 15 * time.Second

// routes builds the Elector's HTTP API.
func (e *Elector) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.serveStatus)
	mux.HandleFunc("GET /leader", e.serveLeader)
	mux.HandleFunc("GET /healthz", e.serveHealthz)
	mux.HandleFunc("GET /readyz", e.serveReadyz)
	mux.HandleFunc("GET /watch", e.serveWatch)
	mux.Handle("GET /metrics", e.metricsHandler())
	if e.o.resignEndpoint {
		mux.HandleFunc("POST /resign", e.serveResign)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = headerNosniff
		h["Cache-Control"] = headerNoStore
		mux.ServeHTTP(w, r)
	})
}

// Header values that every response carries, set without allocating. The
// slices are shared and never written: Header.Add and Set replace them.
var (
	headerNosniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
	headerJSON    = []string{"application/json"}
	headerText    = []string{"text/plain; charset=utf-8"}
)

// ServeHTTP serves the Elector's HTTP API. Every endpoint reads only the
// Elector's in-memory state and never calls the API server, so they are cheap
// enough for probes and tight polling loops. GET endpoints answer HEAD too;
// other methods get 405 with an Allow header, unknown paths 404.
//
// GET / answers the Status as JSON:
//
//	$ curl -s localhost:5002/
//	{"is_leader":true,"leader":"pod-a","node":"pod-a","timestamp":"2026-11-25T18:28:51Z",...}
//
// GET /leader answers the same with 200 on the leader and 503 elsewhere:
//
//	$ curl -fs localhost:5002/leader >/dev/null && echo leading
//
// GET /healthz (liveness) fails with 500 only when this candidate believes it
// leads but has not renewed its lease for the lease duration plus the health
// tolerance (20s, as kube-controller-manager gives client-go's HealthzAdaptor): its election loop is stuck. Followers are
// always healthy; liveness never depends on being the leader.
//
// GET /readyz (readiness) answers 200 once the lock has been read at least
// once, so that the candidate knows the leader or that there is none, and 503
// before.
//
// GET /watch streams Server-Sent Events: the current Status first, then one
// event each time is_leader, leader, lock_uid or leader_transitions change
// (not on every renewal), with a comment line every 15s on a quiet stream:
//
//	$ curl -sN localhost:5002/watch
//	data: {"is_leader":false,"leader":"pod-b",...}
//
//	data: {"is_leader":true,"leader":"pod-a",...}
//
// POST /resign?cooldown=30s, only with WithResignEndpoint(true) and only from
// a loopback address, steps down (ResignFor) and answers the Status once the
// lock is released: 200, or 409 if this candidate does not lead. The cooldown
// defaults to the TTL and may be at most 24h. With to=ID it hands the lock
// to that candidate (ResignTo); an invalid ID, or this candidate's own, gets
// 400:
//
//	$ curl -s -X POST 'localhost:5002/resign?cooldown=30s'
//	$ curl -s -X POST 'localhost:5002/resign?to=pod-b'
func (e *Elector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.views == nil {
		writeText(w, r, http.StatusInternalServerError, errNotBuilt.Error())
		return
	}
	e.handlerOnce.Do(func() { e.handler = e.routes() })
	e.handler.ServeHTTP(w, r)
}

func (e *Elector) serveStatus(w http.ResponseWriter, r *http.Request) {
	e.writeStatus(w, r, false)
}

func (e *Elector) serveLeader(w http.ResponseWriter, r *http.Request) {
	e.writeStatus(w, r, true)
}

// writeStatus answers the status as JSON: 200, or with leaderOnly 503 when
// this candidate does not lead.
func (e *Elector) writeStatus(w http.ResponseWriter, r *http.Request, leaderOnly bool) {
	c := e.views.body(time.Now())
	if c == nil {
		writeText(w, r, http.StatusInternalServerError, "internal error: cannot encode status")
		return
	}
	code := http.StatusOK
	if leaderOnly && !c.leading {
		code = http.StatusServiceUnavailable
	}
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Content-Length"] = c.length
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(c.body)
	}
}

func (e *Elector) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if err := e.healthy(time.Now()); err != nil {
		writeText(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	writeText(w, r, http.StatusOK, "ok")
}

// Check is a health check with the signature of controller-runtime's
// healthz.Checker, so that a manager can add it as it is:
//
//	mgr.AddHealthzCheck("leader-election", e.Check)
//
// It fails, as GET /healthz does, only for a leader whose election loop is
// stuck: it leads but has not renewed its lease for the lease duration plus
// the health tolerance (20s, as kube-controller-manager gives client-go's HealthzAdaptor).
func (e *Elector) Check(*http.Request) error {
	if e.views == nil {
		return errNotBuilt
	}
	return e.healthy(time.Now())
}

// LeaderOnly returns a handler that passes requests to h while this
// candidate leads, and answers everything else with 503 Service Unavailable
// and the current leader in the X-Leader header (empty if none), so that a
// client or a proxy can retry elsewhere:
//
//	http.Handle("/api/", e.LeaderOnly(api))
//
// Leadership is judged when the request arrives; h is not cancelled when
// leadership ends while it runs.
func (e *Elector) LeaderOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := e.Status()
		if !s.IsLeader {
			w.Header().Set("X-Leader", s.Leader)
			writeText(w, r, http.StatusServiceUnavailable, "not the leader: the leader is "+strconv.Quote(s.Leader))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// healthy reports an error when this candidate believes it leads but has not
// renewed for the lease duration plus the tolerance, as client-go's
// HealthzAdaptor does.
func (e *Elector) healthy(now time.Time) error {
	v := e.views.load()
	if !v.leading {
		return nil
	}
	if since := now.Sub(v.renewed); since > v.lease+healthTolerance {
		return fmt.Errorf("leader election: leading, but the lease was last renewed %s ago (lease %s + tolerance %s)",
			since.Round(time.Millisecond), v.lease, healthTolerance)
	}
	return nil
}

func (e *Elector) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if !e.views.load().known {
		writeText(w, r, http.StatusServiceUnavailable, "leader election: the lock has not been read yet")
		return
	}
	writeText(w, r, http.StatusOK, "ok")
}

func (e *Elector) serveResign(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		writeText(w, r, http.StatusForbidden, "resign is accepted only from a loopback address")
		return
	}
	cooldown := e.o.ttl
	if q := r.URL.Query().Get("cooldown"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 || d > maxResignCooldown {
			writeText(w, r, http.StatusBadRequest, "invalid cooldown: want a duration from 0s to 24h, such as 30s")
			return
		}
		cooldown = d
	}
	to := r.URL.Query().Get("to")
	if _, named := r.URL.Query()["to"]; named {
		if err := checkID(to); err != nil {
			writeText(w, r, http.StatusBadRequest, "invalid successor: "+err.Error())
			return
		}
		if to == e.o.id {
			writeText(w, r, http.StatusBadRequest, errSelfSuccessor.Error())
			return
		}
	}
	switch err := e.resign(r.Context(), cooldown, to); {
	case err == nil:
		writeJSON(w, r, http.StatusOK, e.Status())
	case errors.Is(err, ErrNotLeader):
		writeJSON(w, r, http.StatusConflict, e.Status())
	default:
		writeText(w, r, http.StatusServiceUnavailable, "resign did not complete: "+err.Error())
	}
}

// serveWatch streams the statuses of Observe as Server-Sent Events until the
// client goes or Run returns.
func (e *Elector) serveWatch(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	keepAlive := time.NewTicker(keepAliveInterval)
	defer keepAlive.Stop()
	statuses := e.Observe(r.Context())
	for {
		select {
		case s, ok := <-statuses:
			if !ok {
				return // the client left, or Run returned
			}
			body, err := json.Marshal(s)
			if err != nil || !writeEvent(rc, w, "data: "+string(body)+"\n\n") {
				return
			}
		case <-keepAlive.C:
			if !writeEvent(rc, w, ": keep-alive\n\n") {
				return
			}
		}
	}
}

func writeEvent(rc *http.ResponseController, w http.ResponseWriter, event string) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(keepAliveInterval + 10*time.Second))
	if _, err := w.Write([]byte(event)); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// writeJSON writes v as a JSON body with a trailing newline; for HEAD it
// writes the headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeText(w, r, http.StatusInternalServerError, "internal error: cannot encode status")
		return
	}
	writeBody(w, r, code, headerJSON, append(body, '\n'))
}

func writeText(w http.ResponseWriter, r *http.Request, code int, msg string) {
	writeBody(w, r, code, headerText, []byte(msg+"\n"))
}

func writeBody(w http.ResponseWriter, r *http.Request, code int, contentType []string, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentType
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (e *Elector) metricsHandler() http.Handler {
	return promhttp.HandlerFor(e.metrics.registry, promhttp.HandlerOpts{})
}
