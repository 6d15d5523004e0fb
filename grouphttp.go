package elector

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// groupHandler serves a Group's HTTP API.
type groupHandler struct{ g *Group }

// ServeHTTP serves the Group's HTTP API, which reads only memory, as an
// Elector's does:
//
// GET / answers every election's Status as JSON, by election (its name in
// the Group's namespace, namespace/name in another):
//
//	$ curl -s localhost:5002/
//	{"elections":{"shard-0":{"is_leader":true,"leader":"pod-a",...},"shard-1":{...}}}
//
// GET /{election} answers that election's Status, as an Elector's GET /
// does, and the paths below it are that Elector's API: /{election}/leader,
// /{election}/healthz, /{election}/readyz, /{election}/watch, and POST
// /{election}/resign with WithResignEndpoint(true). An election the Group
// does not have gets 404.
func (g *Group) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(&groupHandler{g: g}).ServeHTTP(w, r)
}

func (h *groupHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd["X-Content-Type-Options"] = headerNosniff
	hd["Cache-Control"] = headerNoStore
	path := strings.TrimPrefix(r.URL.Path, "/")
	if path == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			writeText(w, r, http.StatusMethodNotAllowed, "method not allowed: GET / lists the elections")
			return
		}
		h.list(w, r)
		return
	}
	name, rest, _ := strings.Cut(path, "/")
	e, ok := h.g.Elector(name)
	if !ok {
		writeText(w, r, http.StatusNotFound, "no election "+name+" in group "+h.g.name)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + rest
	r2.URL.RawPath = ""
	e.ServeHTTP(w, r2)
}

// list answers every election's status.
func (h *groupHandler) list(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	all := map[string]json.RawMessage{}
	for key, e := range h.g.Electors() {
		c := e.views.body(now)
		if c == nil {
			writeText(w, r, http.StatusInternalServerError, "internal error: cannot encode status")
			return
		}
		name, _ := strings.CutPrefix(key, h.g.o.namespace+"/")
		all[name] = bytes.TrimSuffix(c.body, []byte("\n"))
	}
	writeJSON(w, r, http.StatusOK, struct {
		Elections map[string]json.RawMessage `json:"elections"`
	}{all})
}
