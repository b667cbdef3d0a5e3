// Package kvstate is the session service's state in NATS KV: the buckets it
// owns, refresh families and QR tickets (changed only by compare-and-set) and
// revocations.
package kvstate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Sentinels of this store; callers map them to contract codes.
var (
	ErrNotFound = errors.New("kvstate: not found")
	ErrConflict = errors.New("kvstate: changed concurrently")
)

// revokedSlack keeps a revocation a little past the longest possible exp of
// a token it names.
const revokedSlack = time.Minute

// TTLs are the lifetimes the buckets are sized for (limits.go), and the
// caps configured for the two that grow with traffic (0: sized from the TTLs).
type TTLs struct {
	Access  time.Duration
	Refresh time.Duration
	QR      time.Duration
	// QRMaxBytes is WXLOGIN_QR_MAX_BYTES, SessionsMaxBytes WXLOGIN_SESSIONS_MAX_BYTES.
	QRMaxBytes       int64
	SessionsMaxBytes int64
}

// Revoked is the revoked bucket's TTL: longer than any access token lives.
func (t TTLs) Revoked() time.Duration { return t.Access + revokedSlack }

// Buckets are the KV buckets of the session service.
type Buckets struct {
	Sessions jetstream.KeyValue
	Revoked  jetstream.KeyValue
	QR       jetstream.KeyValue
	Keys     jetstream.KeyValue
	OA       jetstream.KeyValue
}

// Open creates or updates every bucket with replicas copies each (1 on a
// single server, typically 3 on a cluster). It is safe to run from every
// replica at once: the configuration is the same, so the update is a no-op.
// A different replica count than the buckets have scales them.
func Open(ctx context.Context, js jetstream.JetStream, ttl TTLs, replicas int) (*Buckets, error) {
	var b Buckets
	dst := map[string]*jetstream.KeyValue{
		session.BucketSessions: &b.Sessions,
		session.BucketRevoked:  &b.Revoked,
		session.BucketQR:       &b.QR,
		session.BucketKeys:     &b.Keys,
		session.BucketOA:       &b.OA,
	}
	for _, cfg := range bucketConfigs(ttl, replicas) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("kv bucket %s: %w", cfg.Bucket, err)
		}
		*dst[cfg.Bucket] = kv
	}
	return &b, nil
}

// bucketConfigs are the configurations of every bucket the service owns.
func bucketConfigs(ttl TTLs, replicas int) []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{Bucket: session.BucketSessions, Description: "wxlogin refresh token families", TTL: ttl.Refresh, History: 1, Replicas: replicas,
			MaxBytes: ttl.sessionsCap(), MaxValueSize: sessionsMaxValueSize},
		{Bucket: session.BucketRevoked, Description: "wxlogin revoked access tokens (jti, sid, user keys)", TTL: ttl.Revoked(), History: 1, Replicas: replicas,
			MaxBytes: ttl.revokedCap(), MaxValueSize: revokedMaxValueSize},
		{Bucket: session.BucketQR, Description: "wxlogin QR login tickets", TTL: ttl.QR, History: 1, Replicas: replicas,
			MaxBytes: ttl.qrCap(), MaxValueSize: qrMaxValueSize},
		keysConfig(replicas),
		{Bucket: session.BucketOA, Description: "wxlogin in-WeChat login states and one-time codes", TTL: session.OAStateTTL, History: 1, Replicas: replicas,
			MaxBytes: oaCap(), MaxValueSize: oaMaxValueSize},
	}
}

// keysConfig keeps keys forever: they are retired explicitly (rotate-key).
func keysConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: session.BucketKeys, Description: "wxlogin generated signing keys", History: 1, Replicas: replicas,
		MaxBytes: keysMaxBytes, MaxValueSize: keysMaxValueSize}
}

