package identity

import (
	"context"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"time"
)

// The official account's follow-to-log-in QR codes and server URL (issue
// 11). The gateway holds none of the account's secrets: the signature
// checks, decryption and WeChat calls happen in identity.
const (
	SubjectOAQRCreate = "wxlogin.identity.oa.qr.create"
	SubjectOAVerify   = "wxlogin.identity.oa.verify"
	SubjectOAPush     = "wxlogin.identity.oa.push"
)

// OAQRCreateRequest asks WeChat for a temporary QR_STR_SCENE code of the
// official account named App ("" = the default one) or with that appid.
type OAQRCreateRequest struct {
	App           string `json:"app,omitempty"`
	Scene         string `json:"scene"`
	ExpireSeconds int64  `json:"expire_seconds"`
}

// OAQRCode is the code: QRURL is WeChat's image of it, QRContent the text
// it encodes (for pages that render the code themselves).
type OAQRCode struct {
	QRURL         string `json:"qr_url"`
	QRContent     string `json:"qr_content"`
	ExpireSeconds int64  `json:"expire_seconds"`
}

// OASigned is the query WeChat signs every server URL request with.
type OASigned struct {
	AppID     string `json:"appid"` // from the URL path
	Signature string `json:"signature"`
	Timestamp string `json:"timestamp"`
	Nonce     string `json:"nonce"`
}

// OAVerifyRequest is the server URL's verification (a GET). A bad
// signature is api.CodeSignatureInvalid.
type OAVerifyRequest struct {
	OASigned
	Echostr string `json:"echostr"`
}

// OAVerifyResult is the text to answer: the echostr.
type OAVerifyResult struct {
	Echostr string `json:"echostr"`
}

// OAPushRequest is an event or message push (a POST) as it arrived.
// EncryptType "aes" with MsgSignature is safe mode.
type OAPushRequest struct {
	OASigned
	EncryptType  string `json:"encrypt_type,omitempty"`
	MsgSignature string `json:"msg_signature,omitempty"`
	Body         []byte `json:"body"`
}

// OAPushResult is what identity made of a push. Reply is the body to
// answer WeChat with ("success"). Scene is set when the push is a follow or scan of a QR code of
// ours (session.OAScene): then either Login is the user, or (auto-register
// off) BindToken with whose WeChat it is. A retried push (same sender and
// CreateTime) answers the first one's result again with Duplicate set, so
// a completion lost on the way can still happen, and nothing else is done
// twice.
type OAPushResult struct {
	Reply string `json:"reply"`
	// LoginReply (with Scene, when WXLOGIN_OA_LOGIN_REPLY is set) is the
	// reply message to answer instead once the ticket is completed.
	LoginReply string       `json:"login_reply,omitempty"`
	Scene      string       `json:"scene,omitempty"`
	Login      *LoginResult `json:"login,omitempty"`
	BindToken  string       `json:"bind_token,omitempty"`
	Duplicate  bool         `json:"duplicate,omitempty"`
}

// Events of the official account's pushes that are not (only) a login,
// for the adopter's own bot.
const (
	SubjectOASubscribed   = "wxlogin.events.oa.subscribed"
	SubjectOAUnsubscribed = "wxlogin.events.oa.unsubscribed"
	SubjectOAScanned      = "wxlogin.events.oa.scanned"
	SubjectOAMessage      = "wxlogin.events.oa.message"

	EventOASubscribed   = "oa.subscribed"
	EventOAUnsubscribed = "oa.unsubscribed"
	EventOAScanned      = "oa.scanned"
	EventOAMessage      = "oa.message"
)

// OAEvent is the body of an oa.* event: the push, decrypted, as fields.
type OAEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	OA         OAPush    `json:"oa"`
}

// OAPush is the part of a push an event carries.
type OAPush struct {
	AppID      string `json:"appid"`
	OpenID     string `json:"openid"`
	ToUserName string `json:"to_user_name"`
	CreateTime int64  `json:"create_time"`
	MsgType    string `json:"msg_type"`
	Event      string `json:"event,omitempty"`
	EventKey   string `json:"event_key,omitempty"`
	Content    string `json:"content,omitempty"`
	MsgID      string `json:"msg_id,omitempty"`
	// Login: the push follows or scans a follow-to-log-in code of ours
	// (the gateway then completes the ticket its scene names).
	Login bool `json:"login,omitempty"`
}

// OAQRCreate makes a follow-to-log-in QR code at WeChat.
func (c *Client) OAQRCreate(ctx context.Context, req OAQRCreateRequest) (OAQRCode, error) {
	return natsrpc.Do[OAQRCode](ctx, c.rpc, SubjectOAQRCreate, req)
}

// OAVerify checks the server URL's verification.
func (c *Client) OAVerify(ctx context.Context, req OAVerifyRequest) (OAVerifyResult, error) {
	return natsrpc.Do[OAVerifyResult](ctx, c.rpc, SubjectOAVerify, req)
}

// OAPush hands identity a push.
func (c *Client) OAPush(ctx context.Context, req OAPushRequest) (OAPushResult, error) {
	return natsrpc.Do[OAPushResult](ctx, c.rpc, SubjectOAPush, req)
}
