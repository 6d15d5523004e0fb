// Package readyurl checks an application's readiness over HTTP, for
// elector.WithCandidacyGate: a candidate then campaigns only while its
// application answers 2xx.
//
//	check, err := readyurl.Check("http://127.0.0.1:8080/ready")
//	if err != nil {
//		return err
//	}
//	e, err := elector.New("my-election", elector.WithRESTConfig(cfg),
//		elector.WithCandidacyGate(check))
package readyurl

import (
	"context"
	"fmt"
	"net/http"

	"github.com/k8s-elector/elector/internal/loopback"
)

// Check returns a check that GETs rawURL and passes on a 2xx answer; any
// other answer fails it with an error that names the status (a 3xx too: no
// redirect is followed), as does no answer. Each GET is bounded by the
// check's context, which the Elector bounds by its request timeout. The URL
// must be http or https on a loopback address or localhost: a candidate
// must judge its own application.
func Check(rawURL string) (func(ctx context.Context) error, error) {
	u, err := loopback.URL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ready URL: %v", err)
	}
	return check(u.String(), loopback.Client()), nil
}

// check returns the check that GETs target with client.
func check(target string, client *http.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		return loopback.Do(client, req)
	}
}
