// Package faillimit limits password attempts, counted two ways:
//
//   - per username and client address (IPv4 address, IPv6 /64: see
//     shared/clientip): after Limits.PerAddress attempts that did not succeed
//     within Window, the pair is refused until its window ends. This stops a
//     guesser at one address without locking the owner out from elsewhere.
//   - per username, from every address together: after Limits.PerUser
//     failures, each further attempt must wait Limits.FirstDelay after the
//     previous one, doubling with every failure up to Limits.MaxDelay. This
//     slows a guesser with many addresses to one guess per MaxDelay, while
//     an attempt is due again at most MaxDelay after the last: the owner
//     (from anywhere) is slowed, never locked out. Attempts refused by the
//     pair limit do not count here, so one address cannot slow the owner.
//
// A username nobody holds is counted just like one that exists, so the
// answers tell nothing about which do.
//
// The counts live in NATS KV (bucket wxlogin_faillimit), shared by every
// identity replica. An attempt takes its slots (compare-and-set increments)
// before the password is checked, so a burst of concurrent guesses cannot
// get more checks than the limits; a failure keeps the slots, a success
// clears the pair's count (not the username's: the owner logging in must
// not give a guesser elsewhere a fresh budget). Without KV there is no
// limit to enforce, so callers fail closed.
package faillimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/clientip"
	"github.com/wxlogin/wxlogin/shared/jssetup"
)

// Bucket is the KV bucket of the counts.
const Bucket = "wxlogin_faillimit"

// Window is how long a count lives after its last attempt (the bucket's
// TTL: every attempt writes a new revision, which starts a new window).
const Window = 15 * time.Minute

// Limits are the numbers of a Limiter.
type Limits struct {
	PerAddress int           // failures per (username, address) per Window
	PerUser    int           // failures per username before attempts wait
	FirstDelay time.Duration // the wait after PerUser failures; doubles after each further one
	MaxDelay   time.Duration // the longest wait
}

// DefaultLimits: 5 guesses per address and 15 minutes; per username 10
// free failures, then waits of 1 s, 2 s, 4 s, … up to 5 minutes. A guesser
// with any number of addresses gets about 20 guesses in the first quarter
// hour and then 12 an hour (under 300 a day) per username; an attempt is
// due again at most 5 minutes after the last.
var DefaultLimits = Limits{PerAddress: 5, PerUser: 10, FirstDelay: time.Second, MaxDelay: 5 * time.Minute}

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

// LimitedError refuses an attempt: the pair has used up its attempts, or
// the username's next attempt is not due yet.
type LimitedError struct {
	RetryAfter time.Duration // until an attempt is possible again (at least 1s)
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many failed attempts; retry after %s", e.RetryAfter)
}

// Limiter counts attempts per key. It is safe for concurrent use. The bucket
// is created on first use if start-up has not created it.
type Limiter struct {
	kv     *jssetup.Bucket
	limits Limits
	now    func() time.Time
}

// New returns a Limiter of limits. now is the clock of the per-username
// waits (time.Now when nil); the pair windows follow the bucket's TTL.
func New(js jetstream.JetStream, replicas int, limits Limits, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	limits.PerAddress, limits.PerUser = max(limits.PerAddress, 1), max(limits.PerUser, 1)
	limits.FirstDelay = max(limits.FirstDelay, time.Millisecond)
	limits.MaxDelay = max(limits.MaxDelay, limits.FirstDelay)
	return &Limiter{kv: jssetup.NewBucket(js, BucketConfig(replicas)), limits: limits, now: now}
}

func (l *Limiter) bucket(ctx context.Context) (jetstream.KeyValue, error) { return l.kv.KV(ctx) }

// Attempt is the slots taken by Take. Left alone it counts as a failure.
type Attempt struct {
	l         *Limiter
	key, user string
}

// Take takes an attempt slot of (username, clientIP) and one of username,
// before the password is checked. It returns a *LimitedError when either
// refuses, and another error when KV cannot be reached.
func (l *Limiter) Take(ctx context.Context, username, clientIP string) (Attempt, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return Attempt{}, err
	}
	a := Attempt{l: l, key: Key(username, clientIP), user: UserKey(username)}
	// A username whose next attempt is not due is refused before anything
	// is written.
	switch e, err := kv.Get(ctx, a.user); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return Attempt{}, fmt.Errorf("get attempt count: %w", err)
	default:
		if wait := l.userWait(e.Value()); wait > 0 {
			return Attempt{}, &LimitedError{RetryAfter: wait}
		}
	}
	err = update(ctx, kv, a.key, func(e jetstream.KeyValueEntry) ([]byte, error) {
		if e == nil {
			return []byte("1"), nil
		}
		n := count(e.Value())
		if n >= l.limits.PerAddress {
			return nil, &LimitedError{RetryAfter: retryAfter(e)}
		}
		return []byte(strconv.Itoa(n + 1)), nil
	})
	if err != nil {
		return Attempt{}, err
	}
	// The username's slot, checked again against the count this write
	// replaces, so concurrent attempts cannot pass one due time together.
	err = update(ctx, kv, a.user, func(e jetstream.KeyValueEntry) ([]byte, error) {
		var v []byte
		if e != nil {
			v = e.Value()
		}
		if wait := l.userWait(v); wait > 0 {
			return nil, &LimitedError{RetryAfter: wait}
		}
		return userValue(count(v)+1, l.now()), nil
	})
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = a.releaseKey(rctx, kv, a.key) // best effort: the pair's slot was not used
		return Attempt{}, err
	}
	return a, nil
}

