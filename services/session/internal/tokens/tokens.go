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

// refreshSecretBytes is the randomness of a refresh token beyond its ids.
const refreshSecretBytes = 32

// maxUserIDLength bounds the user ids a token may name (identity's are
// UUIDs, 36 characters).
const maxUserIDLength = 64

// maxRefreshTokenLength bounds what ParseRefreshToken looks at: user id,
// family id, secret and two dots.
const maxRefreshTokenLength = maxUserIDLength + 36 + 43 + 2

// ErrMalformed is returned for a string that is not one of our refresh tokens.
var ErrMalformed = errors.New("tokens: malformed refresh token")

// ValidUserID reports whether id can name a user in tokens and KV keys: 1 to
// 64 characters of [A-Za-z0-9_-]. No dot, so it is exactly one token of a
// KV key ("<user_id>.<family_id>", "user.<user_id>") and of a refresh token.
func ValidUserID(id string) bool {
	if id == "" || len(id) > maxUserIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidFamilyID reports whether id is a family id as NewFamilyID makes them
// (the canonical UUID form: uuid.Parse also accepts braces and urn prefixes).
func ValidFamilyID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// NewFamilyID returns a new refresh family id (a UUID v4, which is also a
// valid KV key token).
func NewFamilyID() string { return uuid.NewString() }

// NewRefreshToken returns a refresh token of the user's family familyID:
// "<userID>.<familyID>.<base64url of 32 random bytes>". The ids make the
// family's KV key ("<userID>.<familyID>") derivable from the token, so a
// refresh is one Get, and a user's families can be listed by key prefix.
func NewRefreshToken(userID, familyID string) (string, error) {
	secret, err := RandomString(refreshSecretBytes)
	if err != nil {
		return "", fmt.Errorf("refresh token randomness: %w", err)
	}
	return userID + "." + familyID + "." + secret, nil
}

// ParseRefreshToken returns the user and family ids of a well-formed refresh
// token. Anything else, a JWT included, is ErrMalformed.
func ParseRefreshToken(token string) (userID, familyID string, err error) {
	if len(token) > maxRefreshTokenLength {
		return "", "", ErrMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || !ValidUserID(parts[0]) || !ValidFamilyID(parts[1]) {
		return "", "", ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(raw) != refreshSecretBytes {
		return "", "", ErrMalformed
	}
	return parts[0], parts[1], nil
}

// RandomString returns n bytes from the CSPRNG, base64url without padding
// (so also a valid KV key and URL component).
func RandomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is hex SHA-256 of a high-entropy token (refresh tokens, QR poll
// tokens): with ≥128 random bits a fast hash is enough, no salt or KDF.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// HashRefreshToken is the stored form of a refresh token: HashToken of the
// whole token.
func HashRefreshToken(token string) string { return HashToken(token) }

// HashesEqual compares two token hashes in constant time.
func HashesEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
