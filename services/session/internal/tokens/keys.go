// Package tokens holds the session service's signing keys and makes its
// tokens: access JWTs (RFC 9068) and opaque refresh tokens.
package tokens

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// signingKey is one key this service can sign with.
type signingKey struct {
	kid    string
	method jwt.SigningMethod
	key    any // ed25519.PrivateKey or []byte
}

// publishedKey is a verification key in the JWK set.
type publishedKey struct {
	jwk       jwtverify.JWK
	retiredAt time.Time // zero: not retired
}

// keySet is an immutable snapshot of the keys; a rotation swaps in a new one.
type keySet struct {
	current *signingKey
	// previous signs until activeAt, so a new key is published before use.
	previous  *signingKey
	activeAt  time.Time
	published []publishedKey
}

func (s *keySet) signer(now time.Time) *signingKey {
	if s.previous != nil && now.Before(s.activeAt) {
		return s.previous
	}
	return s.current
}

// Keyring is the set of keys a replica signs with and publishes. It is safe
// for concurrent use; generated keys follow the KV bucket (see OpenKVKeyring).
type Keyring struct {
	// retention is how long a retired key stays published: tokens it signed
	// live at most one access TTL after it stopped signing.
	retention time.Duration
	set       atomic.Pointer[keySet]

	closeOnce sync.Once
	stop      func()
	done      chan struct{}
}

// NewSecretKeyring returns an HS256 keyring. Secret keys are never published.
func NewSecretKeyring(secret []byte) (*Keyring, error) {
	if len(secret) < jwtverify.MinSecretLength {
		return nil, fmt.Errorf("HS256 secret must be at least %d bytes", jwtverify.MinSecretLength)
	}
	k := &Keyring{}
	k.set.Store(&keySet{current: &signingKey{
		kid:    jwtverify.HS256KeyID(secret),
		method: jwt.SigningMethodHS256,
		key:    append([]byte(nil), secret...),
	}})
	return k, nil
}

// NewPEMKeyring returns a keyring from PEM data holding one or more Ed25519
// PKCS#8 private keys. The first one signs; the others are only published, so
// an operator can retire a key file gracefully by appending the old key.
func NewPEMKeyring(data []byte) (*Keyring, error) {
	var keys []ed25519.PrivateKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY (PKCS#8)", block.Type)
		}
		key, err := parsePKCS8(block.Bytes)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM private key found")
	}
	set := &keySet{current: edSigningKey(keys[0])}
	seen := map[string]bool{}
	for _, key := range keys {
		jwk := jwtverify.Ed25519JWK(key.Public().(ed25519.PublicKey))
		if seen[jwk.Kid] {
			continue
		}
		seen[jwk.Kid] = true
		set.published = append(set.published, publishedKey{jwk: jwk})
	}
	k := &Keyring{}
	k.set.Store(set)
	return k, nil
}

func parsePKCS8(der []byte) (ed25519.PrivateKey, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", key)
	}
	return ed, nil
}

func edSigningKey(key ed25519.PrivateKey) *signingKey {
	return &signingKey{
		kid:    jwtverify.Ed25519KeyID(key.Public().(ed25519.PublicKey)),
		method: jwt.SigningMethodEdDSA,
		key:    key,
	}
}

// SigningKeyID returns the kid that signs at now.
func (k *Keyring) SigningKeyID(now time.Time) string { return k.set.Load().signer(now).kid }

// JWKS returns the JWK set to publish at now: every key that can still have
// live tokens. An HS256 keyring publishes {"keys":[]}.
func (k *Keyring) JWKS(now time.Time) ([]byte, error) {
	set := k.set.Load()
	out := struct {
		Keys []jwtverify.JWK `json:"keys"`
	}{Keys: make([]jwtverify.JWK, 0, len(set.published))}
	for _, p := range set.published {
		if !p.retiredAt.IsZero() && !now.Before(p.retiredAt.Add(k.retention)) {
			continue
		}
		out.Keys = append(out.Keys, p.jwk)
	}
	return json.Marshal(out)
}

// Close stops following the KV bucket, if the keyring does, and waits.
func (k *Keyring) Close() {
	k.closeOnce.Do(func() {
		if k.stop != nil {
			k.stop()
			<-k.done
		}
	})
}