// OpenKeys opens only the signing key bucket (for rotate-key), creating it
// with replicas copies if it does not exist yet. An existing bucket is used
// as it is: a one-off command run with a different replica count must not
// rescale what the running service set up.
func OpenKeys(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	cfg := keysConfig(replicas)
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket) // created meanwhile by the service
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Family is a refresh token family: the chain of refresh tokens that started
// with one login. Only the hash of the current token is stored.
type Family struct {
	UserID    string `json:"user_id"`
	Kind      string `json:"kind"`
	AppID     string `json:"appid,omitempty"`
	TokenHash string `json:"token_hash"`
	// Generation counts the refreshes: the current token carries it, every
	// older one a smaller number, so any earlier token is recognised as reuse.
	Generation int `json:"generation"`
	// MACKey authenticates the family's tokens of every generation. Alone it
	// makes no usable token: the current one must also match TokenHash.
	MACKey    []byte     `json:"mac_key"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// LastUsedAt is the family's latest refresh (absent before the first):
	// the refresh writes the family anyway, so knowing it costs nothing.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// FamilyKey is a family's key in the sessions bucket: "<user_id>.<family_id>",
// so that ListKeysFiltered("<user_id>.*") finds all of a user's families.
func FamilyKey(userID, familyID string) string { return userID + "." + familyID }

// Families stores refresh families in the sessions bucket. Callers pass ids
// that are valid KV key tokens (tokens.ValidUserID, tokens.ValidFamilyID).
type Families struct{ kv jetstream.KeyValue }

// NewFamilies returns a store over the sessions bucket.
func NewFamilies(kv jetstream.KeyValue) *Families { return &Families{kv: kv} }

// Create stores a new family; ErrConflict if the id is taken.
func (f *Families) Create(ctx context.Context, userID, familyID string, fam Family) error {
	data, err := json.Marshal(fam)
	if err != nil {
		return err
	}
	if _, err := f.kv.Create(ctx, FamilyKey(userID, familyID), data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return ErrConflict
		}
		return fmt.Errorf("create family: %w", err)
	}
	return nil
}

// Get returns a family and the revision to update it with; ErrNotFound when
// it never existed or has aged out of the bucket.
func (f *Families) Get(ctx context.Context, userID, familyID string) (Family, uint64, error) {
	e, err := f.kv.Get(ctx, FamilyKey(userID, familyID))
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
func (f *Families) Update(ctx context.Context, userID, familyID string, fam Family, rev uint64) error {
	data, err := json.Marshal(fam)
	if err != nil {
		return err
	}
	if _, err := f.kv.Update(ctx, FamilyKey(userID, familyID), data, rev); err != nil {
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

// Revoke marks a family revoked at at. It is idempotent: an already revoked
// family is left alone and is not an error; revoked reports whether this call
// marked it. ErrNotFound when there is no such family.
func (f *Families) Revoke(ctx context.Context, userID, familyID string, at time.Time) (revoked bool, err error) {
	for range revokeAttempts {
		fam, rev, err := f.Get(ctx, userID, familyID)
		if err != nil {
			return false, err
		}
		if fam.RevokedAt != nil {
			return false, nil
		}
		fam.RevokedAt = &at
		err = f.Update(ctx, userID, familyID, fam, rev)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrConflict) {
			return false, err
		}
	}
	return false, fmt.Errorf("revoke family: %w after %d attempts", ErrConflict, revokeAttempts)
}

// RevokeUser marks every family of the user revoked at at and returns how
// many this call marked.
func (f *Families) RevokeUser(ctx context.Context, userID string, at time.Time) (int, error) {
	keys, err := f.listKeys(ctx, FamilyKey(userID, "*"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		_, familyID, _ := strings.Cut(key, ".")
		revoked, err := f.Revoke(ctx, userID, familyID, at)
		if errors.Is(err, ErrNotFound) {
			continue // aged out since the listing
		}
		if err != nil {
			return n, err
		}
		if revoked {
			n++
		}
	}
	return n, nil
}

// ListUser returns the user's families by id (those in the bucket, revoked
// and expired ones too: the caller decides what is live).
func (f *Families) ListUser(ctx context.Context, userID string) (map[string]Family, error) {
	keys, err := f.listKeys(ctx, FamilyKey(userID, "*"))
	if err != nil {
		return nil, err
	}
	fams := make(map[string]Family, len(keys))
	for _, key := range keys {
		_, familyID, _ := strings.Cut(key, ".")
		fam, _, err := f.Get(ctx, userID, familyID)
		if errors.Is(err, ErrNotFound) {
			continue // aged out since the listing
		}
		if err != nil {
			return nil, err
		}
		fams[familyID] = fam
	}
	return fams, nil
}

// Trim deletes the user's oldest families (by CreatedAt) beyond the
// newest keep, and returns how many it deleted: one account logging in
// over and over must not fill the bucket every login shares. A trimmed
// family's refresh token no longer works; first, before(familyID) ends its
// access tokens (a failure stops the trim, the family kept).
func (f *Families) Trim(ctx context.Context, userID string, keep int, before func(familyID string) error) (int, error) {
	fams, err := f.ListUser(ctx, userID)
	if err != nil || len(fams) <= keep {
		return 0, err
	}
	ids := slices.SortedFunc(maps.Keys(fams), func(a, b string) int {
		return cmp.Or(fams[a].CreatedAt.Compare(fams[b].CreatedAt), strings.Compare(a, b))
	})
	n := 0
	for _, id := range ids[:len(ids)-keep] {
		if err := before(id); err != nil {
			return n, fmt.Errorf("trim family: %w", err)
		}
		if err := f.kv.Delete(ctx, FamilyKey(userID, id)); err != nil {
			return n, fmt.Errorf("trim family: %w", err)
		}
		n++
	}
	return n, nil
}

// OwnerOf returns the user whose family familyID is, by a scan of the
// bucket's keys (a server-side subject filter): for callers that only know
// the sid. ErrNotFound when no such family exists.
func (f *Families) OwnerOf(ctx context.Context, familyID string) (string, error) {
	keys, err := f.listKeys(ctx, FamilyKey("*", familyID))
	if err != nil {
		return "", err
	}
	if len(keys) == 0 {
		return "", ErrNotFound
	}
	userID, _, _ := strings.Cut(keys[0], ".")
	return userID, nil
}

// listKeys returns the live keys matching filter.
func (f *Families) listKeys(ctx context.Context, filter string) ([]string, error) {
	lister, err := f.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list families %s: %w", filter, err)
	}
	// No Stop: the lister stops its watch itself once it has listed every
	// key or ctx has ended, the only ways out of the loop below; Stop would
	// wait on a consumer delete that, with NATS gone, ignores ctx for 5 s
	// (and shutdown waits for this request).
	seen := map[string]bool{}
	var keys []string
	for {
		select {
		case key, ok := <-lister.Keys():
			if !ok {
				return keys, nil
			}
			if !seen[key] { // the lister may repeat a key that is being written
				seen[key] = true
				keys = append(keys, key)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("list families %s: %w", filter, ctx.Err())
		}
	}
}

// Revocations writes the revoked bucket (the gateway watches it).
type Revocations struct {
	kv        jetstream.KeyValue
	accessTTL time.Duration
}

// NewRevocations returns a store over the revoked bucket. accessTTL is the
// lifetime of the access tokens this service signs: sid and user entries
// carry "exp" = write time + accessTTL, after which no token they can match
// is alive, so a verifier ages them by that instead of its own setting.
func NewRevocations(kv jetstream.KeyValue, accessTTL time.Duration) *Revocations {
	return &Revocations{kv: kv, accessTTL: accessTTL}
}

// RevokeJTI revokes one access token until its exp. The bucket TTL outlives
// any access token, so the entry stays at least as long as the token could
// be used.
func (r *Revocations) RevokeJTI(ctx context.Context, jti string, exp, now time.Time) error {
	return r.put(ctx, session.RevokedJTIKey(jti), session.Revocation{At: now.Unix(), Exp: exp.Unix()})
}

// RevokeSID revokes every access token of a refresh family.
func (r *Revocations) RevokeSID(ctx context.Context, sid string, now time.Time) error {
	return r.put(ctx, session.RevokedSIDKey(sid), session.Revocation{At: now.Unix(), Exp: now.Add(r.accessTTL).Unix()})
}

// RevokeUser revokes every access token of the user issued at or before now.
func (r *Revocations) RevokeUser(ctx context.Context, userID string, now time.Time) error {
	return r.put(ctx, session.RevokedUserKey(userID), session.Revocation{At: now.Unix(), Exp: now.Add(r.accessTTL).Unix()})
}

func (r *Revocations) put(ctx context.Context, key string, v session.Revocation) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("revoke %s: %w", key, err)
	}
	return nil
}
