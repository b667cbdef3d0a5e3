// Package kvwatch keeps one watch on a NATS KV bucket (every key, or those
// matching a filter) alive for the life of a service: the repository's one
// KV watch loop. It waits for the bucket to appear rather than creating it
// (the bucket's owner does), rides out NATS restarts, and when a watch ends
// or the bucket is deleted or re-created it opens a new one and tells the
// handler to start over.
package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// Backoff bounds for opening the bucket and re-creating the watch: it
// doubles from minBackoff up to maxBackoff, and starts over once a watch has
// loaded.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// openTimeout bounds one attempt to look the bucket up.
const openTimeout = 5 * time.Second

// Handler receives what a watch delivers, from one goroutine at a time.
type Handler interface {
	// Begin is called when a new watch starts. With initial values, the
	// entries up to the next Loaded are the bucket's whole current content:
	// anything the handler knew before may be stale.
	Begin()
	// Entry is a value or a delete/purge marker (Operation tells).
	Entry(e jetstream.KeyValueEntry)
	// Loaded is called once a watch has delivered its initial values (at
	// once when the watch asked for updates only).
	Loaded()
}

// Options configure Run.
type Options struct {
	// Keys, when set, is the key filter to watch (e.g. "user.*") instead of
	// every key. Health then cannot be kept: it measures the view against
	// the whole stream.
	Keys string
	// UpdatesOnly skips the current values: only changes made after the
	// watch starts are delivered.
	UpdatesOnly bool
	// CheckEvery is how often the bucket is checked for having been
	// deleted or re-created under the watch (DefaultCheckEvery when zero).
	CheckEvery time.Duration
	// Health, when set, is kept up to date with how current the view is.
	Health *Health
}

// Health tells how current a watch's view of its bucket is. It is healthy
// while connected, with the bucket's content delivered up to the stream's
// last sequence as of the latest check; unhealthy while the connection is
// down, between watches (bucket gone, watch ended, reconnected) and while
// the view lags. Checks come every Options.CheckEvery, so a lost consumer
// shows as a lag that never closes.
type Health struct {
	now func() time.Time

	mu      sync.Mutex
	healthy bool
	since   time.Time // when it became unhealthy; zero: from the start
}

// NewHealth returns a Health, unhealthy until a watch has loaded; now is
// its clock.
func NewHealth(now func() time.Time) *Health { return &Health{now: now} }

// UnhealthyFor is how long the view has been unhealthy: 0 while healthy,
// and longer than any bound before the first load. A nil Health tracks
// nothing (0).
func (h *Health) UnhealthyFor() time.Duration {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.healthy:
		return 0
	case h.since.IsZero():
		return time.Duration(1<<63 - 1)
	}
	return max(h.now().Sub(h.since), time.Nanosecond)
}

// set records the state; a change to unhealthy starts the clock.
func (h *Health) set(healthy bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.healthy && !healthy {
		h.since = h.now()
	}
	h.healthy = healthy
}

// DefaultCheckEvery is the default of Options.CheckEvery. A watch does not
// survive a bucket deleted and created again: it would wait past the old
// sequence numbers and miss everything. One stream info request per
// interval finds that out.
const DefaultCheckEvery = 10 * time.Second

// Bucket opens a bucket lazily and remembers it: the lookup costs a
// round trip, and the bucket may not exist yet when the service starts.
type Bucket struct {
	js   jetstream.JetStream
	name string
	// lookup is held by the one lookup under way; other callers wait for
	// its result rather than send their own. A channel, not a mutex: with
	// NATS down a lookup lasts until its ctx ends, and waiting behind it
	// must end with the waiter's ctx.
	lookup chan struct{}

	mu  sync.Mutex // guards kv and gen; never held across a round trip
	kv  jetstream.KeyValue
	gen uint64 // counts forgets: a lookup sent before one is not remembered
}

// NewBucket returns a Bucket for name on js.
func NewBucket(js jetstream.JetStream, name string) *Bucket {
	return &Bucket{js: js, name: name, lookup: make(chan struct{}, 1)}
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Open returns the bucket; jetstream.ErrBucketNotFound until its owner has
// created it.
func (b *Bucket) Open(ctx context.Context) (jetstream.KeyValue, error) {
	if kv, _ := b.handle(); kv != nil {
		return kv, nil
	}
	select {
	case b.lookup <- struct{}{}:
		defer func() { <-b.lookup }()
	case <-ctx.Done():
		return nil, fmt.Errorf("open KV bucket %s: %w", b.name, ctx.Err())
	}
	kv, gen := b.handle()
	if kv != nil {
		return kv, nil // the lookup waited for found it
	}
	kv, err := b.js.KeyValue(ctx, b.name)
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %s: %w", b.name, err)
	}
	b.mu.Lock()
	if b.gen == gen {
		b.kv = kv
	}
	b.mu.Unlock()
	return kv, nil
}

// handle is the remembered handle (nil if none) and the forget count.
func (b *Bucket) handle() (jetstream.KeyValue, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.kv, b.gen
}

// forget drops the remembered handle: the bucket is gone or replaced.
func (b *Bucket) forget() {
	b.mu.Lock()
	b.kv = nil
	b.gen++
	b.mu.Unlock()
}

