package ratelimit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestParseSpec(t *testing.T) {
	good := []struct {
		in   string
		want Spec
	}{
		{"10/s,burst=20", Spec{10, 20}},
		{" 10 / S , burst = 20 ", Spec{10, 20}},
		{"200/s,burst=400", Spec{200, 400}},
		{"10/s", Spec{10, 10}},
		{"600/m", Spec{10, 600}},
		{"60/min,burst=5", Spec{1, 5}},
		{"3600/h", Spec{1, 3600}},
		{"0.5/s", Spec{0.5, 1}},
		{"off", Spec{}},
		{"OFF", Spec{}},
		{"0", Spec{}},
	}
	for _, c := range good {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseSpec(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			// String round-trips.
			again, err := ParseSpec(got.String())
			if err != nil || again != got {
				t.Errorf("round trip of %q: %+v, %v", got.String(), again, err)
			}
		})
	}
	bad := []string{"", "10", "ten/s", "-1/s", "0/s", "10/d", "10/s,burst=0", "10/s,burst=x", "10/s,bust=3", "10/s,20", "NaN/s", "Inf/s"}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			if s, err := ParseSpec(in); err == nil {
				t.Errorf("ParseSpec(%q) = %+v, want an error", in, s)
			}
		})
	}
}

// clock is a hand-moved time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAllow(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Spec{Rate: 2, Burst: 3}, Options{Now: clk.now})

	for i := range 3 {
		if ok, _ := l.Allow("1.2.3.4"); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("1.2.3.4")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("after the burst: ok %v, retry after %v; want refused, 500ms", ok, wait)
	}
	// A refusal takes no token: the wait does not grow with retries.
	if _, again := l.Allow("1.2.3.4"); again != wait {
		t.Errorf("second refusal waits %v, first %v", again, wait)
	}
	if ok, _ := l.Allow("5.6.7.8"); !ok {
		t.Error("another key is limited by the first one's use")
	}
	clk.add(500 * time.Millisecond)
	if ok, _ := l.Allow("1.2.3.4"); !ok {
		t.Error("refused after the refill time")
	}
	if ok, _ := l.Allow("1.2.3.4"); ok {
		t.Error("allowed twice after one token's refill")
	}
}

func TestOffAllowsEverything(t *testing.T) {
	l := New(Spec{}, Options{})
	for range 1000 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("refused with the limit off")
		}
	}
	if l.Len() != 0 {
		t.Errorf("remembered %d keys with the limit off", l.Len())
	}
}

func TestBounded(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	t.Run("at most MaxKeys", func(t *testing.T) {
		l := New(Spec{Rate: 1, Burst: 1}, Options{MaxKeys: 64, Now: clk.now})
		for i := range 10_000 {
			l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		}
		if n := l.Len(); n > 64 {
			t.Errorf("%d keys remembered, want at most 64", n)
		}
	})
	t.Run("idle keys are forgotten", func(t *testing.T) {
		l := New(Spec{Rate: 10, Burst: 10}, Options{Now: clk.now})
		for i := range 1000 {
			l.Allow(fmt.Sprintf("k%d", i))
		}
		before := l.Len()
		// Past the 1s refill time every bucket is full again.
		clk.add(2 * time.Second)
		for i := range 1000 {
			l.Allow(fmt.Sprintf("new%d", i))
		}
		if n := l.Len(); n >= before+1000 {
			t.Errorf("%d keys after replacing %d idle ones; nothing was forgotten", n, before)
		}
	})
	t.Run("an active key is kept", func(t *testing.T) {
		l := New(Spec{Rate: 1, Burst: 1}, Options{MaxKeys: 2 * shardCount, Now: clk.now})
		l.Allow("busy")
		// Fill the busy key's shard with others; the busy key is touched
		// each time, so eviction picks the others.
		for i := range 500 {
			l.Allow(fmt.Sprintf("other%d", i))
			if ok, _ := l.Allow("busy"); ok {
				t.Fatalf("busy key got a fresh bucket after %d other keys", i+1)
			}
		}
	})
}

func TestConcurrent(t *testing.T) {
	l := New(Spec{Rate: rate.Every(time.Hour), Burst: 50}, Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 16 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := l.Allow("same"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("%d allowed out of a burst of 50", allowed)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 59 * time.Second: 59} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
	if !strings.Contains(Spec{Rate: 200, Burst: 400}.String(), "burst=400") {
		t.Error("String lacks the burst")
	}
}
