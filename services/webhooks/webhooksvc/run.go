package webhooksvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/webhooks"
	"github.com/wxlogin/wxlogin/shared/jssetup"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/opshttp"
)

const (
	drainTimeout = 5 * time.Second
	// ackMargin is how much longer than an endpoint's timeout the server
	// waits for our ack before it hands the event to another copy: the
	// time to park it, or to wait for a free slot.
	ackMargin = 30 * time.Second
	// maxAckPending bounds the events of one endpoint out at once across
	// copies, those waiting for their retry included. It is not the
	// concurrency: a retry waiting an hour must not hold a request slot.
	maxAckPending = 1000
	// consumerInactive: a consumer no copy has pulled from for this long
	// (its endpoint left the file) is deleted by the server. The event
	// stream keeps events no longer than that anyway.
	consumerInactive = 7 * 24 * time.Hour
	// fetchWait is how long one pull waits for events.
	fetchWait = 30 * time.Second
	// settleTimeout bounds an ack and a dead letter's publish.
	settleTimeout = 5 * time.Second
	// parkRetry is the wait before an event is tried again when it could
	// not be parked (NATS away).
	parkRetry = 5 * time.Second
)

// Run delivers events until ctx is cancelled, then lets the deliveries in
// flight finish and returns nil. It returns an error when the start fails
// (a bad WXLOGIN_WEBHOOKS_FILE among others); while NATS or the event
// stream is not there yet, it waits.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error { return Serve(ctx, cfg, log, nil) }

// Serve is Run with the ops server (metrics, /livez, /readyz) on ops; nil
// listens on WXLOGIN_METRICS_ADDR (none: no ops server).
func Serve(ctx context.Context, cfg Config, log *slog.Logger, ops net.Listener) error {
	started := time.Now()
	if err := cfg.Validate(); err != nil {
		return err
	}
	eps, err := cfg.Endpoints()
	if err != nil {
		return err
	}
	log.Info("webhooks service starting", "config", cfg, "endpoints", endpointsLog(eps))

	nc, err := connect(cfg, "wxlogin-webhooks", true, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	m := newMetrics(eps)
	// Ready once every endpoint's consumer is there: deliveries can begin.
	var ready atomic.Bool
	readyFn := func(context.Context) error {
		switch {
		case !ready.Load():
			return errors.New("not delivering (starting or stopping)")
		case !nc.IsConnected():
			return errors.New("NATS not connected")
		}
		return nil
	}
	srv, err := opsServer(cfg, m, readyFn, log, ops)
	if err != nil {
		return err
	}
	stopOps := srv.Start()
	defer stopOps()

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	dead, err := ensureDeadStream(ctx, nc, js, cfg.NATSReplicas, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while starting
		}
		return err
	}
	workers := make([]*worker, len(eps))
	for i, ep := range eps {
		workers[i] = &worker{cfg: cfg, ep: ep, nc: nc, js: js, client: newClient(ep), m: m, log: log.With("endpoint", ep.Name)}
		if err := workers[i].bind(ctx, started); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	events, err := js.Stream(ctx, identity.EventStream)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("stream %s: %w", identity.EventStream, err)
	}
	ready.Store(true)
	log.Info("webhooks service ready", "endpoints", len(eps))

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Go(func() { watchBacklog(ctx, cfg.statsInterval(), workers, events, dead, m, log) })
	<-ctx.Done()
	ready.Store(false)
	log.Info("webhooks service stopping")
	wg.Wait()
	natsconn.Drain(nc, drainTimeout, log)
	return nil
}

func opsServer(cfg Config, m *metrics, ready func(context.Context) error, log *slog.Logger, ln net.Listener) (*opshttp.Server, error) {
	if ln != nil {
		return opshttp.New(ln, m.reg, ready, log, opshttp.WithPprof(cfg.Pprof)), nil
	}
	srv, err := opshttp.Listen(cfg.MetricsAddr, m.reg, ready, log, opshttp.WithPprof(cfg.Pprof))
	if err != nil {
		return nil, fmt.Errorf("WXLOGIN_METRICS_ADDR: %w", err)
	}
	return srv, nil
}

// connect connects as the NATS user events. With retry, a server that is
// not up yet is retried in the background instead of failing.
func connect(cfg Config, name string, retry bool, log *slog.Logger) (*nats.Conn, error) {
	return natsconn.Connect(natsconn.Options{
		URL: cfg.NATSURL, Credentials: cfg.NATSAuth, Name: name, Role: natsconn.Events, Retry: retry, Log: log,
	})
}

// worker delivers one endpoint's events: its own durable consumer, shared
// by every copy of the service (each event goes to one of them), so a slow
// or failing endpoint holds up no other.
type worker struct {
	cfg    Config
	ep     *Endpoint
	nc     *nats.Conn
	js     jetstream.JetStream
	client *http.Client
	m      *metrics
	log    *slog.Logger

	mu   sync.Mutex
	cons jetstream.Consumer // set by bind, which run calls again if it is deleted
}

