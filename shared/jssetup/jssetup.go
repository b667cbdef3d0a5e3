// Package jssetup creates the JetStream assets a service owns (its stream,
// its KV buckets) at start: retrying while NATS or JetStream is not there
// yet, and naming WXLOGIN_NATS_REPLICAS when the replica count is what fails.
package jssetup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// AttemptTimeout bounds one attempt.
const AttemptTimeout = 10 * time.Second

// Retry runs fn (each attempt bounded by AttemptTimeout) until it succeeds,
// retrying with backoff (250 ms doubling up to 5 s) while the failure looks
// like NATS or JetStream not being there yet; any other error is returned
// at once, and ctx's error once it ends. An attempt the server refused a
// permission for (it times out, the refusal comes asynchronously) is no
// outage: its error names the permission, and the service stops.
func Retry(ctx context.Context, nc *nats.Conn, log *slog.Logger, fn func(context.Context) error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt, cancel := context.WithTimeout(ctx, AttemptTimeout)
		before := nc.LastError()
		err := fn(attempt)
		cancel()
		if err != nil && ctx.Err() == nil {
			if denied := natsconn.Denied(nc, before); denied != nil {
				return struct{}{}, backoff.Permanent(fmt.Errorf("%w: this service's NATS user lacks a permission it needs (the server's authorization, deploy/nats/auth.conf)", denied))
			}
		}
		if err != nil && ctx.Err() == nil && nc.IsConnected() && !transient(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 250 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}),
		backoff.WithMaxElapsedTime(0), // for as long as ctx lasts
		backoff.WithNotify(func(err error, wait time.Duration) {
			log.Warn("NATS JetStream not reachable yet; retrying", "error", err, "retry_in", wait)
		}))
	return err
}

func transient(err error) bool {
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return false // a server without JetStream will not grow it
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == jsErrCodeNoPeers) {
		// e.g. a cluster still electing its JetStream leader, or with too
		// few servers up yet to place every replica of a bucket.
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected)
}

// JetStream API error codes (nats-server's errors.json) that a bucket's
// replica count causes.
const (
	jsErrCodeNoPeers              jetstream.ErrorCode = 10005 // not enough servers to place the replicas
	jsErrCodeReplicasNotClustered jetstream.ErrorCode = 10074 // replicas > 1 on a server without a cluster
)

// ReplicasError names WXLOGIN_NATS_REPLICAS in an error it caused.
func ReplicasError(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeReplicasNotClustered {
		return fmt.Errorf("WXLOGIN_NATS_REPLICAS: %d replicas need a NATS cluster, and this server runs JetStream alone (set 1): %w", replicas, err)
	}
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeNoPeers {
		return fmt.Errorf("WXLOGIN_NATS_REPLICAS: %d replicas, but not that many JetStream servers are up: %w", replicas, err)
	}
	return err
}

// Bucket is a KV bucket opened on first use: created, or updated to its
// configuration, by the first call that needs it, so that a service whose
// NATS is not reachable yet still starts. Safe for concurrent use.
type Bucket struct {
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig
	// lock guards kv and is held across the create, so that concurrent
	// first calls send one. A channel, not a mutex: with NATS down a create
	// lasts until its ctx ends, and waiting behind it must end with the
	// waiter's ctx.
	lock chan struct{}
	kv   jetstream.KeyValue
}

// NewBucket returns the bucket cfg over js.
func NewBucket(js jetstream.JetStream, cfg jetstream.KeyValueConfig) *Bucket {
	return &Bucket{js: js, cfg: cfg, lock: make(chan struct{}, 1)}
}

// KV opens the bucket (once it has succeeded, without a round trip).
func (b *Bucket) KV(ctx context.Context) (jetstream.KeyValue, error) {
	select {
	case b.lock <- struct{}{}:
		defer func() { <-b.lock }()
	case <-ctx.Done():
		return nil, fmt.Errorf("kv bucket %s: %w", b.cfg.Bucket, ctx.Err())
	}
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, b.cfg)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", b.cfg.Bucket, err)
	}
	b.kv = kv
	return kv, nil
}
