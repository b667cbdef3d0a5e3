package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// longPolls is scenario 6: cfg.polls browsers each long-poll a pending
// ticket of their own at once; while they wait, it measures the gateway's
// (and everyone's) CPU and the gateway's memory. Nothing should change, so
// nothing should cost: the polls wait on a KV watch, not by polling KV.
func (b *bencher) longPolls(ctx context.Context, st *stack) (row, error) {
	n := b.cfg.polls
	type ticket struct{ id, token string }
	tickets := make([]ticket, n)
	err := runEach(ctx, b.cfg.clients, n, func(ctx context.Context, i int) string {
		a, err := send(ctx, b.r.hc, http.MethodPost, b.r.base+qrPath, []byte(`{}`))
		if e := expect(a, err, http.StatusCreated); e != "" {
			return e
		}
		var t struct {
			Ticket    string `json:"ticket"`
			PollToken string `json:"poll_token"`
		}
		if json.Unmarshal(a.body, &t) != nil {
			return "create: not JSON"
		}
		tickets[i] = ticket{t.Ticket, t.PollToken}
		return ""
	})
	if err != nil {
		return row{}, err
	}
	var rss0 int64
	gw := st.children["gateway"]
	if gw != nil {
		rss0, _ = rss(gw.pid())
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var written sync.WaitGroup
	var done sync.WaitGroup
	var early atomic.Int64
	errs := errorCounts{}
	var mu sync.Mutex
	written.Add(n)
	for _, t := range tickets {
		done.Go(func() {
			var once sync.Once
			tctx := httptrace.WithClientTrace(pctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(written.Done) }})
			a, err := send(tctx, b.r.hc, http.MethodGet, b.r.base+qrPath+"/"+t.id+"?wait=30s", nil, "X-Poll-Token", t.token)
			once.Do(written.Done)
			if pctx.Err() != nil {
				return // ended by the bench after the window
			}
			early.Add(1)
			mu.Lock()
			errs["answered while it should wait: "+failure(a, err)]++
			mu.Unlock()
		})
	}
	allWritten := make(chan struct{})
	go func() { written.Wait(); close(allWritten) }()
	select {
	case <-allWritten:
	case <-time.After(30 * time.Second):
		return row{}, fmt.Errorf("not all %d polls were sent within 30 s", n)
	}
	// The window starts once the gateway has taken every poll in.
	time.Sleep(time.Second)
	pids := st.pids(ctx)
	cpu0 := map[string]cpuSample{}
	for name, p := range pids {
		cpu0[name] = sampleCPU(p)
	}
	t0 := time.Now()
	time.Sleep(b.cfg.pollWindow) // the measurement: nothing should happen
	window := time.Since(t0)
	r := row{name: fmt.Sprintf("%s long polls waiting", thousands(n)), ok: n - int(early.Load())}
	var cpuNote string
	if len(st.children) > 0 {
		for _, name := range processes {
			p, ok := pids[name]
			if !ok {
				continue
			}
			d := used(cpu0[name], sampleCPU(p))
			cpuNote += fmt.Sprintf(" %s %s (%.1f%% of a core),", name, ms(d), 100*d.Seconds()/window.Seconds())
		}
	}
	var rss1 int64
	if gw != nil {
		rss1, _ = rss(gw.pid())
	}
	cancel()
	done.Wait()
	mu.Lock()
	r.errs = errs
	mu.Unlock()
	if gw != nil {
		b.pollNotes = append(b.pollNotes,
			fmt.Sprintf("- %d long polls waiting for %s: gateway RSS %s before the polls, %s while they wait; CPU over the window:%s",
				n, window.Round(100*time.Millisecond), mib(rss0), mib(rss1), strings.TrimSuffix(cpuNote, ",")))
	}
	return r, nil
}
