// Package poll waits, in tests, for a condition that another goroutine or
// process makes true: the one wait-until of the repository. It polls with
// a deadline (never a bare sleep as synchronisation) and fails the test,
// naming what it waited for, when the deadline passes.
package poll

import (
	"testing"
	"time"
)

// maxInterval bounds the wait between two checks.
const maxInterval = 50 * time.Millisecond

// Until checks cond, first at once, then at growing intervals (1 ms
// doubling up to 50 ms), until it holds; after limit it fails t.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	interval := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(interval) // the polling interval; the deadline bounds the wait
		interval = min(2*interval, maxInterval)
	}
}
