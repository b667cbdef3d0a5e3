package webhooksvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/webhooks"
	"github.com/wxlogin/wxlogin/shared/jssetup"
)

// deadStreamConfig is the dead-letter stream: a work queue (an ack, by
// `webhooks replay`, deletes), kept 30 days, replicas copies.
func deadStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        webhooks.DeadStream,
		Description: "wxlogin webhooks not delivered within WXLOGIN_WEBHOOKS_MAX_AGE; `webhooks replay` delivers them",
		Subjects:    []string{webhooks.DeadStreamSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		// A dead letter parked twice (the Term after it was lost) is stored once.
		Duplicates: 2 * time.Minute,
		Replicas:   replicas,
	}
}

// ensureDeadStream creates (or updates) the dead-letter stream, retrying
// while NATS is not there yet.
func ensureDeadStream(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, replicas int, log *slog.Logger) (jetstream.Stream, error) {
	var s jetstream.Stream
	err := jssetup.Retry(ctx, nc, log, func(ctx context.Context) error {
		var err error
		s, err = js.CreateOrUpdateStream(ctx, deadStreamConfig(replicas))
		if err != nil {
			return jssetup.ReplicasError(fmt.Errorf("stream %s: %w", webhooks.DeadStream, err), replicas)
		}
		return nil
	})
	return s, err
}

// deadLetter is msg (an event of the stream) as the dead letter of ep.
func deadLetter(ep *Endpoint, msg jetstream.Msg, meta *jetstream.MsgMetadata, why string) *nats.Msg {
	d := nats.NewMsg(webhooks.DeadSubjectPrefix + ep.Name)
	d.Data = msg.Data()
	d.Header.Set(webhooks.HeaderEndpoint, ep.Name)
	d.Header.Set(webhooks.HeaderError, why)
	d.Header.Set(webhooks.HeaderSubject, msg.Subject())
	d.Header.Set(webhooks.HeaderMAC, deadLetterMAC(ep.keys[0], ep.Name, msg.Data()))
	if meta != nil {
		d.Header.Set(webhooks.HeaderAttempts, strconv.FormatUint(meta.NumDelivered, 10))
		d.Header.Set(webhooks.HeaderEventSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		d.Header.Set(webhooks.HeaderStoredAt, meta.Timestamp.UTC().Format(time.RFC3339Nano))
		// Stored once, should the same event be parked again (its Term lost).
		d.Header.Set(jetstream.MsgIDHeader, ep.Name+"."+strconv.FormatUint(meta.Sequence.Stream, 10))
	}
	return d
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	Delivered int // delivered, and deleted from the dead-letter stream
	Failed    int // the endpoint still failed: left for the next replay
	Skipped   int // for an endpoint no longer in the file: left
	Dropped   int // not written by this service (no valid MAC): deleted, not delivered
}

// String is the summary `webhooks replay` prints.
func (r ReplayResult) String() string {
	return fmt.Sprintf("replayed %d dead letters; %d failed again, %d for endpoints not in WXLOGIN_WEBHOOKS_FILE (left), %d forged (deleted)",
		r.Delivered, r.Failed, r.Skipped, r.Dropped)
}

// Replay delivers the dead letters (of the endpoint called only, or of
// every endpoint when only is ""), each once, signed anew with the
// endpoint's current secrets and the event id as webhook-id, and deletes
// each one delivered. It returns an error when one is left.
func Replay(ctx context.Context, cfg Config, only string, stdout io.Writer, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	eps, err := cfg.Endpoints()
	if err != nil {
		return err
	}
	byName := map[string]*Endpoint{}
	for _, ep := range eps {
		byName[ep.Name] = ep
	}
	filter := webhooks.DeadStreamSubjects
	if only != "" {
		if byName[only] == nil {
			return fmt.Errorf("replay: no endpoint %q in WXLOGIN_WEBHOOKS_FILE (it has %s)", only, endpointNames(eps))
		}
		filter = webhooks.DeadSubjectPrefix + only
	}
	nc, err := connect(cfg, "wxlogin-webhooks-replay", false, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// An ephemeral consumer that delivers each dead letter once: a failed
	// one is not acknowledged, so it stays for the next replay.
	cons, err := js.CreateConsumer(ctx, webhooks.DeadStream, jetstream.ConsumerConfig{
		Description:       "webhooks replay",
		FilterSubject:     filter,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           maxTimeout + 30*time.Second,
		MaxDeliver:        1,
		InactiveThreshold: time.Minute, // gone soon after a replay that died
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = fmt.Fprintln(stdout, ReplayResult{})
			return err // the service never parked anything
		}
		return fmt.Errorf("replay: consumer on %s (is another replay running?): %w", webhooks.DeadStream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, webhooks.DeadStream, cons.CachedInfo().Name)
	}()

	clients := map[string]*http.Client{}
	var res ReplayResult
	for ctx.Err() == nil {
		batch, err := cons.FetchNoWait(16)
		if err != nil {
			return fmt.Errorf("replay: fetch: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			replayOne(ctx, msg, byName, clients, &res, log)
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("replay: fetch: %w", err)
		}
		if n == 0 {
			break
		}
	}
	if _, err := fmt.Fprintln(stdout, res); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if left := res.Failed + res.Skipped; left > 0 {
		return fmt.Errorf("replay: %d dead letters are left (see the log above)", left)
	}
	return nil
}

// replayOne delivers one dead letter and settles it.
func replayOne(ctx context.Context, msg jetstream.Msg, byName map[string]*Endpoint, clients map[string]*http.Client, res *ReplayResult, log *slog.Logger) {
	name := strings.TrimPrefix(msg.Subject(), webhooks.DeadSubjectPrefix)
	log = log.With("endpoint", name, "subject", msg.Headers().Get(webhooks.HeaderSubject))
	ep := byName[name]
	if ep == nil {
		res.Skipped++
		log.Warn("dead letter of an endpoint not in WXLOGIN_WEBHOOKS_FILE left as it is")
		return
	}
	ev, ok := parseEvent(msg.Data())
	if !ok || !ep.checkDeadLetterMAC(msg.Headers().Get(webhooks.HeaderMAC), msg.Data()) {
		// Anyone with the events user can publish here; only what this
		// service parked is sent, signed, to the endpoint.
		res.Dropped++
		log.Warn("dead letter not written by the webhooks service (or the endpoint's secrets changed since): deleted, not delivered")
		settle(log, "ack", doubleAck(ctx, msg))
		return
	}
	log = log.With("event_id", ev.ID, "type", ev.Type)
	if clients[name] == nil {
		clients[name] = newClient(ep)
	}
	r := post(ctx, clients[name], ep, ev.ID, msg.Data(), time.Now())
	if r.failure != "" {
		res.Failed++
		log.Warn("replay failed; the dead letter stays", "error", r.reason)
		return
	}
	res.Delivered++
	log.Info("dead letter delivered")
	settle(log, "ack", doubleAck(ctx, msg))
}
