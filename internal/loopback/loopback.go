// Package loopback checks the URLs by which a candidate talks to its own
// application: a ready URL it probes, a notify URL it pushes to.
package loopback

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// URL parses raw as an http or https URL on a loopback address or
// localhost.
func URL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q does not parse: %v", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http or https URL", raw)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%q has no host: want http://127.0.0.1:PORT/PATH", raw)
	}
	if ip := net.ParseIP(host); !(host == "localhost" || ip != nil && ip.IsLoopback()) {
		return nil, fmt.Errorf("%q is not on this host: want 127.0.0.1, [::1] or localhost, since a candidate must judge its own application", raw)
	}
	return u, nil
}

// Client is the HTTP client for the application on this host (the ready
// and notify URLs): it keeps connections alive, uses no proxy, and follows
// no redirect. Each request is bounded by its context.
func Client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Do sends req and returns an error unless the answer is 2xx; the body is
// read (up to 64 KiB) and closed, so that the connection is kept.
func Do(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL, resp.Status)
	}
	return nil
}
