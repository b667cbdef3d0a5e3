// Package oapushes remembers the official account's pushes for a while, so
// that WeChat's retries of one push (it sends it up to three more times
// when the answer is late) are handled once, and so that one signature
// serves one message: NATS KV bucket wxlogin_oa_pushes, keyed by a hash
// of appid, sender and CreateTime (the push) and "sig." and a hash of
// appid and signature (what the signature was spent on).
package oapushes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/jssetup"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Bucket is the KV bucket of seen pushes.
const Bucket = "wxlogin_oa_pushes"

// TTL: WeChat's retries come within about 15 s of the first try; a push
// older than this is a new scan anyway (its CreateTime is new).
const TTL = 5 * time.Minute

// The bucket's cap: an entry is a login result of about 1 KiB. 32 MiB hold
// some 20,000 pushes within the TTL, past which new pushes are refused
// (WeChat retries them) while the old ones age out.
const (
	MaxBytes     = 32 << 20
	MaxValueSize = 8 << 10
)

// BucketConfig is the bucket in replicas copies.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: Bucket, Description: "wxlogin official-account pushes seen (retries are handled once)",
		TTL: TTL, History: 1, Replicas: replicas, MaxBytes: MaxBytes, MaxValueSize: MaxValueSize}
}

// Store claims pushes. The bucket is created on first use.
type Store struct{ kv *jssetup.Bucket }

// New returns a Store over js whose bucket has replicas copies.
func New(js jetstream.JetStream, replicas int) *Store {
	return &Store{kv: jssetup.NewBucket(js, BucketConfig(replicas))}
}

func (s *Store) bucket(ctx context.Context) (jetstream.KeyValue, error) { return s.kv.KV(ctx) }

// Key names a push: WeChat's retries repeat the sender and CreateTime.
func Key(appID, openID string, createTime int64) string {
	sum := sha256.Sum256([]byte(appID + "\x00" + openID + "\x00" + strconv.FormatInt(createTime, 10)))
	return hex.EncodeToString(sum[:])
}

// SignatureKey names a signature of an account: WeChat's retries repeat
// it. The signature itself, not its timestamp and nonce, which other
// splits of the same signed string could spell differently.
func SignatureKey(appID, signature string) string {
	sum := sha256.Sum256([]byte(appID + "\x00" + strings.ToLower(signature)))
	return "sig." + hex.EncodeToString(sum[:])
}

// BodyKey names a push together with its exact body: what a plaintext
// signature, which covers no body, is bound to.
func BodyKey(pushKey string, body []byte) string {
	sum := sha256.Sum256(body)
	return pushKey + "." + hex.EncodeToString(sum[:])
}

// ErrSignatureUsed: the signature came with another message before.
var ErrSignatureUsed = errors.New("the signature was used for another message")

// BindSignature spends the signature sigKey on use (what it came with) for
// the bucket's TTL: the same pair again (a retry) is fine, the signature
// with anything else is ErrSignatureUsed.
func (s *Store) BindSignature(ctx context.Context, sigKey, use string) error {
	_, earlier, err := s.createOrGet(ctx, sigKey, []byte(use))
	if err != nil {
		return fmt.Errorf("bind push signature: %w", err)
	}
	if earlier != nil && string(earlier) != use {
		return ErrSignatureUsed
	}
	return nil
}

// createOrGet creates key with value and returns its revision, or, when
// the key is there already, what it holds (earlier non-nil).
func (s *Store) createOrGet(ctx context.Context, key string, value []byte) (rev uint64, earlier []byte, err error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return 0, nil, err
	}
	rev, err = kv.Create(ctx, key, value)
	if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, nil, err
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, nil, fmt.Errorf("read: %w", err)
	}
	return 0, e.Value(), nil
}

// Claim is a push seen.
type Claim struct {
	// First: this is the first time; handle it, then Finish or Release.
	First bool
	// Earlier is the first time's result, nil while it is still being
	// handled (or when it was not recorded).
	Earlier *identity.OAPushResult
	rev     uint64
}

// Claim records key as being handled, or answers what the first time did.
func (s *Store) Claim(ctx context.Context, key string) (Claim, error) {
	rev, earlier, err := s.createOrGet(ctx, key, []byte("{}"))
	if err != nil {
		return Claim{}, fmt.Errorf("claim push: %w", err)
	}
	if earlier == nil {
		return Claim{First: true, rev: rev}, nil
	}
	var res identity.OAPushResult
	if json.Unmarshal(earlier, &res) != nil || res.Reply == "" {
		return Claim{}, nil // still being handled
	}
	return Claim{Earlier: &res}, nil
}

// Finish stores the result under a first claim, for the retries.
func (s *Store) Finish(ctx context.Context, key string, c Claim, res identity.OAPushResult) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := kv.Update(ctx, key, data, c.rev); err != nil {
		return fmt.Errorf("record push result: %w", err)
	}
	return nil
}

// Release forgets a first claim whose handling failed: WeChat's retry is
// then handled afresh.
func (s *Store) Release(ctx context.Context, key string, c Claim) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, key, jetstream.LastRevision(c.rev)); err != nil {
		return fmt.Errorf("release push: %w", err)
	}
	return nil
}
