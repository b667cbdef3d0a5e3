package store

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lib/pq"
)

// LoginCounter counts the logins whose user.logged_in skips the outbox (a
// returning WeChat login publishes it straight to JetStream), for the admin
// dashboard's logins_24h. The relay counts the outbox's own as it deletes
// them. Counting in memory and writing every few seconds keeps the login's
// one statement as it is: a counter row per (minute, kind) updated on every
// login would be a hot row under load. A crash loses at most one flush
// interval of counts, which a dashboard can bear.
type LoginCounter struct {
	s     *Store
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	mu     sync.Mutex
	counts map[loginMinute]int64
}

type loginMinute struct {
	minute time.Time
	kind   string
}

// loginCountsKept is how long login_counts rows live (the dashboard reads a day).
const loginCountsKept = 8 * 24 * time.Hour

// NewLoginCounter returns a counter that writes to s every `every` (5 s
// when <= 0) once Run is going.
func NewLoginCounter(s *Store, every time.Duration, log *slog.Logger) *LoginCounter {
	if every <= 0 {
		every = 5 * time.Second
	}
	return &LoginCounter{s: s, log: log, now: time.Now, every: every, counts: map[loginMinute]int64{}}
}

// Add counts one login of kind now.
func (c *LoginCounter) Add(kind string) {
	k := loginMinute{minute: c.now().UTC().Truncate(time.Minute), kind: kind}
	c.mu.Lock()
	c.counts[k]++
	c.mu.Unlock()
}

// Run writes the counts every interval, and once more when ctx ends; it
// also drops rows older than a week now and then.
func (c *LoginCounter) Run(ctx context.Context) error {
	t := time.NewTicker(c.every)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			return c.Flush(fctx)
		case <-t.C:
		}
		if err := c.Flush(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("login counts not written; kept for the next try", "error", err)
		}
		if c.now().Sub(lastPrune) >= time.Hour {
			lastPrune = c.now()
			if _, err := c.s.db.ExecContext(ctx, `DELETE FROM login_counts WHERE minute < $1`, c.now().Add(-loginCountsKept)); err != nil && ctx.Err() == nil {
				c.log.Warn("old login counts not pruned", "error", err)
			}
		}
	}
}

// Flush writes what was counted since the last flush in one statement; on
// failure the counts are kept for the next one.
func (c *LoginCounter) Flush(ctx context.Context) error {
	c.mu.Lock()
	batch := c.counts
	c.counts = map[loginMinute]int64{}
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	keys := make([]loginMinute, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	// Key order, as the relay's statement: two writers never deadlock.
	slices.SortFunc(keys, func(a, b loginMinute) int {
		if c := a.minute.Compare(b.minute); c != 0 {
			return c
		}
		return cmp.Compare(a.kind, b.kind)
	})
	minutes, kinds, ns := make([]string, len(keys)), make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		minutes[i], kinds[i], ns[i] = k.minute.Format(time.RFC3339), k.kind, batch[k]
	}
	_, err := c.s.db.ExecContext(ctx, `INSERT INTO login_counts AS c (minute, kind, n)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bigint[])
		ON CONFLICT (minute, kind) DO UPDATE SET n = c.n + EXCLUDED.n`,
		pq.Array(minutes), pq.Array(kinds), pq.Array(ns))
	if err != nil {
		c.mu.Lock()
		for k, n := range batch {
			c.counts[k] += n
		}
		c.mu.Unlock()
		return fmt.Errorf("login counts: %w", err)
	}
	return nil
}
