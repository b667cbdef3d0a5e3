package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/kvwatch"
)

// Layout of the keys bucket:
//
//	key.<kid>  storedKey: a generated private key (only ever rewritten to retire it)
//	current    currentRecord: which key signs, and from when
//
// A key is written before "current" names it, so a reader never finds
// "current" pointing at a missing key.
const (
	currentKey = "current"
	keyPrefix  = "key."
)

type storedKey struct {
	Alg        string     `json:"alg"`
	PrivateKey []byte     `json:"private_key"` // PKCS#8 DER
	CreatedAt  time.Time  `json:"created_at"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"` // when it stopped (or will stop) signing
}

type currentRecord struct {
	KID string `json:"kid"`
	// Previous keeps signing until ActiveAt, giving verifiers time to fetch
	// the new key before they meet tokens signed with it.
	Previous string    `json:"previous,omitempty"`
	ActiveAt time.Time `json:"active_at"`
}

// OpenKVKeyring returns a keyring of generated keys shared by every replica
// through kv, watched through js. If the bucket has no key yet, one is
// generated and the first replica to store it wins. The keyring then
// follows the bucket (shared/kvwatch: through NATS restarts and a bucket
// re-created), so a rotation reaches every replica without a restart;
// Close stops that. Retired keys stay published for retention. It returns
// once the bucket's keys are loaded, or fails when ctx ends first.
func OpenKVKeyring(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, retention time.Duration, log *slog.Logger) (*Keyring, error) {
	kid, err := ensureCurrent(ctx, kv, time.Now())
	if err != nil {
		return nil, err
	}
	log.Warn("signing with a generated key shared through NATS KV; set WXLOGIN_JWT_KEY_FILE to manage the key yourself",
		"bucket", kv.Bucket(), "kid", kid)

	watchCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	k := &Keyring{retention: retention, stop: stop, done: make(chan struct{})}
	f := &keyFollower{keyring: k, log: log, ready: make(chan struct{})}
	go func() {
		defer close(k.done)
		kvwatch.Run(watchCtx, kvwatch.NewBucket(js, kv.Bucket()), kvwatch.Options{CheckEvery: watchCheckEvery}, f, log)
	}()
	select {
	case <-f.ready:
		return k, nil
	case <-ctx.Done():
		k.Close()
		return nil, fmt.Errorf("watch keys: %w", ctx.Err())
	}
}

// watchCheckEvery is how often the watch checks for its bucket having been
// re-created (kvwatch's default when zero); tests shorten it.
var watchCheckEvery time.Duration

// ensureCurrent makes sure the bucket has a current key and returns its kid.
func ensureCurrent(ctx context.Context, kv jetstream.KeyValue, now time.Time) (string, error) {
	e, err := kv.Get(ctx, currentKey)
	if err == nil {
		var rec currentRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return "", fmt.Errorf("decode %s: %w", currentKey, err)
		}
		return rec.KID, nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("read current key: %w", err)
	}
	kid, err := createKey(ctx, kv, now)
	if err != nil {
		return "", err
	}
	rec, _ := json.Marshal(currentRecord{KID: kid, ActiveAt: now})
	_, err = kv.Create(ctx, currentKey, rec)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Another replica won the race: use its key, drop ours.
		_ = kv.Delete(ctx, keyPrefix+kid)
		return ensureCurrent(ctx, kv, now)
	}
	if err != nil {
		return "", fmt.Errorf("store current key: %w", err)
	}
	return kid, nil
}

// createKey generates a key and stores it under key.<kid>.
func createKey(ctx context.Context, kv jetstream.KeyValue, now time.Time) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode key: %w", err)
	}
	kid := jwtverify.Ed25519KeyID(pub)
	data, _ := json.Marshal(storedKey{Alg: jwtverify.AlgEdDSA, PrivateKey: der, CreatedAt: now.UTC()})
	if _, err := kv.Create(ctx, keyPrefix+kid, data); err != nil {
		return "", fmt.Errorf("store key: %w", err)
	}
	return kid, nil
}

// RotateKV generates a new key and makes it current. It signs from
// now+activateAfter; until then the key that signed so far goes on signing
// while verifiers pick the new one up from the JWK set. Keys retired more than
// retention ago are deleted. It returns the new kid.
func RotateKV(ctx context.Context, kv jetstream.KeyValue, retention, activateAfter time.Duration, now time.Time) (string, error) {
	e, err := kv.Get(ctx, currentKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Nothing to rotate from: the first key is the rotation.
		return ensureCurrent(ctx, kv, now)
	}
	if err != nil {
		return "", fmt.Errorf("read current key: %w", err)
	}
	var old currentRecord
	if err := json.Unmarshal(e.Value(), &old); err != nil {
		return "", fmt.Errorf("decode %s: %w", currentKey, err)
	}
	kid, err := createKey(ctx, kv, now)
	if err != nil {
		return "", err
	}
	signing := old.KID
	if old.Previous != "" && now.Before(old.ActiveAt) {
		signing = old.Previous // the last rotation has not taken effect yet
	}
	activeAt := now.Add(activateAfter).UTC()
	rec, _ := json.Marshal(currentRecord{KID: kid, Previous: signing, ActiveAt: activeAt})
	if _, err := kv.Update(ctx, currentKey, rec, e.Revision()); err != nil {
		_ = kv.Delete(ctx, keyPrefix+kid)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return "", errors.New("another rotation happened at the same time; run rotate-key again")
		}
		return "", fmt.Errorf("switch current key: %w", err)
	}
	if err := retireKeys(ctx, kv, kid, activeAt, retention, now); err != nil {
		return kid, fmt.Errorf("rotated to %s, but cleaning up old keys failed: %w", kid, err)
	}
	return kid, nil
}

