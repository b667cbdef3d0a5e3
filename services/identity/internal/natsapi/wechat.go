package natsapi

import (
	"context"
	"errors"

	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// MiniProgramLogin exchanges a wx.login code and resolves it to a committed user.
func (a *API) MiniProgramLogin(ctx context.Context, req identity.MiniProgramLoginRequest) (identity.LoginResult, error) {
	app, err := a.lookupApp(req.App, api.KindMiniProgram)
	if err != nil {
		return identity.LoginResult{}, err
	}
	if err := checkProfile(req.Profile); err != nil {
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
	u, err := a.WeChat.WebLogin(ctx, app, req.Code)
	if err != nil {
		return identity.LoginResult{}, err
	}
	return a.loginWechat(ctx, store.WechatLogin{
		Kind: api.KindWeb, AppID: app.AppID, OpenID: u.OpenID, UnionID: u.UnionID, Profile: sanitizeProfile(u.Profile),
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
