package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/services/identity/internal/oapushes"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/oapush"
)

// Limits on the server URL's query (WeChat's are far smaller).
const (
	maxSignedField = 64
	maxEchostr     = 256
	// maxQRExpire is WeChat's limit for a temporary code: 30 days.
	maxQRExpire = 2_592_000
	maxScene    = 64
)

var (
	errSignature = api.Errorf(api.CodeSignatureInvalid, "the WeChat signature does not match")
	errNoOA      = api.Errorf(api.CodeNotFound, "no such official account")
	errPush      = api.Errorf(api.CodeInvalidRequest, "the push is not a WeChat message")
)

// oaApp is the official account with appid.
func (a *API) oaApp(appid string) (apps.App, error) {
	app, ok := a.Apps.ByAppID(appid)
	if !ok || app.Kind != apps.KindOfficialAccount {
		return apps.App{}, errNoOA
	}
	return app, nil
}

// A signed request's timestamp must lie within this window of our clock:
// a signature captured once (plaintext mode signs no body) is worth
// nothing after it. The window spans a minute less than the pushes
// bucket's TTL, so a signature is remembered for longer than it is fresh
// even with our clock and the NATS server's a little apart (oapushes).
const (
	signedMaxAge   = 3 * time.Minute
	signedMaxAhead = time.Minute // clock skew the other way
)

var errStale = api.Errorf(api.CodeSignatureInvalid, "the WeChat signature's timestamp is not current")

// checkSigned verifies the signature every server URL request carries:
// sha1 of the account's token, timestamp and nonce, with a timestamp
// within the window around now.
func checkSigned(app apps.App, s identity.OASigned, now time.Time) error {
	for _, f := range []string{s.Signature, s.Timestamp, s.Nonce} {
		if f == "" || len(f) > maxSignedField {
			return errSignature
		}
	}
	if app.Token == "" || oapush.Verify(s.Signature, app.Token, s.Timestamp, s.Nonce) != nil {
		return errSignature
	}
	ts, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != s.Timestamp {
		return errSignature // only the canonical digits: one signature, one reading
	}
	if at := time.Unix(ts, 0); at.Before(now.Add(-signedMaxAge)) || at.After(now.Add(signedMaxAhead)) {
		return errStale
	}
	return nil
}

// OAQRCreate makes a follow-to-log-in code at WeChat for one of our
// scenes.
func (a *API) OAQRCreate(ctx context.Context, req identity.OAQRCreateRequest) (identity.OAQRCode, error) {
	app, err := a.lookupApp(req.App, apps.KindOfficialAccount)
	if err != nil {
		return identity.OAQRCode{}, err
	}
	if _, _, ok := session.ParseOAScene(req.Scene); !ok || len(req.Scene) > maxScene {
		return identity.OAQRCode{}, api.Errorf(api.CodeInvalidRequest, "scene is not a follow-to-log-in scene")
	}
	if req.ExpireSeconds < 60 || req.ExpireSeconds > maxQRExpire {
		return identity.OAQRCode{}, api.Errorf(api.CodeInvalidRequest, "expire_seconds must be 60 to %d", maxQRExpire)
	}
	qr, err := a.WeChat.OAQRCode(ctx, app, req.Scene, int(req.ExpireSeconds))
	if err != nil {
		return identity.OAQRCode{}, err
	}
	return identity.OAQRCode{QRURL: wechat.OAQRImageURL(a.WechatMPBase, qr.Ticket), QRContent: qr.URL,
		ExpireSeconds: int64(qr.ExpireSeconds)}, nil
}

// OAVerify answers the server URL's verification: the echostr, only with
// a valid signature.
func (a *API) OAVerify(ctx context.Context, req identity.OAVerifyRequest) (identity.OAVerifyResult, error) {
	app, err := a.oaApp(req.AppID)
	if err != nil {
		return identity.OAVerifyResult{}, err
	}
	if err := checkSigned(app, req.OASigned, a.Now()); err != nil {
		a.log.Info("official account verification refused", "appid", app.AppID, "request_id", natsrpc.RequestID(ctx), "reason", err)
		return identity.OAVerifyResult{}, err
	}
	// A verification's signature is as good as a push's: spent here, so a
	// logged verification URL signs no push.
	if err := a.bindSignature(ctx, app, req.OASigned, "verify"); err != nil {
		return identity.OAVerifyResult{}, err
	}
	if req.Echostr == "" || len(req.Echostr) > maxEchostr {
		return identity.OAVerifyResult{}, api.Errorf(api.CodeInvalidRequest, "echostr is missing or too long")
	}
	return identity.OAVerifyResult{Echostr: req.Echostr}, nil
}

