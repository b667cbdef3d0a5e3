package outbox

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// directMaxPending bounds the direct publishes awaiting their ack; past it
// Publish waits briefly (jetstream's stall wait), then drops the event.
const directMaxPending = 4096

// Direct publishes events that do not need the outbox (a returning login's
// user.logged_in) straight to the stream after the commit, without waiting
// for the ack: at most once. An event is lost if the process dies before
// JetStream stored it, or NATS is away; Failed is told of each loss it saw.
type Direct struct {
	js     jetstream.JetStream
	log    *slog.Logger
	failed func()
}

// NewDirect returns a direct publisher on nc; failed (may be nil) counts losses.
func NewDirect(nc *nats.Conn, log *slog.Logger, timeout time.Duration, failed func()) (*Direct, error) {
	if failed == nil {
		failed = func() {}
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(timeout),
		jetstream.WithPublishAsyncMaxPending(directMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			failed()
			log.Warn("event not published", "subject", m.Subject, "id", m.Header.Get(jetstream.MsgIDHeader), "error", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Direct{js: js, log: log, failed: failed}, nil
}

// Publish sends the event with id as its Nats-Msg-Id and returns at once;
// the ack (or its absence) is handled in the background.
func (d *Direct) Publish(id, subject string, payload []byte) {
	msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
	if _, err := d.js.PublishMsgAsync(msg); err != nil {
		d.failed()
		d.log.Warn("event not published", "subject", subject, "id", id, "error", err)
	}
}
