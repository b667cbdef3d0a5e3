// Package verify checks wxlogin access tokens in any Go service: RFC 9068
// "at+jwt" JWTs signed by the session service with Ed25519 (keys from its
// JWK set, fetched from a URL and kept fresh, or handed in) or with a shared
// HS256 secret. It has no dependency on NATS or a database: an adopter's
// service imports it alone (the gin adapter is the separate module
// github.com/wxlogin/wxlogin/verify/ginverify).
//
// Verification is local: a valid signature, typ at+jwt, a known kid, the
// configured iss and aud, exp (with leeway), iat, sub and jti. It cannot see
// a logout or a disabled user before the token expires; services that must
// ask the gateway's introspection endpoint.
package verify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
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

// Error codes, as in wxlogin's problem+json answers.
const (
	CodeTokenInvalid = "token_invalid"
	CodeTokenExpired = "token_expired"
	// CodeTokenRevoked is the gateway's answer for a token still signed
	// but logged out; Verify never returns it (it cannot know).
	CodeTokenRevoked = "token_revoked"
)

// Error is why a token was refused. Code is CodeTokenExpired for an
// otherwise valid token past exp, CodeTokenInvalid for everything else; the
// message names the failed check and holds nothing from the token.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Claims are the verified claims of an access token.
type Claims struct {
	Subject   string // user id
	ID        string // jti, the key for revocation
	Issuer    string
	SessionID string // sid, the refresh family
	ClientID  string // appid, or "wxlogin" for password logins
	Kind      string // login kind: miniprogram, web, password, ...
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Options are what a token must match.
type Options struct {
	Issuer   string // required: WXLOGIN_JWT_ISSUER
	Audience string // required: WXLOGIN_JWT_AUDIENCE
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
	keys   atomic.Pointer[keyfunc.Keyfunc]
}

// NewEdDSA returns a verifier of Ed25519-signed tokens whose kid is in jwks,
// an RFC 7517 JWK set as the session service publishes it. SetJWKS replaces
// the set; NewRemote fetches it from a URL instead.
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
		return nil, fmt.Errorf("verify: HS256 secret must be at least %d bytes", MinSecretLength)
	}
	v, err := newVerifier(AlgHS256, opts)
	if err != nil {
		return nil, err
	}
	v.secret = append([]byte(nil), secret...)
	v.hsKID = HS256KeyID(secret)
	return v, nil
}

// RemoteOptions tune how NewRemote keeps the key set fresh.
type RemoteOptions struct {
	// RefreshInterval is how often the set is re-read: DefaultRefreshInterval when zero.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the shortest time between two extra reads
	// caused by a token with a kid not in the set (a rotated-in key):
	// DefaultUnknownKIDInterval when zero. It keeps forged kids from
	// turning into a flood of requests to the JWKS URL.
	UnknownKIDInterval time.Duration
	// HTTPClient fetches the set: a client with a 10 s timeout when nil.
	HTTPClient *http.Client
	// Logger gets failed refreshes: slog.Default() when nil.
	Logger *slog.Logger
}

// unknownKIDWait bounds how long Verify waits for the extra read of the set
// that a token with an unknown kid causes.
const unknownKIDWait = 2 * time.Second

// Defaults of RemoteOptions.
const (
	DefaultRefreshInterval    = 5 * time.Minute
	DefaultUnknownKIDInterval = 30 * time.Second
)

