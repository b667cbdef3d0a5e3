package session

import (
	"encoding/json"
	"strings"
)

// Key prefixes of BucketRevoked. The rest of the key is the id: a jti, a sid
// (refresh family id) or a user id.
const (
	RevokedJTIPrefix  = "jti."
	RevokedSIDPrefix  = "sid."
	RevokedUserPrefix = "user."
)

// RevokedJTIKey is the key that revokes the one access token with that jti.
func RevokedJTIKey(jti string) string { return RevokedJTIPrefix + jti }

// RevokedSIDKey is the key that revokes every access token whose sid claim
// is sid (a refresh family ended by logout or by refresh token reuse).
func RevokedSIDKey(sid string) string { return RevokedSIDPrefix + sid }

// RevokedUserKey is the key that revokes every access token of the user
// issued at or before the Revocation's At (iat <= At).
func RevokedUserKey(userID string) string { return RevokedUserPrefix + userID }

// ParseRevokedKey splits a BucketRevoked key into its prefix (one of the
// Revoked*Prefix constants) and id; ok is false for any other key.
func ParseRevokedKey(key string) (prefix, id string, ok bool) {
	for _, p := range []string{RevokedJTIPrefix, RevokedSIDPrefix, RevokedUserPrefix} {
		if rest, found := strings.CutPrefix(key, p); found && rest != "" {
			return p, rest, true
		}
	}
	return "", "", false
}

// Revocation is the value of every BucketRevoked key.
type Revocation struct {
	// At is when the revocation was made, in unix seconds. For a user key it
	// is the cut-off: tokens with iat <= At are revoked.
	At int64 `json:"at"`
	// Exp is when the entry names nothing that could still be used, in unix
	// seconds: on jti keys the revoked token's exp; on sid and user keys At
	// plus the issuer's access TTL. Verifiers age entries by it; a value
	// without it (an older writer) by their own access TTL.
	Exp int64 `json:"exp,omitempty"`
}

// DecodeRevocation parses a BucketRevoked value.
func DecodeRevocation(value []byte) (Revocation, error) {
	var r Revocation
	err := json.Unmarshal(value, &r)
	return r, err
}
