package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/shared/api"
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

// Refresh token layout: "<user_id>.<family_id>.<generation>.<secret>", the
// secret base64url of a random nonce and an HMAC-SHA256 tag, keyed with the
// family's own key, over everything before the tag. The tag makes every
// generation of a family's tokens recognisable for as long as the family
// lives, so any replayed old token is told from a made-up one.
const (
	refreshNonceBytes = 32
	refreshTagBytes   = sha256.Size
	// FamilyKeyBytes is the size of a family's MAC key.
	FamilyKeyBytes = 32
	// maxGenerationDigits bounds the generation (a decimal int32).
	maxGenerationDigits = 10
)

// maxUserIDLength bounds the user ids a token may name (identity's are
// UUIDs, 36 characters).
const maxUserIDLength = 64

// maxRefreshTokenLength bounds what ParseRefreshToken looks at: user id,
// family id, generation, secret and three dots.
const maxRefreshTokenLength = maxUserIDLength + 36 + maxGenerationDigits + 86 + 3

// ErrMalformed is returned for a string that is not one of our refresh tokens.
var ErrMalformed = errors.New("tokens: malformed refresh token")

// RefreshToken is a parsed refresh token. Parsing checks only its shape:
// Authentic says whether its family made it.
type RefreshToken struct {
	UserID   string
	FamilyID string
	// Generation is the family's rotation count when the token was made:
	// 0 at login, +1 per refresh.
	Generation int

	signed string // everything the tag covers but the nonce
	nonce  []byte
	tag    []byte
}

// Authentic reports whether the token was made with the family key key. It
// says nothing about whether the token is the family's current one.
func (t RefreshToken) Authentic(key []byte) bool {
	if len(key) != FamilyKeyBytes { // an empty key would let anyone sign
		return false
	}
	return hmac.Equal(t.tag, refreshTag(key, t.signed, t.nonce))
}

func refreshTag(key []byte, signed string, nonce []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	m.Write(nonce)
	return m.Sum(nil)
}

// NewFamilyKey returns a new family's MAC key.
func NewFamilyKey() ([]byte, error) {
	k := make([]byte, FamilyKeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("family key randomness: %w", err)
	}
	return k, nil
}

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
func ValidFamilyID(id string) bool { return api.ValidID(id) }

// NewFamilyID returns a new refresh family id (a UUID v4, which is also a
// valid KV key token).
func NewFamilyID() string { return uuid.NewString() }

// NewRefreshToken returns the refresh token of generation gen of the user's
// family familyID, tagged with the family's key. The ids make the family's
// KV key ("<userID>.<familyID>") derivable from the token, so a refresh is
// one Get, and a user's families can be listed by key prefix.
func NewRefreshToken(key []byte, userID, familyID string, gen int) (string, error) {
	if len(key) != FamilyKeyBytes || gen < 0 || gen > math.MaxInt32 {
		return "", fmt.Errorf("refresh token: bad family key or generation %d", gen)
	}
	nonce := make([]byte, refreshNonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("refresh token randomness: %w", err)
	}
	signed := userID + "." + familyID + "." + strconv.Itoa(gen) + "."
	secret := append(nonce, refreshTag(key, signed, nonce)...)
	return signed + base64.RawURLEncoding.EncodeToString(secret), nil
}

// ParseRefreshToken returns the parts of a well-formed refresh token.
// Anything else, a JWT or an older form included, is ErrMalformed.
func ParseRefreshToken(token string) (RefreshToken, error) {
	if len(token) > maxRefreshTokenLength {
		return RefreshToken{}, ErrMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 4 || !ValidUserID(parts[0]) || !ValidFamilyID(parts[1]) {
		return RefreshToken{}, ErrMalformed
	}
	gen, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil || gen < 0 || strconv.FormatInt(gen, 10) != parts[2] { // one spelling per generation
		return RefreshToken{}, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	if err != nil || len(raw) != refreshNonceBytes+refreshTagBytes {
		return RefreshToken{}, ErrMalformed
	}
	return RefreshToken{
		UserID:     parts[0],
		FamilyID:   parts[1],
		Generation: int(gen),
		signed:     token[:len(token)-len(parts[3])],
		nonce:      raw[:refreshNonceBytes],
		tag:        raw[refreshNonceBytes:],
	}, nil
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
