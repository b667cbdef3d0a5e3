// Package bindtoken holds the WeChat identities that logged in without an
// account (WXLOGIN_AUTO_REGISTER=false) until their owner registers or binds
// them: NATS KV bucket wxlogin_bind, keyed by the sha256 of a random token
// that only the client holds, spent once.
package bindtoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/jssetup"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// TTL is how long a bind token lives (the bucket's TTL).
const TTL = 10 * time.Minute

// maxTokenLen bounds what is hashed: real tokens are 43 characters.
const maxTokenLen = 128

// ErrNotFound: the token is unknown, expired or already spent.
var ErrNotFound = errors.New("bind token not found, expired or spent")

// BucketConfig is the bucket, in replicas copies, as the session service
// creates it too: both services create-or-update it with this same
// configuration (given the same WXLOGIN_NATS_REPLICAS), so either may start
// first and neither changes it.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: session.BucketBind, Description: "wxlogin bind tokens", TTL: TTL, History: 1, Replicas: replicas,
		MaxBytes: session.BindMaxBytes, MaxValueSize: session.BindMaxValueSize}
}

// Identity is a WeChat identity waiting for an account. SessionKey is a
// secret: it sits in KV (inside NATS) and is never logged.
type Identity struct {
	Kind       string            `json:"kind"`
	AppID      string            `json:"appid"`
	OpenID     string            `json:"openid"`
	UnionID    string            `json:"unionid,omitempty"`
	SessionKey string            `json:"session_key,omitempty"`
	Profile    *identity.Profile `json:"profile,omitempty"`
}

// LogValue keeps the session_key out of logs.
func (i Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", i.Kind), slog.String("appid", i.AppID))
}

// Store issues and spends bind tokens. The bucket is created on first use,
// so a service started before NATS is reachable still starts.
type Store struct{ kv *jssetup.Bucket }

// New returns a Store over js whose bucket has replicas copies.
func New(js jetstream.JetStream, replicas int) *Store {
	return &Store{kv: jssetup.NewBucket(js, BucketConfig(replicas))}
}

func (s *Store) bucket(ctx context.Context) (jetstream.KeyValue, error) { return s.kv.KV(ctx) }

// Issue stores id and returns its token: 32 random bytes, base64url.
func (s *Store) Issue(ctx context.Context, id Identity) (string, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bind token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	data, err := json.Marshal(id)
	if err != nil {
		return "", err
	}
	if _, err := kv.Create(ctx, key(token), data); err != nil {
		return "", fmt.Errorf("store bind token: %w", err)
	}
	return token, nil
}

// Lookup returns the identity behind token and the revision Spend needs;
// ErrNotFound if there is none.
func (s *Store) Lookup(ctx context.Context, token string) (Identity, uint64, error) {
	if token == "" || len(token) > maxTokenLen {
		return Identity{}, 0, ErrNotFound
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return Identity{}, 0, err
	}
	e, err := kv.Get(ctx, key(token))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Identity{}, 0, ErrNotFound
	}
	if err != nil {
		return Identity{}, 0, fmt.Errorf("get bind token: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(e.Value(), &id); err != nil {
		return Identity{}, 0, fmt.Errorf("decode bind token: %w", err)
	}
	return id, e.Revision(), nil
}

// Spend deletes token if it is still at rev (compare-and-set): of two
// concurrent spenders exactly one succeeds; the other gets ErrNotFound.
func (s *Store) Spend(ctx context.Context, token string, rev uint64) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	err = kv.Delete(ctx, key(token), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSequence(err) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("spend bind token: %w", err)
	}
	return nil
}

// isWrongLastSequence: a compare-and-set delete that lost comes back as the
// API error "wrong last sequence" (10164 on a replicated bucket) rather
// than ErrKeyRevisionMismatch.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// key is the KV key of token: hex sha256, so the bucket never holds a
// usable token.
func key(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