// update writes next(current entry, nil if none) to key with
// compare-and-set, retrying when another writer wins. An error from next
// ends it, written nothing.
func update(ctx context.Context, kv jetstream.KeyValue, key string, next func(jetstream.KeyValueEntry) ([]byte, error)) error {
	for range casTries {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			e, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("get attempt count: %w", err)
		}
		v, err := next(e)
		if err != nil {
			return err
		}
		if e == nil {
			_, err = kv.Create(ctx, key, v)
		} else {
			_, err = kv.Update(ctx, key, v, e.Revision())
		}
		if err == nil {
			return nil
		}
		if !lostRace(err) {
			return fmt.Errorf("take attempt slot: %w", err)
		}
	}
	// Only a flood of concurrent attempts on this one key gets here.
	return &LimitedError{RetryAfter: time.Second}
}

// userWait is how long the username whose entry holds v must wait before
// its next attempt: 0 below PerUser failures, else until FirstDelay·2^k
// (k failures past PerUser, at most MaxDelay) after the last one.
func (l *Limiter) userWait(v []byte) time.Duration {
	n, last := userCount(v)
	if n < l.limits.PerUser {
		return 0
	}
	delay := l.limits.MaxDelay
	if k := n - l.limits.PerUser; k < 32 {
		delay = min(l.limits.FirstDelay<<k, l.limits.MaxDelay)
	}
	wait := last.Add(delay).Sub(l.now())
	if wait <= 0 {
		return 0
	}
	return min(max(wait, time.Second), l.limits.MaxDelay)
}

// Succeeded clears the pair's count: a success forgets the failures from
// that address. The username's count stays (see the package comment).
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

// Release gives the slots back: the password was not checked (e.g. the
// database or the hasher did not answer), so it is neither a failure nor a
// success.
func (a Attempt) Release(ctx context.Context) error {
	kv, err := a.l.bucket(ctx)
	if err != nil {
		return err
	}
	return errors.Join(a.releaseKey(ctx, kv, a.key), a.releaseKey(ctx, kv, a.user))
}

// releaseKey takes one from key's count (of either kind), keeping the rest
// of the entry.
func (a Attempt) releaseKey(ctx context.Context, kv jetstream.KeyValue, key string) error {
	if key == "" {
		return nil
	}
	err := update(ctx, kv, key, func(e jetstream.KeyValueEntry) ([]byte, error) {
		if e == nil || count(e.Value()) == 0 {
			return nil, errNothingToRelease // reset (or expired) meanwhile
		}
		v := e.Value()
		if key == a.user {
			n, last := userCount(v)
			return userValue(n-1, last), nil
		}
		return []byte(strconv.Itoa(count(v) - 1)), nil
	})
	var le *LimitedError
	switch {
	case errors.Is(err, errNothingToRelease):
		return nil
	case errors.As(err, &le):
		return errors.New("release attempt slot: too many concurrent updates")
	}
	return err
}

var errNothingToRelease = errors.New("nothing to release")

// Key is the KV key of (username, clientIP): hex sha256 of the username
// and the address's clientip.Key, so the bucket holds neither usernames
// nor addresses, and an IPv6 /64 is one address.
func Key(username, clientIP string) string {
	sum := sha256.Sum256([]byte(username + "\x00" + clientip.Key(clientIP)))
	return hex.EncodeToString(sum[:])
}

// UserKey is the KV key of a username's count: "u." and hex sha256, apart
// from every pair key.
func UserKey(username string) string {
	sum := sha256.Sum256([]byte(username))
	return "u." + hex.EncodeToString(sum[:])
}

// full is the count of an unreadable entry: only this package writes the
// bucket, so anything else is refused rather than trusted.
const full = int(^uint(0) >> 1)

// count reads the count at the start of an entry's value (a pair's value is
// just the count; a username's is userValue).
func count(v []byte) int {
	s, _, _ := strings.Cut(string(v), " ")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return full
	}
	return n
}

// userValue is a username's entry: its failure count and the time of the
// last attempt (Unix milliseconds).
func userValue(n int, last time.Time) []byte {
	return []byte(strconv.Itoa(n) + " " + strconv.FormatInt(last.UnixMilli(), 10))
}

// userCount reads userValue; nil is no failures. An unreadable time is now
// (the longest wait), like an unreadable count.
func userCount(v []byte) (int, time.Time) {
	if v == nil {
		return 0, time.Time{}
	}
	n := count(v)
	_, ms, _ := strings.Cut(string(v), " ")
	t, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return full, time.UnixMilli(1 << 62)
	}
	return n, time.UnixMilli(t)
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