func (w *worker) consumer() jetstream.Consumer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cons
}

// consumerConfig is the endpoint's consumer. A new one starts at from: a
// new endpoint gets the events stored since the service started with it,
// not the stream's week (nor, on a first deployment, miss those stored
// while it waited for the stream).
func (w *worker) consumerConfig(from time.Time) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:           webhooks.ConsumerPrefix + w.ep.Name,
		Description:       "wxlogin webhooks: endpoint " + w.ep.Name, // not the URL: its query may hold a token
		FilterSubjects:    w.ep.subjects(),
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &from,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           w.ep.Timeout + ackMargin,
		MaxDeliver:        -1, // retried until MaxAge, then parked: never dropped by the server
		MaxAckPending:     maxAckPending,
		InactiveThreshold: consumerInactive,
	}
}

// bind creates the endpoint's consumer (starting at from), or updates the
// one there to the file's events, keeping where it started. The stream is
// identity's: until it exists, wait for it.
func (w *worker) bind(ctx context.Context, from time.Time) error {
	retry := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}
	for {
		err := jssetup.Retry(ctx, w.nc, w.log, func(ctx context.Context) error {
			c, err := w.createOrUpdate(ctx, from)
			if err == nil {
				w.mu.Lock()
				w.cons = c
				w.mu.Unlock()
			}
			return err
		})
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			if err != nil {
				return fmt.Errorf("endpoint %s: consumer on %s: %w", w.ep.Name, identity.EventStream, err)
			}
			return nil
		}
		wait := retry.NextBackOff()
		w.log.Warn("waiting for the event stream (identity creates it)", "stream", identity.EventStream, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// run pulls as many events as it has free request slots, delivers each in
// its own goroutine, and returns once ctx is cancelled and the deliveries
// in flight are done (they finish: each is bounded by the endpoint's
// timeout, and an event half delivered would only be sent again).
func (w *worker) run(ctx context.Context) {
	slots := make(chan struct{}, w.ep.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	deliverCtx := context.WithoutCancel(ctx)
	retry := &backoff.ExponentialBackOff{InitialInterval: 250 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}
	for {
		// Wait for one free slot, then take all that are free.
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		n := 1
		for n < cap(slots) && tryAcquire(slots) {
			n++
		}
		got, err := w.fetch(ctx, n, func(msg jetstream.Msg) {
			inflight.Go(func() {
				defer func() { <-slots }()
				w.handle(deliverCtx, msg)
			})
		})
		for range n - got {
			<-slots
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			retry.Reset()
			continue
		}
		wait := retry.NextBackOff()
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, nats.ErrNoResponders) {
			w.log.Warn("consumer gone; creating it again", "error", err)
			if err := w.bind(ctx, time.Now()); err != nil && ctx.Err() == nil {
				w.log.Error("cannot create the consumer again", "error", err)
			}
		} else {
			w.log.Warn("pulling events failed; will retry", "error", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// createOrUpdate is CreateOrUpdateConsumer for a consumer whose start time
// differs on every run: the server refuses to change where a consumer
// started, so an existing one is updated with its own.
func (w *worker) createOrUpdate(ctx context.Context, from time.Time) (jetstream.Consumer, error) {
	cfg := w.consumerConfig(from)
	c, err := w.js.Consumer(ctx, identity.EventStream, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = w.js.CreateConsumer(ctx, identity.EventStream, cfg)
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return c, err
		}
		// Another copy created it meanwhile: update that one.
		c, err = w.js.Consumer(ctx, identity.EventStream, cfg.Durable)
	}
	if err != nil {
		return nil, err
	}
	cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = c.CachedInfo().Config.DeliverPolicy, c.CachedInfo().Config.OptStartTime, c.CachedInfo().Config.OptStartSeq
	return w.js.UpdateConsumer(ctx, identity.EventStream, cfg)
}

func tryAcquire(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// fetch pulls up to n events, calling each for every one as it arrives,
// and returns how many came.
func (w *worker) fetch(ctx context.Context, n int, each func(jetstream.Msg)) (int, error) {
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	batch, err := w.consumer().Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		each(msg)
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout) {
		err = nil // the pull's wait ended: nothing more came
	}
	return got, err
}

// handle delivers one event and settles it: ack when delivered, a delayed
// nak to retry, a dead letter (and term) when it is too old to retry or
// the endpoint answered 410 Gone.
func (w *worker) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("not a JetStream message; dropped", "error", err)
		settle(w.log, "term", msg.Term())
		return
	}
	ev, ok := parseEvent(msg.Data())
	log := w.log.With("event_id", ev.ID, "type", ev.Type, "stream_seq", meta.Sequence.Stream, "attempt", meta.NumDelivered)
	if !ok {
		// Redelivering cannot fix it. The body is not logged: it may hold
		// personal data.
		log.Error("malformed event (no usable id): not delivered")
		settle(log, "term", msg.TermWithReason("malformed event"))
		return
	}
	r := post(ctx, w.client, w.ep, ev.ID, msg.Data(), time.Now())
	w.m.attempt(w.ep.Name, r.took, r.failure)
	if r.failure == "" {
		log.Debug("webhook delivered", "took", r.took)
		settle(log, "ack", doubleAck(ctx, msg))
		return
	}
	remaining := w.cfg.MaxAge - time.Since(meta.Timestamp)
	switch {
	case r.gone:
		// The receiver says this event is not wanted. The endpoint stays on
		// (the file is the configuration); the event waits for a replay.
		w.park(ctx, msg, meta, r.reason+" (no retry)", log)
	case remaining <= 0:
		w.park(ctx, msg, meta, r.reason, log)
	default:
		// The last retry falls at MaxAge itself.
		delay := min(max(w.cfg.retryDelay(meta.NumDelivered), r.retryAfter), remaining)
		log.Warn("webhook delivery failed; will retry", "error", r.reason, "retry_in", delay)
		settle(log, "nak", msg.NakWithDelay(delay))
	}
}

// park writes the event to the dead-letter stream, then terminates it on
// the event stream.
func (w *worker) park(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, why string, log *slog.Logger) {
	pctx, cancel := context.WithTimeout(ctx, settleTimeout)
	_, err := w.js.PublishMsg(pctx, deadLetter(w.ep, msg, meta, why))
	cancel()
	if err != nil {
		log.Warn("could not park the event in the dead-letter stream; will try it again", "error", err, "retry_in", parkRetry)
		settle(log, "nak", msg.NakWithDelay(parkRetry))
		return
	}
	w.m.parked.WithLabelValues(w.ep.Name).Inc()
	log.Error("webhook given up: parked in the dead-letter stream (`webhooks replay` delivers it)", "error", why)
	settle(log, "term", msg.TermWithReason("parked in "+webhooks.DeadStream))
}

// doubleAck acknowledges msg and waits for the server to confirm, so a
// delivered event is not delivered again for a lost ack.
func doubleAck(ctx context.Context, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	return msg.DoubleAck(ctx)
}

// settle logs a failed ack, nak or term; the server then delivers the
// event again after the ack wait (the receiver dedupes by webhook-id).
func settle(log *slog.Logger, what string, err error) {
	if err != nil {
		log.Warn("could not "+what+" the event; it will come again", "error", err)
	}
}

// event is what the service reads of an event: its id (the webhook-id)
// and type (for logs). The body is delivered as it is.
type event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// idRe is what a webhook-id may be: a header value, and short.
var idRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func parseEvent(body []byte) (event, bool) {
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil || !idRe.MatchString(ev.ID) {
		return event{ID: ev.ID}, false
	}
	return ev, true
}

// watchBacklog keeps the backlog gauges current until ctx ends: per
// endpoint, the age of its oldest undelivered event and its dead letters.
func watchBacklog(ctx context.Context, every time.Duration, workers []*worker, events, dead jetstream.Stream, m *metrics, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(every, settleTimeout))
		for _, w := range workers {
			if age, err := w.oldestUndelivered(rctx, events); err == nil {
				m.oldest.WithLabelValues(w.ep.Name).Set(age.Seconds())
			} else if ctx.Err() == nil {
				log.Debug("backlog of an endpoint not read", "endpoint", w.ep.Name, "error", err)
			}
		}
		if info, err := dead.Info(rctx, jetstream.WithSubjectFilter(webhooks.DeadStreamSubjects)); err == nil {
			for _, w := range workers {
				m.dead.WithLabelValues(w.ep.Name).Set(float64(info.State.Subjects[webhooks.DeadSubjectPrefix+w.ep.Name]))
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// oldestUndelivered is the age of the endpoint's oldest event not yet
// acknowledged: the first one of its subjects above the consumer's ack
// floor. Every copy reads the same from the server.
func (w *worker) oldestUndelivered(ctx context.Context, events jetstream.Stream) (time.Duration, error) {
	info, err := w.consumer().Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.NumPending == 0 && info.NumAckPending == 0 {
		return 0, nil
	}
	var oldest time.Time
	for _, subj := range w.ep.subjects() {
		msg, err := events.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if oldest.IsZero() || msg.Time.Before(oldest) {
			oldest = msg.Time
		}
	}
	if oldest.IsZero() {
		return 0, nil
	}
	return max(time.Since(oldest), 0), nil
}

// endpointNames lists the names, for messages.
func endpointNames(eps []*Endpoint) string {
	names := make([]string, len(eps))
	for i, ep := range eps {
		names[i] = ep.Name
	}
	return strings.Join(names, ", ")
}
