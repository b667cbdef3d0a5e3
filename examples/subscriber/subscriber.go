package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Handler is the effect of one event. An error means "not done": the event
// is redelivered after Config.RetryDelay, up to Config.MaxDeliver times.
type Handler func(ctx context.Context, ev identity.Event) error

// Subscriber feeds the events of a durable JetStream consumer to a Handler,
// each event id once (see seenIDs for what "once" can mean here).
type Subscriber struct {
	js     jetstream.JetStream
	cfg    Config
	handle Handler
	seen   *seenIDs
	log    *slog.Logger
}

// NewSubscriber returns a subscriber; cfg must have passed Validate.
func NewSubscriber(js jetstream.JetStream, cfg Config, handle Handler, log *slog.Logger) *Subscriber {
	return &Subscriber{js: js, cfg: cfg, handle: handle, seen: newSeenIDs(cfg.DedupeSize), log: log}
}

// errConsumerGone stops Run when the durable is deleted under us: the
// process exits non-zero and its supervisor starts it again, which creates
// the consumer anew.
var errConsumerGone = errors.New("consumer was deleted")

// Run consumes until ctx is cancelled, then drains: the messages already
// fetched are handled and acknowledged before it returns nil.
func (s *Subscriber) Run(ctx context.Context) error {
	cons, err := s.bind(ctx)
	if err != nil {
		return err
	}
	// Handlers finish even when shutdown begins: an event half done is worse
	// than a shutdown a little later. Each has its own deadline.
	handlerCtx := context.WithoutCancel(ctx)
	gone := make(chan struct{}, 1)
	cc, err := cons.Consume(
		func(msg jetstream.Msg) { s.process(handlerCtx, msg) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case gone <- struct{}{}:
				default:
				}
				return
			}
			// Missed heartbeats and the like while NATS is away: the
			// consumer keeps trying on its own.
			s.log.Warn("consuming events", "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("consume %s/%s: %w", s.cfg.Stream, s.cfg.Durable, err)
	}
	select {
	case <-ctx.Done():
		cc.Drain()
		<-cc.Closed()
		s.log.Info("subscriber stopped", "durable", s.cfg.Durable)
		return nil
	case <-gone:
		cc.Stop()
		<-cc.Closed()
		return fmt.Errorf("%s/%s: %w", s.cfg.Stream, s.cfg.Durable, errConsumerGone)
	}
}

// bind creates the durable consumer, or updates it to the current config if
// it exists. The stream is identity's (its outbox relay creates it): until
// it exists, wait for it rather than create it with a config of our own.
func (s *Subscriber) bind(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "wxlogin example subscriber",
		FilterSubject: s.cfg.Filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
	}
	cons, err := backoff.Retry(ctx, func() (jetstream.Consumer, error) {
		cons, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, cfg)
		if err != nil && ctx.Err() == nil && !transient(err) {
			// E.g. the server refused our config: waiting will not help.
			return nil, backoff.Permanent(fmt.Errorf("consumer %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err))
		}
		return cons, err
	},
		// 100 ms doubling up to 5 s, for as long as ctx lasts.
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			s.log.Warn("waiting for the event stream", "stream", s.cfg.Stream, "retry_in", wait, "err", err)
		}))
	if err != nil {
		return nil, err
	}
	s.log.Info("subscribed", "stream", s.cfg.Stream, "durable", s.cfg.Durable, "filter", s.cfg.Filter)
	return cons, nil
}

// transient reports whether err may go away by itself: the stream does not
// exist yet, or NATS (or its JetStream) is not reachable yet.
func transient(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected)
}

// process handles one message and settles it: ack when handled (or already
// handled), nak to retry, term when retrying cannot help.
func (s *Subscriber) process(ctx context.Context, msg jetstream.Msg) {
	var seq, delivered uint64
	if meta, err := msg.Metadata(); err == nil {
		seq, delivered = meta.Sequence.Stream, meta.NumDelivered
	}
	log := s.log.With("subject", msg.Subject(), "stream_seq", seq)

	var ev identity.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.ID == "" {
		// Redelivering cannot fix it. The body is not logged: it may hold
		// personal data.
		log.Error("malformed event dropped", "err", err, "has_id", ev.ID != "")
		s.settle(log, "term", msg.TermWithReason("malformed event"))
		return
	}
	log = log.With("event_id", ev.ID, "type", ev.Type, "user_id", ev.User.ID)

	if s.seen.Contains(ev.ID) {
		log.Debug("duplicate event acknowledged without handling", "deliveries", delivered)
		s.settle(log, "ack", msg.Ack())
		return
	}

	// Done before the server gives up on our ack and redelivers.
	hctx, cancel := context.WithTimeout(ctx, s.cfg.AckWait)
	err := s.handle(hctx, ev)
	cancel()
	if err != nil {
		if delivered >= uint64(s.cfg.MaxDeliver) {
			// The server would not deliver it again anyway; say so loudly.
			log.Error("event handling failed on its last delivery; giving up", "deliveries", delivered, "err", err)
			s.settle(log, "term", msg.TermWithReason("handler failed on the last delivery"))
			return
		}
		log.Warn("event handling failed; will retry", "deliveries", delivered, "retry_in", s.cfg.RetryDelay, "err", err)
		s.settle(log, "nak", msg.NakWithDelay(s.cfg.RetryDelay))
		return
	}
	// Seen before the ack: if the ack is lost, the redelivery is a duplicate.
	s.seen.Add(ev.ID)
	s.settle(log, "ack", msg.Ack())
}

// settle logs a failed ack, nak or term; the server then redelivers after
// AckWait and the dedupe catches what was already handled.
func (s *Subscriber) settle(log *slog.Logger, what string, err error) {
	if err != nil {
		log.Warn("could not "+what+" the message; it will be redelivered", "err", err)
	}
}
