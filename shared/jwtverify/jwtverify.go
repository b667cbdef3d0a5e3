// Package jwtverify checks wxlogin access tokens locally: RFC 9068 "at+jwt"
// JWTs signed by the session service with Ed25519 (keys from its JWK set) or
// with a shared HS256 secret. Verification never fetches anything; the caller
// hands in the key set and replaces it when keys rotate.
package jwtverify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/shared/api"
)

// MaxTokenLength bounds what Verify will parse; our tokens are well under 1 KiB.
const MaxTokenLength = 4096

// DefaultLeeway and MaxLeeway bound the clock skew tolerated on exp, nbf and iat.
const (
	DefaultLeeway = 5 * time.Second
	MaxLeeway     = 60 * time.Second
)

// Algorithms.
const (
	AlgEdDSA = "EdDSA"
	AlgHS256 = "HS256"
)

// TokenType is the JWT "typ" header of access tokens (RFC 9068).
const TokenType = "at+jwt"

// MinSecretLength is the shortest HS256 secret accepted (256 bits).
const MinSecretLength = 32

// Claims are the verified claims of an access token.
type Claims struct {
	Subject   string // user id
	ID        string // jti, the key for revocation
	Issuer    string
	SessionID string // sid, the refresh family
	ClientID  string // appid, or "wxlogin" for password logins
	Kind      string // login kind (api.KindMiniProgram, ...)
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Options are what a token must match.
type Options struct {
	Issuer   string // required
	Audience string // required
	// Leeway is the tolerated clock skew: DefaultLeeway when zero, at most MaxLeeway.
	Leeway time.Duration
	// Now replaces the clock in tests.
	Now func() time.Time
}

// Verifier verifies access tokens. It is safe for concurrent use.
type Verifier struct {
	alg    string
	parser *jwt.Parser
	secret []byte // HS256
	hsKID  string // HS256
	keys   atomic.Pointer[map[string]ed25519.PublicKey]
}

// NewEdDSA returns a verifier of Ed25519-signed tokens whose kid is in jwks,
// an RFC 7517 JWK set as served by the session service.
func NewEdDSA(jwks []byte, opts Options) (*Verifier, error) {
	v, err := newVerifier(AlgEdDSA, opts)
	if err != nil {
		return nil, err
	}
	if err := v.SetJWKS(jwks); err != nil {
		return nil, err
	}
	return v, nil
}

// NewHS256 returns a verifier of tokens signed with secret (at least
// MinSecretLength bytes) under the kid HS256KeyID(secret).
func NewHS256(secret []byte, opts Options) (*Verifier, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("jwtverify: HS256 secret must be at least %d bytes", MinSecretLength)
	}
	v, err := newVerifier(AlgHS256, opts)
	if err != nil {
		return nil, err
	}
	v.secret = append([]byte(nil), secret...)
	v.hsKID = HS256KeyID(secret)
	return v, nil
}

func newVerifier(alg string, opts Options) (*Verifier, error) {
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("jwtverify: issuer and audience are required")
	}
	switch {
	case opts.Leeway == 0:
		opts.Leeway = DefaultLeeway
	case opts.Leeway < 0 || opts.Leeway > MaxLeeway:
		return nil, fmt.Errorf("jwtverify: leeway must be between 0 and %s", MaxLeeway)
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithStrictDecoding(),
	}
	if opts.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(opts.Now))
	}
	v := &Verifier{alg: alg, parser: jwt.NewParser(popts...)}
	empty := map[string]ed25519.PublicKey{}
	v.keys.Store(&empty)
	return v, nil
}

// SetJWKS replaces the key set of an EdDSA verifier. Keys of other types are
// skipped (a set may carry keys we do not use); a malformed Ed25519 key, a
// key without kid or a duplicate kid fails the whole set, leaving the old one.
func (v *Verifier) SetJWKS(jwks []byte) error {
	if v.alg != AlgEdDSA {
		return errors.New("jwtverify: SetJWKS on a non-EdDSA verifier")
	}
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return fmt.Errorf("jwtverify: decode JWK set: %w", err)
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for i, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Alg != "" && k.Alg != AlgEdDSA {
			return fmt.Errorf("jwtverify: key %d: alg %q on an Ed25519 key", i, k.Alg)
		}
		if k.Kid == "" {
			return fmt.Errorf("jwtverify: key %d: no kid", i)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return fmt.Errorf("jwtverify: key %q: bad x", k.Kid)
		}
		if _, dup := keys[k.Kid]; dup {
			return fmt.Errorf("jwtverify: duplicate kid %q", k.Kid)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	v.keys.Store(&keys)
	return nil
}

// accessClaims is the wire form of the claims; RegisteredClaims accepts aud
// as a string or an array.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID  string `json:"client_id"`
	SessionID string `json:"sid"`
	Kind      string `json:"kind"`
}

