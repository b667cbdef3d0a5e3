// Package wxauth exchanges WeChat login codes for identities, translating
// WeChat's errcodes into contract codes in one place.
package wxauth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

// Exchanger trades WeChat login codes for identities. Its errors are
// *api.Error with a short client-safe message; WeChat's own message text is
// never passed on.
type Exchanger struct {
	wc     *wechat.Client
	tokens *TokenCache
	log    *slog.Logger
}

// NewExchanger returns an Exchanger calling WeChat through wc, with server
// access tokens (for phone numbers) from tokens.
func NewExchanger(wc *wechat.Client, tokens *TokenCache, log *slog.Logger) *Exchanger {
	return &Exchanger{wc: wc, tokens: tokens, log: log}
}

// Names of the WeChat calls, in logs.
const (
	callCode2Session = "jscode2session"
	callOAuthToken   = "oauth2/access_token"
	callUserInfo     = "userinfo"
	callStableToken  = "stable_token"
	callPhone        = "getuserphonenumber"
)

// Code2Session exchanges a mini-program wx.login code. The returned
// session's SessionKey is a secret: store it, never log or return it.
func (e *Exchanger) Code2Session(ctx context.Context, app apps.App, code string) (wechat.Session, error) {
	if code == "" {
		return wechat.Session{}, api.Errorf(api.CodeCodeMissing, "code is required")
	}
	s, err := e.wc.Code2Session(ctx, app.AppID, app.Secret, code)
	if err != nil {
		return wechat.Session{}, e.translate(ctx, app, callCode2Session, err)
	}
	return s, nil
}

// translate maps a WeChat failure to its contract code, logging what an
// operator needs (errcode, appid, request id; never the code or secret).
func (e *Exchanger) translate(ctx context.Context, app apps.App, call string, err error) error {
	rid := natsrpc.RequestID(ctx)
	var we *wechat.Error
	if !errors.As(err, &we) {
		// Transport failures: wechat.ErrUnavailable, or our own deadline.
		e.log.Warn("wechat unreachable", "call", call, "appid", app.AppID, "request_id", rid, "error", err)
		return api.Errorf(api.CodeWechatUnavailable, "WeChat is unavailable; try again shortly")
	}
	what := "login code"
	if call == callPhone {
		what = "phone number code"
	}
	switch we.Code {
	case wechat.ErrCodeInvalidCode:
		return api.Errorf(api.CodeWechatCodeInvalid, "the WeChat %s is invalid or expired", what)
	case wechat.ErrCodeCodeUsed:
		return api.Errorf(api.CodeWechatCodeUsed, "the WeChat %s has already been used", what)
	case wechat.ErrCodeMinuteQuota:
		e.log.Warn("wechat rate limit", "call", call, "appid", app.AppID, "request_id", rid, "errcode", we.Code)
		return api.Errorf(api.CodeWechatRateLimited, "too many WeChat logins; try again in a minute")
	case wechat.ErrCodeBusy:
		e.log.Warn("wechat busy", "call", call, "appid", app.AppID, "request_id", rid, "errcode", we.Code)
		return api.Errorf(api.CodeWechatUnavailable, "WeChat is busy; try again shortly")
	case wechat.ErrCodeInvalidCredential, wechat.ErrCodeInvalidAppID, wechat.ErrCodeInvalidAppSecret:
		// Our configuration is wrong, not the user's request.
		e.log.Error("wechat rejected the app credentials; check the app's appid and secret",
			"call", call, "appid", app.AppID, "request_id", rid, "errcode", we.Code)
		return api.Errorf(api.CodeWechatError, "WeChat refused the request")
	default:
		e.log.Warn("wechat error", "call", call, "appid", app.AppID, "request_id", rid, "errcode", we.Code)
		return api.Errorf(api.CodeWechatError, "WeChat refused the request")
	}
}