// NewRemote returns a verifier of Ed25519-signed tokens whose keys come from
// jwksURL (wxlogin's /.well-known/jwks.json), fetched now and re-read in the
// background until ctx ends (keyfunc/jwkset do the fetching and caching).
// A first fetch that fails is not an error: tokens are refused
// (token_invalid, unknown signing key) until a read succeeds. A key removed
// from the set stops verifying at the next refresh.
func NewRemote(ctx context.Context, jwksURL string, opts Options, ropts RemoteOptions) (*Verifier, error) {
	v, err := newVerifier(AlgEdDSA, opts)
	if err != nil {
		return nil, err
	}
	if ropts.RefreshInterval <= 0 {
		ropts.RefreshInterval = DefaultRefreshInterval
	}
	if ropts.UnknownKIDInterval <= 0 {
		ropts.UnknownKIDInterval = DefaultUnknownKIDInterval
	}
	if ropts.HTTPClient == nil {
		ropts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	log := ropts.Logger
	if log == nil {
		log = slog.Default()
	}
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:          ropts.HTTPClient,
		RefreshInterval: ropts.RefreshInterval,
		// One extra read per interval. The wait bounds both the wait for
		// the limiter and that read: a token with an unknown kid is held at
		// most unknownKIDWait, and refused at once when the next read is
		// further away than that.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(ropts.UnknownKIDInterval), 1),
		RateLimitWaitMax:  unknownKIDWait,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.WarnContext(ctx, "cannot refresh the wxlogin JWK set", "url", u, "error", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("verify: JWKS %s: %w", jwksURL, err)
	}
	v.keys.Store(&kf)
	return v, nil
}

func newVerifier(alg string, opts Options) (*Verifier, error) {
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("verify: issuer and audience are required")
	}
	switch {
	case opts.Leeway == 0:
		opts.Leeway = DefaultLeeway
	case opts.Leeway < 0 || opts.Leeway > MaxLeeway:
		return nil, fmt.Errorf("verify: leeway must be between 0 and %s", MaxLeeway)
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
	return &Verifier{alg: alg, parser: jwt.NewParser(popts...)}, nil
}

// SetJWKS replaces the key set of an EdDSA verifier built by NewEdDSA. Keys
// of other types are skipped (a set may carry keys we do not use); a
// malformed Ed25519 key, a key without kid or a duplicate kid fails the
// whole set, leaving the old one.
func (v *Verifier) SetJWKS(jwks []byte) error {
	if v.alg != AlgEdDSA {
		return errors.New("verify: SetJWKS on a non-EdDSA verifier")
	}
	set, err := ParseJWKS(jwks)
	if err != nil {
		return err
	}
	// Only the checked Ed25519 keys reach the key store.
	clean, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("verify: encode JWK set: %w", err)
	}
	kf, err := keyfunc.NewJWKSetJSON(clean)
	if err != nil {
		return fmt.Errorf("verify: JWK set: %w", err)
	}
	v.keys.Store(&kf)
	return nil
}

// JWKSet is an RFC 7517 JWK set.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// ParseJWKS decodes a JWK set and keeps its Ed25519 signing keys, checked:
// a malformed one, one without kid, one with an alg other than EdDSA or a
// duplicate kid fails the whole set.
func ParseJWKS(jwks []byte) (JWKSet, error) {
	var set JWKSet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return JWKSet{}, fmt.Errorf("verify: decode JWK set: %w", err)
	}
	out := JWKSet{Keys: make([]JWK, 0, len(set.Keys))}
	seen := make(map[string]bool, len(set.Keys))
	for i, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Alg != "" && k.Alg != AlgEdDSA {
			return JWKSet{}, fmt.Errorf("verify: key %d: alg %q on an Ed25519 key", i, k.Alg)
		}
		if k.Kid == "" {
			return JWKSet{}, fmt.Errorf("verify: key %d: no kid", i)
		}
		if _, err := k.Ed25519(); err != nil {
			return JWKSet{}, fmt.Errorf("verify: key %q: bad x", k.Kid)
		}
		if seen[k.Kid] {
			return JWKSet{}, fmt.Errorf("verify: duplicate kid %q", k.Kid)
		}
		seen[k.Kid] = true
		out.Keys = append(out.Keys, k)
	}
	return out, nil
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

// Verify checks token and returns its claims. Errors are *Error.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" || len(token) > MaxTokenLength {
		return nil, invalid("malformed token")
	}
	var c accessClaims
	_, err := v.parser.ParseWithClaims(token, &c, v.keyFor)
	if err != nil {
		return nil, translate(err)
	}
	return &Claims{
		Subject:   c.Subject,
		ID:        c.ID,
		Issuer:    c.Issuer,
		SessionID: c.SessionID,
		ClientID:  c.ClientID,
		Kind:      c.Kind,
		Audience:  []string(c.Audience),
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

var (
	errBadType    = errors.New("not an access token (typ)")
	errNoKID      = errors.New("no kid")
	errUnknownKID = errors.New("unknown kid")
)

// keyFor checks the header and picks the key. The alg was already checked
// against the one configured method, so a token can never choose its key
// type; a kid is required, so keyfunc never falls back to trying every key.
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
	kf := v.keys.Load()
	if kf == nil {
		return nil, errUnknownKID
	}
	key, err := (*kf).Keyfunc(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnknownKID, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, errUnknownKID
	}
	return pub, nil
}

// translate maps a parse error to the contract. Expired wins only when
// nothing else is wrong, so a forged or foreign token never reads as expired.
func translate(err error) *Error {
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
		return &Error{Code: CodeTokenExpired, Message: "access token expired"}
	default:
		return invalid("invalid token")
	}
}

func invalid(why string) *Error {
	return &Error{Code: CodeTokenInvalid, Message: "access token invalid: " + why}
}
