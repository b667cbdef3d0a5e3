package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// DefaultClientID is the client_id of tokens not tied to a WeChat app
// (password logins).
const DefaultClientID = "wxlogin"

// AccessClaims are the per-token facts of an access token.
type AccessClaims struct {
	UserID    string
	ClientID  string // the appid, or DefaultClientID
	SessionID string // the refresh family
	Kind      string // login kind
}

// Minter signs access tokens.
type Minter struct {
	keys     *Keyring
	issuer   string
	audience string
	ttl      time.Duration
}

// NewMinter returns a minter of access tokens living ttl.
func NewMinter(keys *Keyring, issuer, audience string, ttl time.Duration) *Minter {
	return &Minter{keys: keys, issuer: issuer, audience: audience, ttl: ttl}
}

// TTL is the lifetime of the access tokens.
func (m *Minter) TTL() time.Duration { return m.ttl }

// Mint returns a signed RFC 9068 access token issued at now.
func (m *Minter) Mint(now time.Time, c AccessClaims) (string, error) {
	iat := now.Unix()
	// aud is a single string: RFC 9068 allows it and every verifier accepts it.
	claims := jwt.MapClaims{
		"iss":       m.issuer,
		"aud":       m.audience,
		"sub":       c.UserID,
		"iat":       iat,
		"nbf":       iat,
		"exp":       now.Add(m.ttl).Unix(),
		"jti":       uuid.NewString(),
		"client_id": c.ClientID,
		"sid":       c.SessionID,
		"kind":      c.Kind,
	}
	key := m.keys.set.Load().signer(now)
	t := jwt.NewWithClaims(key.method, claims)
	t.Header["typ"] = jwtverify.TokenType
	t.Header["kid"] = key.kid
	s, err := t.SignedString(key.key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// refreshSecretBytes is the randomness of a refresh token beyond its family id.
const refreshSecretBytes = 32

// maxRefreshTokenLength bounds what ParseRefreshToken looks at.
const maxRefreshTokenLength = 128

// ErrMalformed is returned for a string that is not one of our refresh tokens.
var ErrMalformed = errors.New("tokens: malformed refresh token")

// NewFamilyID returns a new refresh family id (a UUID v4, which is also a
// valid KV key).
func NewFamilyID() string { return uuid.NewString() }

// NewRefreshToken returns a refresh token of family familyID:
// "<familyID>.<base64url of 32 random bytes>".
func NewRefreshToken(familyID string) (string, error) {
	var b [refreshSecretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("refresh token randomness: %w", err)
	}
	return familyID + "." + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ParseRefreshToken returns the family id of a well-formed refresh token.
// Anything else, a JWT included, is ErrMalformed.
func ParseRefreshToken(token string) (string, error) {
	if len(token) > maxRefreshTokenLength {
		return "", ErrMalformed
	}
	familyID, secret, ok := strings.Cut(token, ".")
	if !ok || strings.Contains(secret, ".") {
		return "", ErrMalformed
	}
	// Only the canonical UUID form: it is the KV key, and uuid.Parse also
	// accepts forms with braces or a urn prefix.
	id, err := uuid.Parse(familyID)
	if err != nil || id.String() != familyID {
		return "", ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != refreshSecretBytes {
		return "", ErrMalformed
	}
	return familyID, nil
}

// HashRefreshToken is the stored form of a refresh token: hex SHA-256 of the
// whole token. The token has 256 random bits, so a fast hash is enough.
func HashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// HashesEqual compares two token hashes in constant time.
func HashesEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
