package elector

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// localClient is the HTTP client for the application on this host (the
// ready and notify URLs): it keeps connections alive, uses no proxy, and
// follows no redirect.
func localClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// localDo sends req and returns an error unless the answer is 2xx; the body
// is read (up to 64 KiB) and closed, so that the connection is kept.
func localDo(client *http.Client, req *http.Request) error {
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