// retireKeys marks every key but current as retired at activeAt and deletes
// those retired longer than retention ago.
func retireKeys(ctx context.Context, kv jetstream.KeyValue, current string, activeAt time.Time, retention time.Duration, now time.Time) error {
	lister, err := kv.ListKeysFiltered(ctx, keyPrefix+">")
	if err != nil {
		return err
	}
	var names []string
	for name := range lister.Keys() {
		names = append(names, name)
	}
	var errs []error
	for _, name := range names {
		if name == keyPrefix+current {
			continue
		}
		e, err := kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var sk storedKey
		if err := json.Unmarshal(e.Value(), &sk); err != nil {
			errs = append(errs, fmt.Errorf("decode %s: %w", name, err))
			continue
		}
		switch {
		case sk.RetiredAt == nil:
			sk.RetiredAt = &activeAt
			data, _ := json.Marshal(sk)
			if _, err := kv.Update(ctx, name, data, e.Revision()); err != nil {
				errs = append(errs, fmt.Errorf("retire %s: %w", name, err))
			}
		case !now.Before(sk.RetiredAt.Add(retention)):
			if err := kv.Delete(ctx, name, jetstream.LastRevision(e.Revision())); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// keyFollower mirrors the keys bucket into a Keyring: a kvwatch.Handler,
// called from one goroutine at a time.
type keyFollower struct {
	keyring *Keyring
	log     *slog.Logger
	ready   chan struct{} // closed by the first publish

	keys    map[string]storedKeyState // by kid
	current *currentRecord
	loading bool // a watch's initial values are coming in
}

type storedKeyState struct {
	priv      ed25519.PrivateKey
	retiredAt time.Time
}

// Begin starts the mirror over: a new watch delivers the whole bucket.
func (f *keyFollower) Begin() {
	f.keys = map[string]storedKeyState{}
	f.current = nil
	f.loading = true
}

// Entry applies a change; after the initial values, it is published at once.
func (f *keyFollower) Entry(e jetstream.KeyValueEntry) {
	f.apply(e)
	if !f.loading {
		f.update()
	}
}

// Loaded publishes the bucket's content.
func (f *keyFollower) Loaded() {
	f.loading = false
	f.update()
}

// update publishes the mirror, keeping the keys signing so far while the
// bucket names no usable current key (e.g. re-created empty, until a
// rotate-key or a starting replica writes one).
func (f *keyFollower) update() {
	if err := f.publish(); err != nil {
		f.log.Warn("keys bucket not usable; signing with the keys loaded before, if any", "error", err)
		return
	}
	select {
	case <-f.ready:
	default:
		close(f.ready)
	}
}

func (f *keyFollower) apply(e jetstream.KeyValueEntry) {
	name := e.Key()
	deleted := e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
	switch {
	case name == currentKey:
		if deleted {
			f.current = nil
			return
		}
		var rec currentRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			f.log.Error("bad current key record in KV", "error", err)
			return
		}
		f.current = &rec
	case strings.HasPrefix(name, keyPrefix):
		kid := strings.TrimPrefix(name, keyPrefix)
		if deleted {
			delete(f.keys, kid)
			return
		}
		var sk storedKey
		if err := json.Unmarshal(e.Value(), &sk); err != nil {
			f.log.Error("bad signing key record in KV", "kid", kid, "error", err)
			return
		}
		priv, err := parsePKCS8(sk.PrivateKey)
		if err != nil {
			f.log.Error("bad signing key in KV", "kid", kid, "error", err)
			return
		}
		st := storedKeyState{priv: priv}
		if sk.RetiredAt != nil {
			st.retiredAt = *sk.RetiredAt
		}
		f.keys[kid] = st
	}
}

// publish swaps in a key set built from the mirrored bucket. It fails, and
// leaves the old set in place, while "current" names no known key.
func (f *keyFollower) publish() error {
	if f.current == nil {
		return errors.New("no current signing key in KV")
	}
	cur, ok := f.keys[f.current.KID]
	if !ok {
		return fmt.Errorf("current signing key %s not in KV", f.current.KID)
	}
	set := &keySet{current: edSigningKey(cur.priv), activeAt: f.current.ActiveAt}
	if prev, ok := f.keys[f.current.Previous]; ok {
		set.previous = edSigningKey(prev.priv)
	}
	for _, st := range f.keys {
		pub := st.priv.Public().(ed25519.PublicKey)
		set.published = append(set.published, publishedKey{jwk: jwtverify.Ed25519JWK(pub), retiredAt: st.retiredAt})
	}
	slices.SortFunc(set.published, func(a, b publishedKey) int { return strings.Compare(a.jwk.Kid, b.jwk.Kid) })
	f.keyring.set.Store(set)
	return nil
}
