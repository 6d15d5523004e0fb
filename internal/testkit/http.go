package testkit

import (
	"net/http"
	"net/http/httptest"
)

// HandlerTransport serves requests with a handler in the client's
// goroutine, without a network, so that HTTP clients run in a synctest
// bubble. A request whose context ends fails with its error.
type HandlerTransport struct{ Handler http.Handler }

// RoundTrip serves r with the handler.
func (t HandlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.Handler.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}
