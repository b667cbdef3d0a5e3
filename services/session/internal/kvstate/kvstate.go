// Package kvstate is the session service's state in NATS KV: the buckets it
// owns, refresh families (changed only by compare-and-set) and revoked access
// token ids.
package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Sentinels of this store; callers map them to contract codes.
var (
	ErrNotFound = errors.New("kvstate: not found")
	ErrConflict = errors.New("kvstate: changed concurrently")
)

// BindTTL is how long a bind token lives.
const BindTTL = 10 * time.Minute

// revokedSlack keeps a revoked jti a little past the longest possible exp.
const revokedSlack = time.Minute

// TTLs are the lifetimes the buckets are sized for.
type TTLs struct {
	Access  time.Duration
	Refresh time.Duration
	QR      time.Duration
}

// Buckets are the KV buckets of the session service.
type Buckets struct {
	Sessions jetstream.KeyValue
	Revoked  jetstream.KeyValue
	QR       jetstream.KeyValue
	Bind     jetstream.KeyValue
	Keys     jetstream.KeyValue
}

// Open creates or updates every bucket. It is safe to run from every replica
// at once: the configuration is the same, so the update is a no-op.
func Open(ctx context.Context, js jetstream.JetStream, ttl TTLs) (*Buckets, error) {
	var b Buckets
	specs := []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&b.Sessions, jetstream.KeyValueConfig{Bucket: session.BucketSessions, Description: "wxlogin refresh token families", TTL: ttl.Refresh, History: 1}},
		{&b.Revoked, jetstream.KeyValueConfig{Bucket: session.BucketRevoked, Description: "wxlogin revoked access token ids", TTL: ttl.Access + revokedSlack, History: 1}},
		{&b.QR, jetstream.KeyValueConfig{Bucket: session.BucketQR, Description: "wxlogin QR login tickets", TTL: ttl.QR, History: 1}},
		{&b.Bind, jetstream.KeyValueConfig{Bucket: session.BucketBind, Description: "wxlogin bind tokens", TTL: BindTTL, History: 1}},
		{&b.Keys, keysConfig},
	}
	for _, s := range specs {
		kv, err := js.CreateOrUpdateKeyValue(ctx, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("kv bucket %s: %w", s.cfg.Bucket, err)
		}
		*s.kv = kv
	}
	return &b, nil
}

// keysConfig keeps keys forever: they are retired explicitly (rotate-key).
var keysConfig = jetstream.KeyValueConfig{Bucket: session.BucketKeys, Description: "wxlogin generated signing keys", History: 1}

// OpenKeys creates or updates only the signing key bucket (for rotate-key).
func OpenKeys(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, keysConfig)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", keysConfig.Bucket, err)
	}
	return kv, nil
}

// Family is a refresh token family: the chain of refresh tokens that started
// with one login. Only hashes of tokens are stored.
type Family struct {
	UserID     string     `json:"user_id"`
	Kind       string     `json:"kind"`
	AppID      string     `json:"appid,omitempty"`
	TokenHash  string     `json:"token_hash"`
	Generation int        `json:"generation"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// SpentHashes are the hashes of the latest spent tokens, newest last, so
	// that a replayed old token is told apart from a made-up one.
	SpentHashes []string `json:"spent_hashes,omitempty"`
}

// Families stores refresh families in the sessions bucket, keyed by family id.
type Families struct{ kv jetstream.KeyValue }

// NewFamilies returns a store over the sessions bucket.
func NewFamilies(kv jetstream.KeyValue) *Families { return &Families{kv: kv} }

// Create stores a new family; ErrConflict if the id is taken.
func (f *Families) Create(ctx context.Context, id string, fam Family) error {
	data, err := json.Marshal(fam)
	if err != nil {
		return err
	}
	if _, err := f.kv.Create(ctx, id, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return ErrConflict
		}
		return fmt.Errorf("create family: %w", err)
	}
	return nil
}

// Get returns a family and the revision to update it with; ErrNotFound when
// it never existed or has aged out of the bucket.
func (f *Families) Get(ctx context.Context, id string) (Family, uint64, error) {
	e, err := f.kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Family{}, 0, ErrNotFound
		}
		return Family{}, 0, fmt.Errorf("get family: %w", err)
	}
	var fam Family
	if err := json.Unmarshal(e.Value(), &fam); err != nil {
		return Family{}, 0, fmt.Errorf("decode family: %w", err)
	}
	return fam, e.Revision(), nil
}

// Update replaces a family if it is still at rev; ErrConflict otherwise.
func (f *Families) Update(ctx context.Context, id string, fam Family, rev uint64) error {
	data, err := json.Marshal(fam)
	if err != nil {
		return err
	}
	if _, err := f.kv.Update(ctx, id, data, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return ErrConflict
		}
		return fmt.Errorf("update family: %w", err)
	}
	return nil
}

// revokeAttempts bounds the compare-and-set loop of Revoke; each lost race
// means a refresh happened in between, which cannot go on for long.
const revokeAttempts = 8

// Revoke marks a family revoked at at. It is idempotent: an unknown or
// already revoked family is left alone and is not an error.
func (f *Families) Revoke(ctx context.Context, id string, at time.Time) error {
	for range revokeAttempts {
		fam, rev, err := f.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if fam.RevokedAt != nil {
			return nil
		}
		fam.RevokedAt = &at
		err = f.Update(ctx, id, fam, rev)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("revoke family: %w after %d attempts", ErrConflict, revokeAttempts)
}

// Revocations stores revoked access token ids (the gateway reads them).
type Revocations struct{ kv jetstream.KeyValue }

// NewRevocations returns a store over the revoked bucket.
func NewRevocations(kv jetstream.KeyValue) *Revocations { return &Revocations{kv: kv} }

// Revoke records jti as revoked; the value is the token's exp in unix
// seconds. The bucket TTL outlives any access token, so the entry stays at
// least as long as the token could be used.
func (r *Revocations) Revoke(ctx context.Context, jti string, exp time.Time) error {
	if _, err := r.kv.Put(ctx, jti, []byte(strconv.FormatInt(exp.Unix(), 10))); err != nil {
		return fmt.Errorf("revoke jti: %w", err)
	}
	return nil
}
