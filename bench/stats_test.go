package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) latencies {
		var l latencies
		for _, x := range v {
			l = append(l, time.Duration(x)*time.Millisecond)
		}
		return l
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted: summarize sorts
	}
	cases := []struct {
		name               string
		in                 latencies
		p50, p95, p99, max time.Duration
	}{
		{"none", nil, 0, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		// Nearest rank: p50 of 1..4 is the 2nd value, p95 and p99 the 4th.
		{"four", ms(4, 1, 3, 2), 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond},
		{"1..100", ms(hundred...), 50 * time.Millisecond, 95 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		s := summarize(tc.in)
		if s.p50 != tc.p50 || s.p95 != tc.p95 || s.p99 != tc.p99 || s.max != tc.max || s.n != len(tc.in) {
			t.Errorf("%s: got p50 %v p95 %v p99 %v max %v n %d", tc.name, s.p50, s.p95, s.p99, s.max, s.n)
		}
	}
}

func TestErrorCounts(t *testing.T) {
	e := errorCounts{"503 service_unavailable": 2}
	e.add(errorCounts{"503 service_unavailable": 1, "timeout": 4})
	if e.total() != 7 || e["503 service_unavailable"] != 3 {
		t.Errorf("%v", e)
	}
	if got := errorsCell(e); got != "4× timeout, 3× 503 service_unavailable" {
		t.Errorf("errorsCell = %q", got)
	}
	if got := errorsCell(nil); got != "0" {
		t.Errorf("errorsCell(nil) = %q", got)
	}
}