// errMissingClaim marks a token without a claim we rely on.
var errMissingClaim = errors.New("required claim missing")

// Validate adds our required claims to the library's checks: iat (which
// WithIssuedAt only checks when present), sub and jti (revocation needs it).
func (c *accessClaims) Validate() error {
	switch {
	case c.IssuedAt == nil:
		return fmt.Errorf("%w: iat", errMissingClaim)
	case c.Subject == "":
		return fmt.Errorf("%w: sub", errMissingClaim)
	case c.ID == "":
		return fmt.Errorf("%w: jti", errMissingClaim)
	}
	return nil
}

// Verify checks token and returns its claims. Errors are *api.Error with
// api.CodeTokenExpired for an otherwise valid token past exp, and
// api.CodeTokenInvalid for everything else.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" || len(token) > MaxTokenLength {
		return nil, invalid("malformed token")
	}
	var c accessClaims
	_, err := v.parser.ParseWithClaims(token, &c, v.keyFor)
	if err != nil {
		return nil, translate(err)
	}
	out := &Claims{
		Subject:   c.Subject,
		ID:        c.ID,
		Issuer:    c.Issuer,
		SessionID: c.SessionID,
		ClientID:  c.ClientID,
		Kind:      c.Kind,
		Audience:  []string(c.Audience),
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}
	return out, nil
}

var (
	errBadType    = errors.New("not an access token (typ)")
	errNoKID      = errors.New("no kid")
	errUnknownKID = errors.New("unknown kid")
)

// keyFor checks the header and picks the key. The alg was already checked
// against the one configured method, so a token can never choose its key type.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, TokenType) && !strings.EqualFold(typ, "application/"+TokenType) {
		return nil, errBadType
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKID
	}
	if v.alg == AlgHS256 {
		if kid != v.hsKID {
			return nil, errUnknownKID
		}
		return v.secret, nil
	}
	key, ok := (*v.keys.Load())[kid]
	if !ok {
		return nil, errUnknownKID
	}
	return key, nil
}

// translate maps a parse error to the contract. Expired wins only when
// nothing else is wrong, so a forged or foreign token never reads as expired.
// The messages say which check failed; they hold nothing from the token.
func translate(err error) *api.Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed token")
	case errors.Is(err, errBadType):
		return invalid("not an access token")
	case errors.Is(err, errNoKID), errors.Is(err, errUnknownKID):
		return invalid("unknown signing key")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token not valid yet")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, errMissingClaim):
		return invalid("required claim missing")
	case errors.Is(err, jwt.ErrTokenExpired):
		return &api.Error{Code: api.CodeTokenExpired, Message: "access token expired"}
	default:
		return invalid("invalid token")
	}
}

func invalid(why string) *api.Error {
	return &api.Error{Code: api.CodeTokenInvalid, Message: "access token invalid: " + why}
}

// JWK is one public key of a JWK set (RFC 7517, RFC 8037 for OKP).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// Ed25519JWK is the published form of an Ed25519 verification key, with its
// RFC 7638 thumbprint as kid.
func Ed25519JWK(pub ed25519.PublicKey) JWK {
	return JWK{
		Kty: "OKP",
		Crv: "Ed25519",
		X:   base64.RawURLEncoding.EncodeToString(pub),
		Kid: Ed25519KeyID(pub),
		Alg: AlgEdDSA,
		Use: "sig",
	}
}

// Ed25519KeyID is the RFC 7638 JWK thumbprint of pub: base64url(SHA-256) of
// the required members in lexicographic order, without whitespace.
func Ed25519KeyID(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// HS256KeyID names a shared secret without revealing it: "hs256-" and the
// first 8 hex digits of its SHA-256.
func HS256KeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return "hs256-" + hex.EncodeToString(sum[:4])
}
