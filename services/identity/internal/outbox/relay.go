// Package outbox relays the events that identity's transactions write to the
// outbox table onto the JetStream stream WXLOGIN_EVENTS: at least once, with
// the event id as Nats-Msg-Id so the stream drops redeliveries. Several
// relays (one per replica) share the work through FOR UPDATE SKIP LOCKED.
// A published row is deleted, in its batch's one transaction: the outbox
// holds only what is still to publish, and a relay never updates a row.
// Direct publishes the events that need no outbox.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// StreamConfig is the event stream, kept in replicas copies (1 on a single
// server, typically 3 on a cluster). The duplicate window bounds how late a
// redelivery the stream itself still drops; subscribers dedupe by id beyond it.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        identity.EventStream,
		Description: "wxlogin user events (identity's outbox)",
		Subjects:    []string{identity.EventStreamSubjects},
		Storage:     jetstream.FileStorage,
		Duplicates:  2 * time.Minute,
		MaxAge:      7 * 24 * time.Hour,
		Replicas:    replicas,
	}
}

// Options tune a Relay; zero values take the defaults.
type Options struct {
	BatchSize      int           // rows per transaction; default 200
	Interval       time.Duration // poll when nothing signals; default 1s
	MaxBackoff     time.Duration // cap of the retry delay after a failure; default 5s
	PublishTimeout time.Duration // wait for a batch's acks; default 5s
	// Linger: after a wake-up, wait this long for more commits to batch
	// with (under load one transaction then carries many events); default 5ms.
	Linger   time.Duration
	Replicas int // copies of the stream it (re)creates; default 1
	// Published, if set, is told how many events each batch published.
	Published func(n int)
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 200
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.Linger <= 0 {
		o.Linger = 5 * time.Millisecond
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
}

const (
	qPending = `
SELECT id, subject, payload FROM outbox
WHERE published_at IS NULL
ORDER BY created_at, seq
LIMIT $1
FOR UPDATE SKIP LOCKED`
	// qDeletePublished deletes what the batch published and counts the
	// logins among it, per minute of the login and kind, for the admin
	// dashboard: here, once per event and off the login's own path. The
	// rows go in key order so two relays cannot deadlock on them.
	qDeletePublished = `
WITH m AS (
	DELETE FROM outbox WHERE id = ANY($1::uuid[]) RETURNING subject, payload, created_at
)
INSERT INTO login_counts AS c (minute, kind, n)
SELECT date_trunc('minute', m.created_at), m.payload->>'kind', count(*)
FROM m
WHERE m.subject = '` + identity.SubjectUserLoggedIn + `' AND m.payload->>'kind' IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (minute, kind) DO UPDATE SET n = c.n + EXCLUDED.n`
)

// Relay publishes outbox rows. Run it once per process; Notify it after
// each commit that wrote an event.
type Relay struct {
	db   *sqlx.DB
	js   jetstream.JetStream
	log  *slog.Logger
	opts Options
	wake chan struct{}

	streamReady bool // owned by Run
}

// New returns a relay from db to the JetStream of nc.
func New(db *sqlx.DB, nc *nats.Conn, log *slog.Logger, opts Options) (*Relay, error) {
	opts.defaults()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(opts.PublishTimeout),
		jetstream.WithPublishAsyncMaxPending(2*opts.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Relay{db: db, js: js, log: log, opts: opts, wake: make(chan struct{}, 1)}, nil
}

// Notify wakes the relay; it never blocks (a pending wake-up covers many commits).
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx is cancelled, then returns nil. Failures (NATS or
// Postgres away) are retried with capped exponential backoff; a row is
// deleted only after JetStream acknowledged it, so none is lost.
func (r *Relay) Run(ctx context.Context) error {
	ticker := time.NewTicker(r.opts.Interval)
	defer ticker.Stop()
	// 100 ms doubling up to MaxBackoff, from the start again after a success.
	retry := &backoff.ExponentialBackOff{InitialInterval: min(100*time.Millisecond, r.opts.MaxBackoff), Multiplier: 2, MaxInterval: r.opts.MaxBackoff}
	failing := false
	for {
		err := r.drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failing = true
			wait := retry.NextBackOff()
			r.log.Warn("outbox relay failed; will retry", "retry_in", wait, "error", err)
			// Wake-ups do not cut a backoff short: under load they come constantly.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		if failing {
			r.log.Info("outbox relay recovered")
			failing = false
			retry.Reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.opts.Linger):
			}
		case <-ticker.C:
		}
	}
}

// drain relays batches until the outbox has no more pending rows for us.
func (r *Relay) drain(ctx context.Context) error {
	if !r.streamReady {
		if _, err := r.js.CreateOrUpdateStream(ctx, StreamConfig(r.opts.Replicas)); err != nil {
			return fmt.Errorf("stream %s: %w", identity.EventStream, err)
		}
		r.streamReady = true
	}
	for {
		n, err := r.relayBatch(ctx)
		if err != nil {
			return err
		}
		if n < r.opts.BatchSize {
			return nil
		}
	}
}

type row struct {
	ID      string `db:"id"`
	Subject string `db:"subject"`
	Payload []byte `db:"payload"`
}

// relayBatch publishes one batch in one transaction, whose row locks keep
// other relays off these rows until they are deleted.
func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	tx, err := r.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var rows []row
	if err := tx.SelectContext(ctx, &rows, qPending, r.opts.BatchSize); err != nil {
		return 0, fmt.Errorf("select pending: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	acked, pubErr := r.publish(ctx, rows)
	if pubErr != nil {
		// The stream may be gone or NATS away: ensure the stream again next time.
		r.streamReady = false
	}
	if len(acked) > 0 {
		if _, err := tx.ExecContext(ctx, qDeletePublished, pq.Array(acked)); err != nil {
			return 0, fmt.Errorf("delete published: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("commit: %w", err)
		}
		if r.opts.Published != nil {
			r.opts.Published(len(acked))
		}
	}
	if pubErr != nil {
		return 0, pubErr
	}
	return len(rows), nil
}

// publish sends rows asynchronously and waits for their acks; it returns
// the ids JetStream stored (or had already stored: duplicates are acked too).
func (r *Relay) publish(ctx context.Context, rows []row) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	var firstErr error
	for _, row := range rows {
		msg := &nats.Msg{Subject: row.Subject, Data: row.Payload}
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(row.ID))
		if err != nil {
			firstErr = fmt.Errorf("publish %s: %w", row.Subject, err)
			break
		}
		futures = append(futures, f)
	}
	acked := make([]string, 0, len(futures))
	for i, f := range futures {
		select {
		case <-f.Ok():
			acked = append(acked, rows[i].ID)
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = fmt.Errorf("publish %s: %w", rows[i].Subject, err)
			}
		case <-ctx.Done():
			if firstErr == nil {
				firstErr = fmt.Errorf("publish: no ack: %w", ctx.Err())
			}
			return acked, firstErr
		}
	}
	return acked, firstErr
}

// Pending counts the events not yet published.
func (r *Relay) Pending(ctx context.Context) (int, error) {
	var n int
	if err := r.db.GetContext(ctx, &n, `SELECT count(*) FROM outbox WHERE published_at IS NULL`); err != nil {
		return 0, fmt.Errorf("outbox pending: %w", err)
	}
	return n, nil
}
