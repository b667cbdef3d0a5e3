package faillimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natstest"
)

// newLimiter is a Limiter of DefaultLimits on its own connection to ns, as
// each identity replica has.
func newLimiter(t *testing.T, ns *server.Server) *Limiter {
	return newLimiterAt(t, ns, nil)
}

// newLimiterAt is newLimiter with the clock now.
func newLimiterAt(t *testing.T, ns *server.Server, now func() time.Time) *Limiter {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	return New(js, 1, DefaultLimits, now)
}

// fakeClock is a clock that moves only when told.
func fakeClock() (now func() time.Time, advance func(time.Duration)) {
	var ns atomic.Int64
	ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return func() time.Time { return time.Unix(0, ns.Load()) }, func(d time.Duration) { ns.Add(int64(d)) }
}

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantLimited(t *testing.T, err error) *LimitedError {
	t.Helper()
	var le *LimitedError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want *LimitedError", err)
	}
	return le
}

func TestLimiter(t *testing.T) {
	ns := natstest.Start(t)
	const ip1, ip2 = "203.0.113.7", "198.51.100.9"

	t.Run("limit per username and IP", func(t *testing.T) {
		l := newLimiter(t, ns)
		for i := range 5 {
			if _, err := l.Take(ctx5s(t), "alice", ip1); err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
		}
		_, err := l.Take(ctx5s(t), "alice", ip1)
		if le := wantLimited(t, err); le.RetryAfter < Window-time.Minute || le.RetryAfter > Window {
			t.Errorf("retry after %s, want about %s", le.RetryAfter, Window)
		}
		if _, err := l.Take(ctx5s(t), "alice", ip2); err != nil {
			t.Errorf("alice from another IP: %v", err)
		}
		if _, err := l.Take(ctx5s(t), "bob", ip1); err != nil {
			t.Errorf("another user from the same IP: %v", err)
		}
	})

	// Every address of an IPv6 /64 shares the five attempts.
	t.Run("an IPv6 /64 is one address", func(t *testing.T) {
		l := newLimiter(t, ns)
		for i := range 5 {
			if _, err := l.Take(ctx5s(t), "ivy", fmt.Sprintf("2001:db8:1:2::%x", i+1)); err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
		}
		_, err := l.Take(ctx5s(t), "ivy", "2001:db8:1:2:ffff:ffff:ffff:ffff")
		wantLimited(t, err)
		if _, err := l.Take(ctx5s(t), "ivy", "2001:db8:1:3::1"); err != nil {
			t.Errorf("the next /64: %v", err)
		}
	})

	t.Run("a success resets", func(t *testing.T) {
		l := newLimiter(t, ns)
		for range 4 {
			if _, err := l.Take(ctx5s(t), "carol", ip1); err != nil {
				t.Fatal(err)
			}
		}
		a, err := l.Take(ctx5s(t), "carol", ip1)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Succeeded(ctx5s(t)); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := l.Take(ctx5s(t), "carol", ip1); err != nil {
				t.Fatalf("attempt %d after a success: %v", i+1, err)
			}
		}
		_, err = l.Take(ctx5s(t), "carol", ip1)
		wantLimited(t, err)
	})

	t.Run("a released slot is not a failure", func(t *testing.T) {
		l := newLimiter(t, ns)
		a, err := l.Take(ctx5s(t), "dave", ip1)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx5s(t)); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := l.Take(ctx5s(t), "dave", ip1); err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
		}
		_, err = l.Take(ctx5s(t), "dave", ip1)
		wantLimited(t, err)
	})

	t.Run("replicas share the count", func(t *testing.T) {
		a, b := newLimiter(t, ns), newLimiter(t, ns)
		for range 5 {
			if _, err := a.Take(ctx5s(t), "erin", ip1); err != nil {
				t.Fatal(err)
			}
		}
		_, err := b.Take(ctx5s(t), "erin", ip1)
		wantLimited(t, err)
	})

	// Slots are taken before checking, atomically: a concurrent burst over
	// two replicas gets exactly the limit, never more.
	t.Run("burst over two replicas", func(t *testing.T) {
		replicas := []*Limiter{newLimiter(t, ns), newLimiter(t, ns)}
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				_, err := replicas[i%2].Take(ctx5s(t), "frank", ip1)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		var taken, limited int
		for err := range errs {
			var le *LimitedError
			switch {
			case err == nil:
				taken++
			case errors.As(err, &le):
				limited++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if taken != 5 || limited != 15 {
			t.Errorf("taken %d, limited %d; want 5 and 15", taken, limited)
		}
	})

	// Many addresses against one username: 10 failures, then each attempt
	// waits 1 s, 2 s, 4 s … after the last, up to 5 minutes; never a
	// lock-out.
	t.Run("per username from every address", func(t *testing.T) {
		now, advance := fakeClock()
		l := newLimiterAt(t, ns, now)
		addr := 0
		take := func() error {
			addr++
			_, err := l.Take(ctx5s(t), "judy", fmt.Sprintf("198.18.%d.%d", addr/256, addr%256))
			return err
		}
		for i := range 10 {
			if err := take(); err != nil {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
		if le := wantLimited(t, take()); le.RetryAfter != time.Second {
			t.Errorf("11th attempt: retry after %s, want 1s", le.RetryAfter)
		}
		for k := range 12 {
			delay := min(time.Second<<k, 5*time.Minute)
			advance(delay - time.Millisecond)
			if le := wantLimited(t, take()); le.RetryAfter != time.Second {
				t.Errorf("wait %d, 1ms early: retry after %s", k, le.RetryAfter)
			}
			advance(time.Millisecond)
			if err := take(); err != nil {
				t.Fatalf("wait %d (%s) passed: %v", k, delay, err)
			}
			next := min(delay*2, 5*time.Minute)
			if le := wantLimited(t, take()); le.RetryAfter != next {
				t.Errorf("after wait %d: retry after %s, want %s", k, le.RetryAfter, next)
			}
		}
		// Another username is not slowed.
		if _, err := l.Take(ctx5s(t), "judy2", "198.18.0.1"); err != nil {
			t.Errorf("another username: %v", err)
		}
	})

	// The username's slots are taken atomically too: a concurrent burst from
	// 40 addresses over two replicas gets exactly 10.
	t.Run("per username burst over two replicas", func(t *testing.T) {
		now, _ := fakeClock()
		replicas := []*Limiter{newLimiterAt(t, ns, now), newLimiterAt(t, ns, now)}
		var taken, limited atomic.Int32
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				_, err := replicas[i%2].Take(ctx5s(t), "kim", fmt.Sprintf("192.0.2.%d", i))
				var le *LimitedError
				switch {
				case err == nil:
					taken.Add(1)
				case errors.As(err, &le):
					limited.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		if taken.Load() != 10 || limited.Load() != 30 {
			t.Errorf("taken %d, limited %d; want 10 and 30", taken.Load(), limited.Load())
		}
	})

	// A success clears the address's count, not the username's; a release
	// gives both back.
	t.Run("success and release of the username's count", func(t *testing.T) {
		now, _ := fakeClock()
		l := newLimiterAt(t, ns, now)
		for i := range 9 {
			if _, err := l.Take(ctx5s(t), "leo", fmt.Sprintf("192.0.2.%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		a, err := l.Take(ctx5s(t), "leo", "203.0.113.200")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx5s(t)); err != nil {
			t.Fatal(err)
		}
		a, err = l.Take(ctx5s(t), "leo", "203.0.113.200") // the 10th again
		if err != nil {
			t.Fatalf("after a release: %v", err)
		}
		if err := a.Succeeded(ctx5s(t)); err != nil {
			t.Fatal(err)
		}
		_, err = l.Take(ctx5s(t), "leo", "203.0.113.201")
		wantLimited(t, err)
	})

	t.Run("keys hide the username and IP", func(t *testing.T) {
		l := newLimiter(t, ns)
		if _, err := l.Take(ctx5s(t), "grace", ip1); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("grace\x00" + ip1))
		want := hex.EncodeToString(sum[:])
		kv, err := l.bucket(ctx5s(t))
		if err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx5s(t), want)
		if err != nil || string(e.Value()) != "1" {
			t.Fatalf("key %s: %v, %v", want, e, err)
		}
	})
}

// Without KV there are no counts: Take fails, and not as a limit (callers
// answer service_unavailable rather than letting the attempt through).
func TestLimiterWithoutKV(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l := New(js, 1, DefaultLimits, nil)
	nc.Close()
	_, err = l.Take(ctx5s(t), "alice", "203.0.113.7")
	var le *LimitedError
	if err == nil || errors.As(err, &le) {
		t.Fatalf("err = %v, want a KV error", err)
	}
}

func TestBucketConfig(t *testing.T) {
	c := BucketConfig(3)
	if c.Bucket != "wxlogin_faillimit" || c.TTL != 15*time.Minute || c.Replicas != 3 || c.History != 1 {
		t.Errorf("bucket config %+v", c)
	}
}
