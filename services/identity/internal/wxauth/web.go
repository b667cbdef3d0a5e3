package wxauth

import (
	"context"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

// WebUser is an OAuth login (website, official account, mobile app): the
// identity and whatever profile WeChat shared. Profile holds only the fields
// WeChat filled in, so empty answers never overwrite what the user has.
type WebUser struct {
	OpenID  string
	UnionID string
	Profile *identity.Profile
}

// WebLogin exchanges an OAuth login code (sns/oauth2/access_token) of a
// website QR login, an official account's web authorization or a mobile
// app, and with withProfile fetches the profile (sns/userinfo; an
// official account's snsapi_base allows none). The profile is a courtesy:
// when userinfo fails the login still succeeds, without it. A snapshot-page
// user (a virtual openid) is api.CodeSnapshotUser: never an account.
func (e *Exchanger) WebLogin(ctx context.Context, app apps.App, code string, withProfile bool) (WebUser, error) {
	if code == "" {
		return WebUser{}, api.Errorf(api.CodeCodeMissing, "code is required")
	}
	tok, err := e.wc.OAuthAccessToken(ctx, app.AppID, app.Secret, code)
	if err != nil {
		return WebUser{}, e.translate(ctx, app, callOAuthToken, err)
	}
	if tok.SnapshotUser {
		e.log.Info("wechat snapshot-page user refused", "appid", app.AppID, "request_id", natsrpc.RequestID(ctx))
		return WebUser{}, api.Errorf(api.CodeSnapshotUser,
			"this page was opened as a WeChat snapshot page: tap 使用完整服务 (use the full service) and log in again")
	}
	u := WebUser{OpenID: tok.OpenID, UnionID: tok.UnionID}
	if !withProfile {
		return u, nil
	}
	info, err := e.wc.UserInfo(ctx, tok.AccessToken, tok.OpenID)
	if err != nil {
		e.log.Warn("wechat userinfo failed; logging in without the profile", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx), "errcode", wechat.ErrCode(err))
		return u, nil
	}
	if u.UnionID == "" {
		u.UnionID = info.UnionID
	}
	u.Profile = webProfile(info)
	return u, nil
}

// webProfile maps sns/userinfo to a profile. Since 2021 WeChat answers sex
// 0 and empty regions for everybody: an unknown sex is no news either.
func webProfile(info wechat.UserInfo) *identity.Profile {
	p := &identity.Profile{}
	set := func(dst **string, v string) {
		if v != "" {
			*dst = &v
		}
	}
	set(&p.Nickname, info.Nickname)
	set(&p.AvatarURL, info.HeadImgURL)
	set(&p.Province, info.Province)
	set(&p.City, info.City)
	set(&p.Country, info.Country)
	if info.Sex == 1 || info.Sex == 2 {
		sex := info.Sex
		p.Gender = &sex
	}
	return p
}
