// Package backoff paces the retries of the work that runs beside an
// election and must never delay it: Pod labels, Events, status pushes.
package backoff

import "time"

// Retries back off from MinDelay, doubling up to a limit (Limit), within
// these bounds.
const (
	MinDelay = 500 * time.Millisecond
	MaxDelay = 30 * time.Second
)

// Next returns the wait before the next retry, after waiting d (0 before
// the first retry), doubling up to limit.
func Next(d, limit time.Duration) time.Duration {
	if d == 0 {
		return min(MinDelay, limit)
	}
	return min(2*d, limit)
}

// Limit is the longest wait between two retries, given the election's
// retry period.
func Limit(retryPeriod time.Duration) time.Duration {
	return min(max(retryPeriod, MinDelay), MaxDelay)
}
