package identitysvc_test

import (
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// withOAAndApp configures the fake's official account and mobile app.
func withOAAndApp(c *identitysvc.Config) {
	c.OAAppID, c.OASecret, c.OAToken = fakewechat.DevOAAppID, fakewechat.DevOASecret, fakewechat.DevOAToken
	c.AppAppID, c.AppSecret = fakewechat.DevAppAppID, fakewechat.DevAppSecret
}

// TestOAResolve: snsapi_userinfo fetches the profile, snsapi_base does not
// call sns/userinfo at all; a snapshot-page user is refused with
// snapshot_user and stores nothing; a mobile app's code logs in as kind
// app; one unionid is one user across them and the mini-program.
func TestOAResolve(t *testing.T) {
	s := start(t, withOAAndApp)
	oaCode := func(u fakewechat.User, scope string, snapshot bool) string {
		code, _, err := s.fake.MintOACode(fakewechat.DevOAAppID, u, scope, snapshot)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	res, err := s.client.OAResolve(ctx5s(t), identity.OAResolveRequest{Scope: session.ScopeUserInfo,
		Code: oaCode(fakewechat.User{UnionID: "u_oa_1", Nickname: "公众号用户"}, session.ScopeUserInfo, false)})
	if err != nil || res.Kind != api.KindOfficialAccount || res.AppID != fakewechat.DevOAAppID || res.User.Nickname != "公众号用户" || !res.IsNewUser {
		t.Fatalf("userinfo login = %+v, %v", res, err)
	}

	before := s.calls.count(fakewechat.PathUserInfo)
	base, err := s.client.OAResolve(ctx5s(t), identity.OAResolveRequest{Scope: session.ScopeBase,
		Code: oaCode(fakewechat.User{UnionID: "u_oa_1"}, session.ScopeBase, false)})
	if err != nil || base.User.ID != res.User.ID || base.IsNewUser {
		t.Fatalf("base login = %+v, %v; want user %s", base, err, res.User.ID)
	}
	if after := s.calls.count(fakewechat.PathUserInfo); after != before {
		t.Errorf("snsapi_base called sns/userinfo (%d -> %d)", before, after)
	}

	var identities int
	count := func() int {
		if err := s.db.Get(&identities, `SELECT count(*) FROM identities`); err != nil {
			t.Fatal(err)
		}
		return identities
	}
	n := count()
	_, err = s.client.OAResolve(ctx5s(t), identity.OAResolveRequest{Scope: session.ScopeUserInfo,
		Code: oaCode(fakewechat.User{UnionID: "u_oa_1"}, session.ScopeUserInfo, true)})
	wantCode(t, err, api.CodeSnapshotUser)
	if count() != n {
		t.Errorf("a snapshot user changed the identities")
	}

	code, _, err := s.fake.MintCode(fakewechat.DevAppAppID, fakewechat.User{UnionID: "u_oa_1", Nickname: "App"})
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.client.AppLogin(ctx5s(t), identity.AppLoginRequest{Code: code})
	if err != nil || app.Kind != api.KindApp || app.AppID != fakewechat.DevAppAppID || app.User.ID != res.User.ID {
		t.Fatalf("app login = %+v, %v; want user %s", app, err, res.User.ID)
	}
	_, err = s.client.AppLogin(ctx5s(t), identity.AppLoginRequest{Code: code})
	wantCode(t, err, api.CodeWechatCodeUsed)
	mp := s.mpLogin(t, fakewechat.User{UnionID: "u_oa_1"}, nil)
	if mp.User.ID != res.User.ID {
		t.Errorf("mini-program user %s, want %s", mp.User.ID, res.User.ID)
	}
	u, err := s.client.GetUser(ctx5s(t), res.User.ID)
	kinds := map[string]bool{}
	for _, i := range u.Identities {
		kinds[i.Kind] = true
	}
	if err != nil || len(u.Identities) != 3 || !kinds[api.KindOfficialAccount] || !kinds[api.KindApp] || !kinds[api.KindMiniProgram] {
		t.Errorf("identities %+v, %v", u.Identities, err)
	}

	for name, req := range map[string]identity.OAResolveRequest{
		"bad scope":       {Scope: "snsapi_login", Code: "x"},
		"a website's app": {App: identitysvc.AppWeb, Scope: session.ScopeBase, Code: "x"},
	} {
		_, err := s.client.OAResolve(ctx5s(t), req)
		if api.CodeOf(err) != api.CodeInvalidRequest {
			t.Errorf("%s: %v, want invalid_request", name, err)
		}
	}
	_, err = s.client.AppLogin(ctx5s(t), identity.AppLoginRequest{App: identitysvc.AppMiniProgram, Code: "x"})
	if api.CodeOf(err) != api.CodeInvalidRequest {
		t.Errorf("app login with a mini-program's name: %v", err)
	}
}
