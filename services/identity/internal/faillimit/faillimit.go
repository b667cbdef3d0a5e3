// Package faillimit limits password attempts per key (a username and a
// client IP): after limit attempts that did not succeed within Window, the
// key is refused. Keying by the pair slows a guesser without letting anyone
// lock a user out from elsewhere.
//
// The counts live in NATS KV (bucket wxlogin_faillimit), shared by every
// identity replica. An attempt takes its slot (a compare-and-set increment)
// before the password is checked, so a burst of concurrent guesses cannot
// get more checks than the limit; a failure keeps the slot, a success clears
// the key. Without KV there is no limit to enforce, so callers fail closed.
package faillimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket of the counts.
const Bucket = "wxlogin_faillimit"

// Window is how long a count lives after its last attempt (the bucket's
// TTL: every attempt writes a new revision, which starts a new window).
const Window = 15 * time.Minute

// casTries bounds the compare-and-set retries of one attempt. Each lost
// round means another attempt took a slot, so with a small limit the key is
// full (and refused without a write) well before this.
const casTries = 16

// BucketConfig is the bucket, in replicas copies. Its cap: keys are client
// addresses and usernames anyone can name, so the bucket is sized for 200
// new keys a second over a Window, 256 bytes each (key, count, KV overhead):
// 44 MiB at 15 minutes. When it is full a new key cannot be counted, and the
// attempt is refused (503 through shared/natsrpc), never let through.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: Bucket, Description: "wxlogin failed password attempts", TTL: Window, History: 1, Replicas: replicas,
		MaxBytes: int64(Window/time.Second) * 200 * 256, MaxValueSize: 1 << 10}
}

// LimitedError refuses an attempt: the key has used up its attempts.
type LimitedError struct {
	RetryAfter time.Duration // until the key's window ends (at least 1s)
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many failed attempts; retry after %s", e.RetryAfter)
}

// Limiter counts attempts per key. It is safe for concurrent use. The bucket
// is created on first use if start-up has not created it.
type Limiter struct {
	js       jetstream.JetStream
	replicas int
	limit    int

	mu sync.Mutex
	kv jetstream.KeyValue
}

// New returns a Limiter allowing limit attempts per key and Window.
func New(js jetstream.JetStream, replicas, limit int) *Limiter {
	return &Limiter{js: js, replicas: replicas, limit: max(limit, 1)}
}

func (l *Limiter) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, BucketConfig(l.replicas))
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", Bucket, err)
	}
	l.kv = kv
	return kv, nil
}

// Attempt is a slot taken by Take. Left alone it counts as a failure.
type Attempt struct {
	l   *Limiter
	key string
}

// Take takes one of the attempt slots of (username, clientIP), before the
// password is checked. It returns a *LimitedError when none is left, and
// another error when KV cannot be reached.
func (l *Limiter) Take(ctx context.Context, username, clientIP string) (Attempt, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return Attempt{}, err
	}
	k := Key(username, clientIP)
	for range casTries {
		e, err := kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = kv.Create(ctx, k, []byte("1"))
		case err != nil:
			return Attempt{}, fmt.Errorf("get attempt count: %w", err)
		default:
			n := count(e)
			if n >= l.limit {
				return Attempt{}, &LimitedError{RetryAfter: retryAfter(e)}
			}
			_, err = kv.Update(ctx, k, []byte(strconv.Itoa(n+1)), e.Revision())
		}
		if err == nil {
			return Attempt{l: l, key: k}, nil
		}
		if !lostRace(err) {
			return Attempt{}, fmt.Errorf("take attempt slot: %w", err)
		}
	}
	// Only a flood of concurrent attempts on this one key gets here.
	return Attempt{}, &LimitedError{RetryAfter: time.Second}
}

// Succeeded clears the key's count: a success forgets earlier failures.
func (a Attempt) Succeeded(ctx context.Context) error {
	kv, err := a.l.bucket(ctx)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, a.key); err != nil {
		return fmt.Errorf("reset attempt count: %w", err)
	}
	return nil
}

// Release gives the slot back: the password was not checked (e.g. the
// database or the hasher did not answer), so it is neither a failure nor a
// success.
func (a Attempt) Release(ctx context.Context) error {
	kv, err := a.l.bucket(ctx)
	if err != nil {
		return err
	}
	for range casTries {
		e, err := kv.Get(ctx, a.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // reset (or expired) meanwhile
		}
		if err != nil {
			return fmt.Errorf("get attempt count: %w", err)
		}
		n := count(e)
		if n == 0 {
			return nil
		}
		_, err = kv.Update(ctx, a.key, []byte(strconv.Itoa(n-1)), e.Revision())
		if err == nil {
			return nil
		}
		if !lostRace(err) {
			return fmt.Errorf("release attempt slot: %w", err)
		}
	}
	return errors.New("release attempt slot: too many concurrent updates")
}

// Key is the KV key of (username, clientIP): hex sha256, so the bucket
// holds neither usernames nor addresses.
func Key(username, clientIP string) string {
	sum := sha256.Sum256([]byte(username + "\x00" + clientIP))
	return hex.EncodeToString(sum[:])
}

// count reads an entry's count; anything unreadable counts as full, since
// only this package writes the bucket.
func count(e jetstream.KeyValueEntry) int {
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil || n < 0 {
		return int(^uint(0) >> 1)
	}
	return n
}

// retryAfter is when e (the last attempt) ages out of the bucket.
func retryAfter(e jetstream.KeyValueEntry) time.Duration {
	left := time.Until(e.Created().Add(Window))
	return min(max(left, time.Second), Window)
}

// lostRace tells the errors of a compare-and-set that another writer won.
// On a replicated bucket a lost race can come back as the API error "wrong
// last sequence" rather than ErrKeyExists or ErrKeyRevisionMismatch.
func lostRace(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}
