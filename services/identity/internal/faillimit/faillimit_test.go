package faillimit

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiter(t *testing.T) {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(5, 15*time.Minute, 100, c.now)
	const alice, other = "alice\x00203.0.113.7", "alice\x00198.51.100.9"

	for i := range 4 {
		l.Fail(alice)
		if _, blocked := l.Blocked(alice); blocked {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	l.Fail(alice)
	left, blocked := l.Blocked(alice)
	if !blocked || left != 15*time.Minute {
		t.Fatalf("after 5 failures: blocked %v, %v left; want blocked, 15m", blocked, left)
	}
	if _, blocked := l.Blocked(other); blocked {
		t.Error("another IP is blocked too")
	}
	c.advance(10 * time.Minute)
	if left, blocked := l.Blocked(alice); !blocked || left != 5*time.Minute {
		t.Errorf("10m later: blocked %v, %v left", blocked, left)
	}
	c.advance(5 * time.Minute)
	if _, blocked := l.Blocked(alice); blocked {
		t.Error("still blocked after the window")
	}
	if l.Len() != 0 {
		t.Errorf("expired key kept: %d keys", l.Len())
	}

	// A failure after the window starts a new one.
	for range 5 {
		l.Fail(alice)
	}
	c.advance(15 * time.Minute)
	l.Fail(alice)
	if _, blocked := l.Blocked(alice); blocked {
		t.Error("an old window's failures still count")
	}

	// A success forgets the failures.
	for range 4 {
		l.Fail(other)
	}
	l.Reset(other)
	l.Fail(other)
	if _, blocked := l.Blocked(other); blocked {
		t.Error("failures before a success still count")
	}
}

func TestLimiterIsBounded(t *testing.T) {
	c := &clock{t: time.Now()}
	l := New(2, time.Hour, 3, c.now)
	l.Fail("a")
	l.Fail("a")
	for i := range 10 {
		l.Fail(fmt.Sprint("k", i))
		if l.Len() > 3 {
			t.Fatalf("%d keys held, capacity 3", l.Len())
		}
	}
	// The most recently failed keys stay.
	l.Fail("k9")
	if _, blocked := l.Blocked("k9"); !blocked {
		t.Error("recent key forgotten")
	}
	if _, blocked := l.Blocked("a"); blocked {
		t.Error("oldest key kept past capacity")
	}
}
