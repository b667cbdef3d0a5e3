// Package poll waits, in tests, for a condition that another goroutine or
// process makes true: the one wait-until of the repository. It polls with
// a deadline (never a bare sleep as synchronisation) and fails the test,
// naming what it waited for, when the deadline passes.
package poll

import (
	"errors"
	"testing"
	"time"
)

// maxInterval bounds the wait between two checks.
const maxInterval = 50 * time.Millisecond

// Until checks cond, first at once, then at growing intervals (1 ms
// doubling up to 50 ms), until it holds; after limit it fails t.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	wait(t, limit, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// UntilNil is Until for a check that can say why it does not hold yet: it
// polls check until it returns nil, and fails t with its last error.
func UntilNil(t testing.TB, limit time.Duration, what string, check func() error) {
	t.Helper()
	wait(t, limit, what, check)
}

// errNotYet is Until's condition not holding: nothing more to report.
var errNotYet = errors.New("not yet")

func wait(t testing.TB, limit time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	interval := time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errNotYet {
				t.Fatalf("timed out after %s waiting for %s", limit, what)
			}
			t.Fatalf("timed out after %s waiting for %s: %v", limit, what, err)
		}
		time.Sleep(interval) // the polling interval; the deadline bounds the wait
		interval = min(2*interval, maxInterval)
	}
}
