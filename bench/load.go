package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// reqTimeout bounds one request (a long poll has its own).
const reqTimeout = 10 * time.Second

// answer is what a request got back.
type answer struct {
	status int
	body   []byte
	header http.Header
}

// send makes one request and reads the whole answer; the error is for
// failures to get one at all.
func send(ctx context.Context, hc *http.Client, method, url string, body []byte, header ...string) (answer, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// failure names what went wrong with a request for the errors column: the
// status and the problem's code ("503 service_unavailable"), or the
// transport failure.
func failure(a answer, err error) string {
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return "timeout"
		case errors.Is(err, context.Canceled):
			return "canceled"
		}
		return "transport"
	}
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(a.body, &p) == nil && p.Code != "" {
		return fmt.Sprintf("%d %s", a.status, p.Code)
	}
	return fmt.Sprintf("%d", a.status)
}

// expect is "" when the request got status, else its failure.
func expect(a answer, err error, status int) string {
	if err != nil || a.status != status {
		return failure(a, err)
	}
	return ""
}

// op is one operation of client w, its k-th: "" when it succeeded, else
// what failed.
type op func(ctx context.Context, w, k int) string

// outcome is what a load produced.
type outcome struct {
	lat     latencies
	errs    errorCounts
	elapsed time.Duration
}

// runLoad runs clients clients, each doing op back to back, for d.
func runLoad(ctx context.Context, clients int, d time.Duration, fn op) outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lats := make([]latencies, clients)
	errs := make([]errorCounts, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			errs[w] = errorCounts{}
			for k := 0; time.Now().Before(deadline) && ctx.Err() == nil; k++ {
				t0 := time.Now()
				rctx, rcancel := context.WithTimeout(ctx, reqTimeout)
				e := fn(rctx, w, k)
				rcancel()
				if e == "" {
					lats[w] = append(lats[w], time.Since(t0))
				} else {
					errs[w][e]++
				}
			}
		})
	}
	wg.Wait()
	o := outcome{elapsed: time.Since(start), errs: errorCounts{}}
	for w := range clients {
		o.lat = append(o.lat, lats[w]...)
		o.errs.add(errs[w])
	}
	return o
}

// runEach runs fn once for each of n items on clients clients: setups
// and warm-ups. It fails on the first failure.
func runEach(ctx context.Context, clients, n int, fn func(ctx context.Context, i int) string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(clients, max(n, 1)) {
		wg.Go(func() {
			for i := range next {
				rctx, rcancel := context.WithTimeout(ctx, reqTimeout)
				e := fn(rctx, i)
				rcancel()
				if e != "" {
					once.Do(func() { first = fmt.Errorf("setup item %d: %s", i, e); cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return first
}