// OAPush handles a push: checks, opens and parses it, then (once per
// sender and CreateTime) logs in a follow or scan of one of our codes and
// writes an oa.* event for the adopter's bot.
func (a *API) OAPush(ctx context.Context, req identity.OAPushRequest) (identity.OAPushResult, error) {
	app, err := a.oaApp(req.AppID)
	if err != nil {
		return identity.OAPushResult{}, err
	}
	msg, err := a.openPush(ctx, app, req)
	if err != nil {
		return identity.OAPushResult{}, err
	}
	key := oapushes.Key(app.AppID, msg.FromUserName, msg.CreateTime)
	// A signature works for one message: WeChat's retries repeat both. In
	// plaintext mode the signature covers no body, so it is bound to the
	// body itself; in safe mode msg_signature covers the (possibly
	// re-encrypted) body, and the push it names is enough.
	use := key
	if !strings.EqualFold(req.EncryptType, "aes") {
		use = oapushes.BodyKey(key, req.Body)
	}
	if err := a.bindSignature(ctx, app, req.OASigned, use); err != nil {
		return identity.OAPushResult{}, err
	}
	claim, err := a.Pushes.Claim(ctx, key)
	if err != nil {
		return identity.OAPushResult{}, a.storeError(ctx, err)
	}
	if !claim.First {
		a.log.Info("official account push retried; answered as the first time", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx), "handled", claim.Earlier != nil)
		res := identity.OAPushResult{Reply: replySuccess}
		if claim.Earlier != nil {
			res = *claim.Earlier
		}
		res.Duplicate = true
		return res, nil
	}
	res, err := a.handlePush(ctx, app, msg)
	if err != nil {
		// WeChat's retry (the answer is not success) starts afresh.
		if rerr := a.Pushes.Release(context.WithoutCancel(ctx), key, claim); rerr != nil {
			a.log.Warn("official account push not released; its retries will be acknowledged unhandled", "appid", app.AppID,
				"request_id", natsrpc.RequestID(ctx), "error", rerr)
		}
		return identity.OAPushResult{}, err
	}
	if err := a.Pushes.Finish(ctx, key, claim, res); err != nil {
		a.log.Warn("official account push result not kept for retries", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx), "error", err)
	}
	return res, nil
}

// bindSignature spends a checked signature on use (a push, or the
// verification): the same use again passes, any other is signature_invalid.
func (a *API) bindSignature(ctx context.Context, app apps.App, s identity.OASigned, use string) error {
	err := a.Pushes.BindSignature(ctx, oapushes.SignatureKey(app.AppID, s.Signature), use)
	if errors.Is(err, oapushes.ErrSignatureUsed) {
		a.log.Warn("official account request refused: its signature was used before for another message", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx))
		return errSignature
	}
	if err != nil {
		return a.storeError(ctx, err)
	}
	return nil
}

// replySuccess is the answer that tells WeChat the push arrived and that
// nothing is sent to the user.
const replySuccess = "success"

// openPush checks the signatures and returns the message. Plaintext mode
// signs only the query, not the body: an account with an EncodingAESKey
// takes safe-mode pushes only (WeChat's compatible mode sends those too),
// whose msg_signature covers the encrypted message.
func (a *API) openPush(ctx context.Context, app apps.App, req identity.OAPushRequest) (oapush.Message, error) {
	if err := checkSigned(app, req.OASigned, a.Now()); err != nil {
		a.log.Info("official account push refused", "appid", app.AppID, "request_id", natsrpc.RequestID(ctx), "reason", err)
		return oapush.Message{}, err
	}
	msg, err := oapush.Parse(req.Body)
	if err != nil {
		return oapush.Message{}, errPush
	}
	aes := strings.EqualFold(req.EncryptType, "aes")
	switch {
	case app.EncodingAESKey == "" && aes:
		return oapush.Message{}, api.Errorf(api.CodeInvalidRequest, "a safe-mode push, but this official account has no EncodingAESKey")
	case app.EncodingAESKey != "" && !aes:
		a.log.Info("official account push in plaintext refused: the account is in safe mode", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx))
		return oapush.Message{}, errSignature
	case aes:
		if msg.Encrypt == "" || len(req.MsgSignature) > maxSignedField ||
			oapush.Verify(req.MsgSignature, app.Token, req.Timestamp, req.Nonce, msg.Encrypt) != nil {
			a.log.Info("official account push with a bad msg_signature", "appid", app.AppID, "request_id", natsrpc.RequestID(ctx))
			return oapush.Message{}, errSignature
		}
		c, err := oapush.NewCipher(app.EncodingAESKey, app.AppID)
		if err != nil {
			return oapush.Message{}, err // refused at start: cannot happen
		}
		inner, err := c.Decrypt(msg.Encrypt)
		if errors.Is(err, oapush.ErrWrongAppID) {
			a.log.Warn("official account push encrypted for another appid", "appid", app.AppID, "request_id", natsrpc.RequestID(ctx))
			return oapush.Message{}, errSignature
		}
		if err != nil {
			return oapush.Message{}, errPush
		}
		if msg, err = oapush.Parse(inner); err != nil {
			return oapush.Message{}, errPush
		}
	}
	if msg.FromUserName == "" || len(msg.FromUserName) > maxSignedField || msg.CreateTime <= 0 || msg.MsgType == "" {
		return oapush.Message{}, errPush
	}
	return msg, nil
}

