package poll_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/poll"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	poll.Until(t, 5*time.Second, "three increments", func() bool { return n.Load() == 3 })
}

// fakeT records a failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestUntilFailsAtTheDeadline(t *testing.T) {
	ft := &fakeT{TB: t}
	start := time.Now()
	func() {
		defer func() {
			if r := recover(); r != ft {
				panic(r)
			}
		}()
		poll.Until(ft, 30*time.Millisecond, "never", func() bool { return false })
	}()
	if !strings.Contains(ft.failed, "timed out") {
		t.Fatalf("no failure reported (%q)", ft.failed)
	}
	if took := time.Since(start); took < 30*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %s, want about 30ms", took)
	}
}
