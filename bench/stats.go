package main

import (
	"math"
	"slices"
	"time"
)

// latencies are one scenario's request latencies, merged from every client.
type latencies []time.Duration

// percentile is the nearest-rank percentile q (0 < q <= 1) of the sorted
// latencies: the smallest value at least q of them do not exceed. Zero for
// none.
func (l latencies) percentile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(l)))) - 1
	return l[min(max(rank, 0), len(l)-1)]
}

// summary is what the table shows of a scenario's latencies.
type summary struct {
	n                  int
	p50, p95, p99, max time.Duration
}

func summarize(l latencies) summary {
	slices.Sort(l)
	s := summary{n: len(l), p50: l.percentile(0.50), p95: l.percentile(0.95), p99: l.percentile(0.99)}
	if len(l) > 0 {
		s.max = l[len(l)-1]
	}
	return s
}

// errorCounts are failed requests by what failed: "401 wechat_code_used",
// "transport", ...
type errorCounts map[string]int

func (e errorCounts) add(other errorCounts) {
	for k, v := range other {
		e[k] += v
	}
}

func (e errorCounts) total() int {
	n := 0
	for _, v := range e {
		n += v
	}
	return n
}
