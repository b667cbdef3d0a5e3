package session

import (
	"context"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Subjects of the website QR flow (issue 3).
const (
	SubjectQRComplete = "wxlogin.session.qr.complete"
	SubjectQRConsume  = "wxlogin.session.qr.consume"
)

// QR ticket states, as stored in KV wxlogin_qr and answered to polls.
const (
	QRPending   = "pending"
	QRConfirmed = "confirmed"
	QRDenied    = "denied"
	// QRNotBound: the WeChat user is unknown and auto-register is off; the
	// record holds a bind_token that the poller (and only the poller, who has
	// the poll token) gets, to register or bind an account with.
	QRNotBound = "not_bound"
)

// QRCreateRequest starts a website login. App names a web app ("" = default).
// Kind api.KindOfficialAccount starts a follow-to-log-in ticket of an
// official account instead: its answer carries the Scene for the QR code.
type QRCreateRequest struct {
	App  string `json:"app,omitempty"`
	Kind string `json:"kind,omitempty"`
}

// QRTicket is a new ticket. The ticket is also WeChat's state parameter (it
// is visible to whoever sees the QR code); PollToken is the secret that lets
// only the creating browser read the result.
type QRTicket struct {
	Ticket    string `json:"ticket"`
	PollToken string `json:"poll_token"`
	AppID     string `json:"appid"`
	ExpiresIn int64  `json:"expires_in"`
	// Scene (official-account tickets only) is the QR code's scene_str:
	// OAScene of the ticket and a secret only WeChat gets, so that nobody
	// who saw the ticket can name it in a push.
	Scene string `json:"scene,omitempty"`
}

// OAScenePrefix starts the scenes of wxlogin's follow-to-log-in codes; an
// official account's other parametric codes (the adopter's own) are not
// ours and are left alone.
const OAScenePrefix = "wxl."

// OAScene is the scene_str of a follow-to-log-in ticket: prefix, ticket,
// secret (base64url, so never a dot inside), at most 64 characters.
func OAScene(ticket, secret string) string { return OAScenePrefix + ticket + "." + secret }

// ParseOAScene splits a scene made by OAScene; ok is false for any other.
func ParseOAScene(scene string) (ticket, secret string, ok bool) {
	rest, found := strings.CutPrefix(scene, OAScenePrefix)
	if !found {
		return "", "", false
	}
	ticket, secret, found = strings.Cut(rest, ".")
	if !found || ticket == "" || secret == "" || strings.Contains(secret, ".") {
		return "", "", false
	}
	return ticket, secret, true
}

// QRRecord is the value under the ticket in KV wxlogin_qr. The gateway reads
// and watches it; only session writes it. Tokens are never stored in KV: they
// are issued when a poll consumes a confirmed record.
type QRRecord struct {
	Status        string    `json:"status"`
	App           string    `json:"app,omitempty"`
	AppID         string    `json:"appid"`
	PollTokenHash string    `json:"poll_token_hash"` // hex SHA-256 of the poll token
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	User          *api.User `json:"user,omitempty"`
	IsNewUser     bool      `json:"is_new_user,omitempty"`
	Reason        string    `json:"reason,omitempty"`     // why denied, for the callback page
	BindToken     string    `json:"bind_token,omitempty"` // with QRNotBound only
	// Nickname and AvatarURL (QRNotBound only) are the WeChat user's, as
	// WeChat told them: the poller sees whose WeChat it is before binding it.
	Nickname  string `json:"nickname,omitempty"`
	AvatarURL string `json:"avatar_url,omitempty"`
	// Kind is the login kind of the tokens ("" = api.KindWeb);
	// SceneHash (official-account tickets) is the hex SHA-256 of the
	// scene's secret: only a completion naming it completes the ticket.
	Kind      string `json:"kind,omitempty"`
	SceneHash string `json:"scene_hash,omitempty"`
}

// QRCompleteRequest records the callback's outcome under a pending ticket
// (compare-and-set: a ticket is completed once; a second callback is a no-op
// and answers the stored status).
type QRCompleteRequest struct {
	Ticket    string    `json:"ticket"`
	Denied    bool      `json:"denied,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	User      *api.User `json:"user,omitempty"`
	IsNewUser bool      `json:"is_new_user,omitempty"`
	// BindToken completes the ticket as QRNotBound (identity answered
	// wechat_not_bound with it).
	BindToken string `json:"bind_token,omitempty"`
	// Nickname and AvatarURL go with BindToken: the WeChat user's, from
	// identity's wechat_not_bound answer (either may be empty).
	Nickname  string `json:"nickname,omitempty"`
	AvatarURL string `json:"avatar_url,omitempty"`
	// Scene completes an official-account ticket: the scene of the push
	// (OAScene), whose ticket must be Ticket. A website ticket refuses it,
	// and an official-account ticket refuses a completion without it.
	Scene string `json:"scene,omitempty"`
}

// QRStatus is a ticket's status.
type QRStatus struct {
	Status string `json:"status"`
}

// QRConsumeRequest hands the tokens of a confirmed ticket out exactly once
// (compare-and-set delete). Wrong poll token, a ticket not (or no longer)
// confirmed, or one consumed by a concurrent poll -> api.CodeQRTicketNotFound;
// past expiry -> api.CodeQRTicketExpired; the user's sessions revoked (e.g.
// disabled) since the ticket was created -> api.CodeTokenRevoked.
type QRConsumeRequest struct {
	Ticket    string `json:"ticket"`
	PollToken string `json:"poll_token"`
}

// QRConsumeResult is the token answer of a confirmed poll.
type QRConsumeResult struct {
	Tokens
	User      api.User `json:"user"`
	IsNewUser bool     `json:"is_new_user"`
}

// QRCreate starts a website login ticket.
func (c *Client) QRCreate(ctx context.Context, req QRCreateRequest) (QRTicket, error) {
	return natsrpc.Do[QRTicket](ctx, c.rpc, SubjectQRCreate, req)
}

// QRComplete records a callback's outcome.
func (c *Client) QRComplete(ctx context.Context, req QRCompleteRequest) (QRStatus, error) {
	return natsrpc.Do[QRStatus](ctx, c.rpc, SubjectQRComplete, req)
}

// QRConsume hands out a confirmed ticket's tokens, once.
func (c *Client) QRConsume(ctx context.Context, req QRConsumeRequest) (QRConsumeResult, error) {
	return natsrpc.Do[QRConsumeResult](ctx, c.rpc, SubjectQRConsume, req)
}