// handlePush does what a push asks for, once.
func (a *API) handlePush(ctx context.Context, app apps.App, msg oapush.Message) (identity.OAPushResult, error) {
	res := identity.OAPushResult{Reply: replySuccess}
	scene := msg.Scene()
	if _, _, ours := session.ParseOAScene(scene); ours && len(scene) <= maxScene {
		f, err := a.WeChat.OAFollower(ctx, app, msg.FromUserName)
		if err != nil {
			return res, err
		}
		if f.OpenID != msg.FromUserName {
			return res, api.Errorf(api.CodeWechatError, "WeChat answered user/info for another openid")
		}
		login, err := a.loginWechat(ctx, store.WechatLogin{Kind: api.KindOfficialAccount, AppID: app.AppID, OpenID: f.OpenID, UnionID: f.UnionID})
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == api.CodeWechatNotBound:
			res.BindToken = ae.Data[identity.DataBindToken]
		case err != nil:
			return res, err
		default:
			res.Login = &login
		}
		res.Scene = scene
		if a.OALoginReply != "" {
			res.LoginReply = a.reply(app, msg)
		}
	}
	subject, typ, push := oaEvent(msg, app, res.Scene != "")
	if err := a.Store.WriteOAEvent(ctx, subject, typ, push); err != nil {
		return res, a.storeError(ctx, err)
	}
	a.Events.Notify()
	return res, nil
}

// oaEvent is the event of a push.
func oaEvent(msg oapush.Message, app apps.App, login bool) (subject, typ string, push identity.OAPush) {
	push = identity.OAPush{AppID: app.AppID, OpenID: msg.FromUserName, ToUserName: msg.ToUserName, CreateTime: msg.CreateTime,
		MsgType: msg.MsgType, Event: msg.Event, EventKey: msg.EventKey, Content: msg.Content, MsgID: msg.MsgID, Login: login}
	if scene := msg.Scene(); scene != "" {
		if ticket, _, ours := session.ParseOAScene(scene); ours {
			// The scene's secret is what completes its ticket: it goes to
			// WeChat and back, never into an event. The ticket stays, for
			// the bot to tell which code was scanned.
			push.EventKey = strings.TrimSuffix(msg.EventKey, scene) + session.OAScenePrefix + ticket
		}
	}
	switch {
	case msg.MsgType != oapush.MsgTypeEvent:
		return identity.SubjectOAMessage, identity.EventOAMessage, push
	case strings.EqualFold(msg.Event, oapush.EventSubscribe):
		return identity.SubjectOASubscribed, identity.EventOASubscribed, push
	case strings.EqualFold(msg.Event, oapush.EventUnsubscribe):
		return identity.SubjectOAUnsubscribed, identity.EventOAUnsubscribed, push
	case strings.EqualFold(msg.Event, oapush.EventScan):
		return identity.SubjectOAScanned, identity.EventOAScanned, push
	}
	return identity.SubjectOAMessage, identity.EventOAMessage, push
}

// reply is the text message thanking the user (WXLOGIN_OA_LOGIN_REPLY),
// sealed in safe mode.
func (a *API) reply(app apps.App, msg oapush.Message) string {
	now := a.Now().Unix()
	text := oapush.TextReply(msg, a.OALoginReply, now)
	if app.EncodingAESKey == "" {
		return string(text)
	}
	c, err := oapush.NewCipher(app.EncodingAESKey, app.AppID)
	if err != nil {
		return replySuccess
	}
	var random [16]byte
	_, _ = rand.Read(random[:])
	return string(c.Envelope(app.Token, random, text, strconv.FormatInt(now, 10), rand.Text()[:16]))
}
