// Package session is the NATS contract of the session service: subjects,
// messages and a typed client.
package session

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// Service is the micro service name (`nats micro ls`) and queue group.
const Service = "session"

// Subjects, all under wxlogin.session.>.
const (
	SubjectIssue    = "wxlogin.session.issue"
	SubjectRefresh  = "wxlogin.session.refresh"
	SubjectRevoke   = "wxlogin.session.revoke"
	SubjectQRCreate = "wxlogin.session.qr.create"
	SubjectJWKS     = "wxlogin.session.jwks"
)

// KV buckets owned by the session service (the gateway reads some of them).
const (
	BucketQR = "wxlogin_qr"
	// BucketSessions: key = "<user_id>.<family_id>" (family_id is the sid
	// claim), value = the refresh family as JSON; also user cut-offs under
	// "cutoff.user.<user_id>" (three tokens: no family filter matches them);
	// private to the session service.
	BucketSessions = "wxlogin_sessions"
	// BucketRevoked: keys RevokedJTIKey, RevokedSIDKey and RevokedUserKey,
	// values a JSON Revocation. The bucket TTL (access TTL + 1m) outlives
	// every token an entry can name. Session writes it; the gateway watches it.
	BucketRevoked = "wxlogin_revoked"
	BucketBind    = "wxlogin_bind"
	// BucketKeys holds generated signing keys (private: never read it outside
	// the session service; verifiers use the JWKS).
	BucketKeys = "wxlogin_keys"
)

// Limits of BucketBind. Identity and session both create the bucket, with
// the same configuration, so both take these from here. A bind token lives
// 10 minutes; at 20 new ones a second (unknown WeChat users with
// auto-register off), 4 KiB each (a WeChat identity with its profile and KV
// overhead), 12,000 live tokens are 47 MiB.
const (
	BindMaxBytes     = 48 << 20
	BindMaxValueSize = 16 << 10
)

// IssueRequest asks for a new token pair (a new refresh family) for a user
// who has just logged in by Kind (api.KindMiniProgram, ...) on AppID.
type IssueRequest struct {
	UserID string `json:"user_id"`
	Kind   string `json:"kind"`
	AppID  string `json:"appid,omitempty"`
}

// Tokens is the token part of the HTTP token response.
type Tokens struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// RefreshRequest spends a refresh token for a new token pair of the same family.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// RefreshTokenUser is the user id a refresh token names (its text before the
// first dot), read without verifying anything: only for looking the user up
// before spending the token. "" when there is none, or it is no id as
// wxlogin writes them (api.ValidID).
func RefreshTokenUser(refreshToken string) string {
	user, _, ok := strings.Cut(refreshToken, ".")
	if !ok || !api.ValidID(user) {
		return ""
	}
	return user
}

// RevokeRequest revokes any subset of: one access token (JTI, with its exp
// in unix seconds), one refresh family and all of its access tokens
// (SessionID), every family and access token of a user (UserID, e.g. on
// disable). At least one of JTI, SessionID and UserID is required. Revoking
// twice is not an error.
type RevokeRequest struct {
	JTI       string `json:"jti,omitempty"`
	ExpiresAt int64  `json:"exp,omitempty"`
	SessionID string `json:"sid,omitempty"`
	// Subject is the user the SessionID belongs to (the token's sub claim).
	// Optional: with it session finds the family at once, without it by a
	// scan of the sessions bucket. It revokes nothing by itself.
	Subject string `json:"sub,omitempty"`
	UserID  string `json:"user_id,omitempty"`
}

// RevokeResponse is the empty answer to a revoke.
type RevokeResponse struct{}

// JWKSRequest asks for the current verification keys.
type JWKSRequest struct{}

// JWKS is an RFC 7517 JWK set, kept raw: the gateway serves it as is and
// hands it to the verifier.
type JWKS = json.RawMessage

// Client calls the session service.
type Client struct{ rpc *natsrpc.Client }

// NewClient returns a client over nc.
func NewClient(nc *nats.Conn) *Client { return &Client{rpc: natsrpc.NewClient(nc, nil)} }

// NewObservedClient returns a client that reports each call's latency to observe.
func NewObservedClient(nc *nats.Conn, observe natsrpc.Observer) *Client {
	return &Client{rpc: natsrpc.NewClient(nc, observe)}
}

// Issue returns a new token pair for a user.
func (c *Client) Issue(ctx context.Context, req IssueRequest) (Tokens, error) {
	return natsrpc.Do[Tokens](ctx, c.rpc, SubjectIssue, req)
}

// Refresh spends a refresh token and returns the next pair. Errors:
// api.CodeTokenInvalid, api.CodeTokenExpired, api.CodeTokenRevoked,
// api.CodeRefreshTokenReused (the family is revoked).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	return natsrpc.Do[Tokens](ctx, c.rpc, SubjectRefresh, RefreshRequest{RefreshToken: refreshToken})
}

// Revoke revokes what req names (see RevokeRequest).
func (c *Client) Revoke(ctx context.Context, req RevokeRequest) error {
	return c.rpc.Call(ctx, SubjectRevoke, req, nil)
}

// JWKS returns the public verification keys as a JWK set.
func (c *Client) JWKS(ctx context.Context) (JWKS, error) {
	var res json.RawMessage
	err := c.rpc.Call(ctx, SubjectJWKS, JWKSRequest{}, &res)
	return JWKS(res), err
}
