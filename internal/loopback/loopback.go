// Package loopback checks the URLs by which a candidate talks to its own
// application: a ready URL it probes, a notify URL it pushes to.
package loopback

import (
	"errors"
	"fmt"
	"net"
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
