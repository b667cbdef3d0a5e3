package poll_test

import (
	"errors"
	"fmt"
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
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}

// fail runs wait with ft and returns what it failed with.
func (f *fakeT) fail(t *testing.T, wait func()) string {
	t.Helper()
	func() {
		defer func() {
			if r := recover(); r != f {
				panic(r)
			}
		}()
		wait()
	}()
	return f.failed
}

func TestUntilFailsAtTheDeadline(t *testing.T) {
	ft := &fakeT{TB: t}
	start := time.Now()
	failed := ft.fail(t, func() { poll.Until(ft, 30*time.Millisecond, "never", func() bool { return false }) })
	if failed != "timed out after 30ms waiting for never" {
		t.Fatalf("failure %q", failed)
	}
	if took := time.Since(start); took < 30*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %s, want about 30ms", took)
	}
}

func TestUntilNil(t *testing.T) {
	var n atomic.Int32
	poll.UntilNil(t, 5*time.Second, "three checks", func() error {
		if n.Add(1) < 3 {
			return errors.New("too few")
		}
		return nil
	})
	if n.Load() != 3 {
		t.Errorf("%d checks, want 3", n.Load())
	}

	ft := &fakeT{TB: t}
	n.Store(0)
	failed := ft.fail(t, func() {
		poll.UntilNil(ft, 30*time.Millisecond, "never", func() error { return fmt.Errorf("check %d", n.Add(1)) })
	})
	if want := fmt.Sprintf("timed out after 30ms waiting for never: check %d", n.Load()); failed != want {
		t.Fatalf("failure %q, want %q (the last error)", failed, want)
	}
}
