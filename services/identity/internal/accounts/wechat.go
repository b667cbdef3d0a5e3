package accounts

import (
	"context"
	"errors"

	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// MiniProgramLogin exchanges a wx.login code and resolves it to a committed user.
func (a *API) MiniProgramLogin(ctx context.Context, req identity.MiniProgramLoginRequest) (identity.LoginResult, error) {
	app, err := a.lookupApp(req.App, api.KindMiniProgram)
	if err != nil {
		return identity.LoginResult{}, err
	}
	if err := identity.CheckProfile(req.Profile); err != nil {
		return identity.LoginResult{}, err
	}
	sess, err := a.WeChat.Code2Session(ctx, app, req.Code)
	if err != nil {
		return identity.LoginResult{}, err
	}
	return a.loginWechat(ctx, store.WechatLogin{
		Kind: api.KindMiniProgram, AppID: app.AppID, OpenID: sess.OpenID, UnionID: sess.UnionID,
		SessionKey: sess.SessionKey, Profile: req.Profile,
	})
}

// WebResolve exchanges a website QR login code and resolves it to a
// committed user, exactly like a mini-program login: a unionid already
// known from another app is the same user.
func (a *API) WebResolve(ctx context.Context, req identity.WebResolveRequest) (identity.LoginResult, error) {
	app, err := a.lookupApp(req.App, api.KindWeb)
	if err != nil {
		return identity.LoginResult{}, err
	}
	return a.oauthLogin(ctx, app, req.Code, true)
}

// OAResolve exchanges an official account's web-authorization code (the
// in-WeChat browser): with snsapi_userinfo the profile too, with
// snsapi_base the openid only. A snapshot-page user touches no account.
func (a *API) OAResolve(ctx context.Context, req identity.OAResolveRequest) (identity.LoginResult, error) {
	app, err := a.lookupApp(req.App, api.KindOfficialAccount)
	if err != nil {
		return identity.LoginResult{}, err
	}
	if req.Scope != session.ScopeUserInfo && req.Scope != session.ScopeBase {
		return identity.LoginResult{}, api.Errorf(api.CodeInvalidRequest, "scope must be %s or %s", session.ScopeUserInfo, session.ScopeBase)
	}
	return a.oauthLogin(ctx, app, req.Code, req.Scope == session.ScopeUserInfo)
}

// AppLogin exchanges a native mobile app's WeChat SDK code, exactly like a
// website login but with the app's own appid and secret.
func (a *API) AppLogin(ctx context.Context, req identity.AppLoginRequest) (identity.LoginResult, error) {
	app, err := a.lookupApp(req.App, api.KindApp)
	if err != nil {
		return identity.LoginResult{}, err
	}
	return a.oauthLogin(ctx, app, req.Code, true)
}

// oauthLogin is a login by sns/oauth2 code of app (website, official
// account, mobile app): the identity's kind is the app's.
func (a *API) oauthLogin(ctx context.Context, app apps.App, code string, withProfile bool) (identity.LoginResult, error) {
	u, err := a.WeChat.WebLogin(ctx, app, code, withProfile)
	if err != nil {
		return identity.LoginResult{}, err
	}
	return a.loginWechat(ctx, store.WechatLogin{
		Kind: app.Kind, AppID: app.AppID, OpenID: u.OpenID, UnionID: u.UnionID, Profile: identity.SanitizeProfile(u.Profile),
	})
}

// loginWechat records a WeChat login, or answers wechat_not_bound with a
// bind token when accounts are not created on the fly.
func (a *API) loginWechat(ctx context.Context, in store.WechatLogin) (identity.LoginResult, error) {
	in.NoCreate = !a.AutoRegister
	res, err := a.Store.LoginWechat(ctx, in)
	if errors.Is(err, store.ErrNotBound) {
		return identity.LoginResult{}, a.notBound(ctx, in)
	}
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	if res.Outbox {
		a.Events.Notify()
	}
	for _, ev := range res.Publish {
		a.Direct.Publish(ev.ID, ev.Subject, ev.Payload)
		if ev.Subject == identity.SubjectUserLoggedIn && a.Logins != nil {
			a.Logins.Add(in.Kind)
		}
	}
	a.log.Debug("wechat login", "kind", in.Kind, "request_id", natsrpc.RequestID(ctx), "user_id", res.User.ID,
		"appid", in.AppID, "is_new_user", res.IsNewUser)
	return identity.LoginResult{User: res.User.Public(), IsNewUser: res.IsNewUser, Kind: in.Kind, AppID: in.AppID}, nil
}

// notBound parks the identity under a bind token and answers
// wechat_not_bound carrying it.
func (a *API) notBound(ctx context.Context, in store.WechatLogin) error {
	token, err := a.BindTokens.Issue(ctx, bindtoken.Identity{
		Kind: in.Kind, AppID: in.AppID, OpenID: in.OpenID, UnionID: in.UnionID, SessionKey: in.SessionKey, Profile: in.Profile,
	})
	if err != nil {
		return a.storeError(ctx, err)
	}
	a.log.Debug("wechat login without an account", "kind", in.Kind, "request_id", natsrpc.RequestID(ctx), "appid", in.AppID)
	data := map[string]string{identity.DataBindToken: token}
	// Whose WeChat it is: the person about to bind it to their account must
	// see that it is their own (a QR ticket's callback can be forged).
	if p := in.Profile; p != nil {
		if p.Nickname != nil && *p.Nickname != "" {
			data[identity.DataNickname] = *p.Nickname
		}
		if p.AvatarURL != nil && *p.AvatarURL != "" {
			data[identity.DataAvatarURL] = *p.AvatarURL
		}
	}
	return &api.Error{
		Code:    api.CodeWechatNotBound,
		Message: "this WeChat account has no account here yet: register or bind one with the bind_token",
		Data:    data,
	}
}
