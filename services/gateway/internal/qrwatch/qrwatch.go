// Package qrwatch is the gateway's read-only view of the QR login tickets
// the session service keeps in KV bucket wxlogin_qr. Polls read a ticket
// with Get; long-polls wait for its next change through one watch on the
// whole bucket that this package shares among all of them, so a thousand
// waiting browsers cost a thousand map entries, not a thousand consumers.
package qrwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/kvwatch"
)

// Errors of Get. ErrUnavailable wraps the cause (no bucket yet, NATS down).
var (
	ErrNotFound    = errors.New("qrwatch: no such ticket")
	ErrUnavailable = errors.New("qrwatch: the ticket store is unavailable")
)

// Record is a ticket as stored, with the revision it was read at.
type Record struct {
	session.QRRecord
	Revision uint64
}

// Change is what a Waiter learns. Exactly one of its fields is set.
type Change struct {
	Record  *Record // the ticket's new value
	Deleted bool    // the ticket is gone (consumed, or purged)
	// Recheck: changes may have been missed (the shared watch was
	// re-created); read the ticket again.
	Recheck bool
}

// Tickets reads and watches wxlogin_qr. It is safe for concurrent use.
type Tickets struct {
	bucket *kvwatch.Bucket
	log    *slog.Logger
	// checkEvery is kvwatch's bucket check interval (its default when zero).
	checkEvery time.Duration

	mu      sync.Mutex
	waiters map[string]map[*Waiter]struct{}
	done    chan struct{} // closed when Run returns
}

// New returns Tickets over js; Run keeps its watch alive.
func New(js jetstream.JetStream, log *slog.Logger) *Tickets {
	return &Tickets{
		bucket:  kvwatch.NewBucket(js, session.BucketQR),
		log:     log,
		waiters: map[string]map[*Waiter]struct{}{},
		done:    make(chan struct{}),
	}
}

// Run keeps the shared watch alive until ctx ends; then every waiter is
// released (Done), so long-polls end promptly on shutdown.
func (t *Tickets) Run(ctx context.Context) {
	defer close(t.done)
	kvwatch.Run(ctx, t.bucket, kvwatch.Options{UpdatesOnly: true, CheckEvery: t.checkEvery}, (*handler)(t), t.log)
}

// Get reads a ticket.
func (t *Tickets) Get(ctx context.Context, ticket string) (Record, error) {
	kv, err := t.bucket.Open(ctx)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e, err := kv.Get(ctx, ticket)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return Record{}, ErrNotFound
	case err != nil:
		return Record{}, fmt.Errorf("%w: read ticket: %w", ErrUnavailable, err)
	}
	return decode(e)
}

func decode(e jetstream.KeyValueEntry) (Record, error) {
	var r Record
	if err := json.Unmarshal(e.Value(), &r.QRRecord); err != nil {
		return Record{}, fmt.Errorf("qrwatch: decode ticket at revision %d: %w", e.Revision(), err)
	}
	r.Revision = e.Revision()
	return r, nil
}

// Waiter receives the changes of one ticket.
type Waiter struct {
	t      *Tickets
	ticket string
	c      chan Change
}

// Watch starts delivering the ticket's changes. Call it before reading the
// ticket, so no change between the read and the wait is missed; Stop it
// when done.
func (t *Tickets) Watch(ticket string) *Waiter {
	w := &Waiter{t: t, ticket: ticket, c: make(chan Change, 1)}
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.waiters[ticket]
	if set == nil {
		set = map[*Waiter]struct{}{}
		t.waiters[ticket] = set
	}
	set[w] = struct{}{}
	return w
}

// C delivers the latest change not yet received (older ones are replaced:
// only the newest value matters).
func (w *Waiter) C() <-chan Change { return w.c }

// Done is closed when the gateway stops watching (shutdown).
func (w *Waiter) Done() <-chan struct{} { return w.t.done }

// Stop ends the delivery.
func (w *Waiter) Stop() {
	t := w.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if set := t.waiters[w.ticket]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(t.waiters, w.ticket)
		}
	}
}

// Waiting is the number of tickets with a waiter (for tests and metrics).
func (t *Tickets) Waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waiters)
}

// offer hands ch to w, replacing an undelivered older change. Only the
// watch goroutine sends, so after emptying the buffer the send cannot block.
func (w *Waiter) offer(ch Change) {
	select {
	case w.c <- ch:
	default:
		select {
		case <-w.c:
		default:
		}
		w.c <- ch
	}
}

// handler feeds the shared watch to the waiters.
type handler Tickets

// Begin: a new watch starts with updates only, so whatever changed while
// none ran is unknown: every waiter reads its ticket again.
func (h *handler) Begin() {
	t := (*Tickets)(h)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, set := range t.waiters {
		for w := range set {
			w.offer(Change{Recheck: true})
		}
	}
}

func (h *handler) Entry(e jetstream.KeyValueEntry) {
	t := (*Tickets)(h)
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.waiters[e.Key()]
	if len(set) == 0 {
		return
	}
	var ch Change
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		ch.Deleted = true
	} else if r, err := decode(e); err != nil {
		t.log.Warn("unreadable QR ticket in KV", "error", err)
		ch.Recheck = true
	} else {
		ch.Record = &r
	}
	for w := range set {
		w.offer(ch)
	}
}

func (h *handler) Loaded() {}