// Run watches the bucket and feeds h until ctx ends, opening the bucket and
// re-creating the watch with backoff whenever needed.
func Run(ctx context.Context, b *Bucket, opts Options, h Handler, log *slog.Logger) {
	if opts.Keys != "" && opts.Health != nil {
		panic("kvwatch: Health needs a watch of the whole bucket (no Keys)")
	}
	log = log.With("bucket", b.Name())
	retry := &backoff.ExponentialBackOff{InitialInterval: minBackoff, Multiplier: 2, MaxInterval: maxBackoff}
	failures := 0
	nc := b.js.Conn()
	for ctx.Err() == nil {
		before := nc.LastError()
		err := watch(ctx, b, opts, h, func() {
			// A watch that delivered its initial values is healthy: the
			// next failure starts from the shortest backoff again.
			retry.Reset()
			failures = 0
		})
		opts.Health.set(false)
		if ctx.Err() != nil {
			return
		}
		failures++
		// The first failures are expected at start (the bucket's owner
		// has not created it yet): warn only once it persists.
		level := slog.LevelInfo
		if failures > 5 {
			level = slog.LevelWarn
		}
		if denied := natsconn.Denied(nc, before); denied != nil {
			// Not the owner being late: a permission missing from this
			// service's NATS user. It stays unhealthy until that is fixed.
			level, err = slog.LevelError, fmt.Errorf("%w (this service's NATS user lacks a permission the watch needs)", denied)
		}
		wait := retry.NextBackOff()
		log.Log(ctx, level, "KV watch not running; retrying", "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

var (
	errWatchEnded     = errors.New("the watch ended")
	errBucketReplaced = errors.New("the bucket was deleted or re-created")
	errReconnected    = errors.New("reconnected to NATS")
)

// watch runs one watch until it ends or ctx is done.
func watch(ctx context.Context, b *Bucket, opts Options, h Handler, loaded func()) error {
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	kv, err := b.Open(octx)
	if err != nil {
		return err
	}
	// The stream's creation time tells a re-created bucket from this one;
	// its last sequence is what the initial values cover.
	start, err := bucketState(octx, kv)
	if err != nil {
		b.forget()
		return err
	}
	var wopts []jetstream.WatchOpt
	if opts.UpdatesOnly {
		wopts = append(wopts, jetstream.UpdatesOnly())
	}
	// Listen before watching, so no disconnect goes unseen.
	nc := b.js.Conn()
	status := nc.StatusChanged()
	defer nc.RemoveStatusListener(status)
	var w jetstream.KeyWatcher
	if opts.Keys != "" {
		w, err = kv.Watch(ctx, opts.Keys, wopts...)
	} else {
		w, err = kv.WatchAll(ctx, wopts...)
	}
	if err != nil {
		return fmt.Errorf("watch KV bucket %s: %w", b.Name(), err)
	}
	defer stop(w)

	every := opts.CheckEvery
	if every <= 0 {
		every = DefaultCheckEvery
	}
	check := time.NewTicker(every)
	defer check.Stop()

	// The view is current once it holds every sequence up to target.
	var (
		isLoaded  bool
		delivered uint64
		target    = start.lastSeq
	)
	report := func() {
		opts.Health.set(isLoaded && delivered >= target && nc.IsConnected())
	}
	load := func() {
		isLoaded, delivered = true, max(delivered, start.lastSeq)
		h.Loaded()
		loaded()
		report()
	}
	h.Begin()
	if opts.UpdatesOnly {
		load()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errWatchEnded
			}
			if e == nil {
				load()
				continue
			}
			delivered = max(delivered, e.Revision())
			h.Entry(e)
			report()
		case st, ok := <-status:
			if !ok {
				status = nil
				continue
			}
			report()
			if st == nats.CONNECTED {
				// Back after a disconnect. The watch's ordered consumer
				// resumes only once it has missed heartbeats (some 15 s
				// after a server restart): start over at once instead.
				return errReconnected
			}
		case <-check.C:
			if err := recheck(ctx, b, kv, start.created, &target); err != nil {
				return err
			}
			report()
		}
	}
}

// recheck looks at the bucket: errBucketReplaced when it was deleted or
// re-created; otherwise *target becomes its last sequence, or one no view
// reaches when it cannot tell (NATS down: the watch rides that out, its
// Health shows it).
func recheck(ctx context.Context, b *Bucket, kv jetstream.KeyValue, created time.Time, target *uint64) error {
	cctx, cancel := context.WithTimeout(ctx, openTimeout)
	now, err := bucketState(cctx, kv)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrBucketNotFound),
		err == nil && !now.created.Equal(created):
		b.forget()
		return errBucketReplaced
	case err != nil:
		*target = ^uint64(0) // cannot confirm the view is current
	default:
		*target = now.lastSeq
	}
	return nil
}

// state is what a watch needs to know of its bucket's stream.
type state struct {
	created time.Time
	lastSeq uint64
}

// bucketState is when the bucket's stream was created and its last sequence.
func bucketState(ctx context.Context, kv jetstream.KeyValue) (state, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return state{}, fmt.Errorf("KV bucket %s status: %w", kv.Bucket(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return state{}, nil
	}
	return state{created: bs.StreamInfo().Created, lastSeq: bs.StreamInfo().State.LastSeq}, nil
}

// drainTimeout bounds how long stop waits for a stopped watch to wind down.
const drainTimeout = time.Second

// stop ends a watch without waiting on NATS. Stop unsubscribes, then
// deletes the watch's consumer with a request that ignores any ctx: with
// the server gone it waits out the client's own timeout (5 s), which would
// hold up a shutdown. So it runs on its own, ending then or when the
// connection closes; the server drops an ephemeral consumer nobody listens
// to anyway. The subscription's callback blocks while the updates channel
// is full, so drain it until the subscription closes the channel.
func stop(w jetstream.KeyWatcher) {
	go func() { _ = w.Stop() }()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}
