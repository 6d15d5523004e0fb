package elector

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// routes builds the Elector's HTTP API.
func (e *Elector) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.serveStatus)
	return mux
}

// ServeHTTP serves the Elector's HTTP API. It reads only the Elector's
// in-memory Status and never calls the API server, so it is cheap enough for
// probes and tight polling loops.
//
// GET / (and HEAD /) answers the Status as JSON:
//
//	$ curl -s localhost:5002/
//	{"is_leader":true,"leader":"pod-a","node":"pod-a","timestamp":"2026-11-25T18:28:51Z"}
//
// Other methods on / get 405 Method Not Allowed with an Allow header; other
// paths get 404.
func (e *Elector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mux.ServeHTTP(w, r)
}

func (e *Elector) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r, http.StatusOK, e.Status())
}

// writeJSON writes v as a JSON body with a trailing newline; for HEAD it
// writes the headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error: cannot encode status", http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
