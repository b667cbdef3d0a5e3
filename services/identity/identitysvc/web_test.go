package identitysvc_test

import (
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func TestWebResolve(t *testing.T) {
	s := start(t, nil)
	code := s.webCode(t, fakewechat.User{Nickname: "网站用户", HeadImgURL: "https://thirdwx.qlogo.cn/mmopen/w.png",
		Sex: 2, Province: "Guangdong", City: "Shenzhen", Country: "CN"})
	res, err := s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	u := res.User
	if !res.IsNewUser || res.Kind != api.KindWeb || res.AppID != fakewechat.DevWebAppID || !strings.HasPrefix(u.Username, "wx_") {
		t.Errorf("result = %+v", res)
	}
	if u.Nickname != "网站用户" || u.AvatarURL != "https://thirdwx.qlogo.cn/mmopen/w.png" || u.Gender != 2 ||
		u.Province != "Guangdong" || u.City != "Shenzhen" || u.Country != "CN" {
		t.Errorf("profile not mapped from userinfo: %+v", u)
	}
	var sessionKey *string
	if err := s.db.Get(&sessionKey, `SELECT session_key FROM identities WHERE user_id = $1 AND kind = 'web'`, u.ID); err != nil || sessionKey != nil {
		t.Errorf("web identity session_key = %v, %v; want NULL", sessionKey, err)
	}
	if got := s.events(t, identity.EventUserCreated, u.ID); len(got) != 1 || got[0].Identity == nil || got[0].Identity.Kind != api.KindWeb {
		t.Errorf("user.created events = %+v", got)
	}
	if got := s.events(t, identity.EventUserLoggedIn, u.ID); len(got) != 1 || got[0].Kind != api.KindWeb {
		t.Errorf("user.logged_in events = %+v", got)
	}

	// The same code again is WeChat's 40163.
	_, err = s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{Code: code})
	wantCode(t, err, api.CodeWechatCodeUsed)

	for _, tc := range []struct {
		name    string
		req     identity.WebResolveRequest
		errcode int
		want    api.Code
	}{
		{"no code", identity.WebResolveRequest{}, 0, api.CodeCodeMissing},
		{"unknown code", identity.WebResolveRequest{Code: "nope"}, 0, api.CodeWechatCodeInvalid},
		{"mini-program app", identity.WebResolveRequest{App: identitysvc.AppMiniProgram, Code: "x"}, 0, api.CodeInvalidRequest},
		{"unknown app", identity.WebResolveRequest{App: "nope", Code: "x"}, 0, api.CodeInvalidRequest},
		{"quota", identity.WebResolveRequest{Code: "x"}, 45011, api.CodeWechatRateLimited},
		{"busy", identity.WebResolveRequest{Code: "x"}, -1, api.CodeWechatUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.errcode != 0 {
				s.fake.FailNext(fakewechat.PathOAuthAccessToken, tc.errcode, 1)
			}
			_, err := s.client.WebResolve(ctx5s(t), tc.req)
			wantCode(t, err, tc.want)
		})
	}

	// The app may be named by its appid (a QR record may carry only that).
	res, err = s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{App: fakewechat.DevWebAppID, Code: s.webCode(t, fakewechat.User{})})
	if err != nil || res.AppID != fakewechat.DevWebAppID {
		t.Errorf("resolve by appid = %+v, %v", res, err)
	}
	_, err = s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{App: fakewechat.DevMiniProgramAppID, Code: "x"})
	wantCode(t, err, api.CodeInvalidRequest)

	// userinfo failing costs the profile, not the login.
	s.fake.FailNext(fakewechat.PathUserInfo, -1, 1)
	res, err = s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{Code: s.webCode(t, fakewechat.User{Nickname: "n"})})
	if err != nil || !res.IsNewUser || res.User.Nickname != "" {
		t.Errorf("login with userinfo down = %+v, %v", res, err)
	}
}

// A person's mini-program and website openids share a unionid: one user,
// whichever logs in first.
func TestWebResolveLinksByUnionID(t *testing.T) {
	s := start(t, nil)
	t.Run("mini-program first", func(t *testing.T) {
		mp := s.mpLogin(t, fakewechat.User{UnionID: "union-mp-first"}, &identity.Profile{
			Nickname: ptr("小程序名"), City: ptr("Guangzhou"), Gender: ptr(1)})
		// WeChat says nothing about city or sex here: the stored ones stay.
		web, err := s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{
			Code: s.webCode(t, fakewechat.User{UnionID: "union-mp-first", Nickname: "网站名"})})
		if err != nil {
			t.Fatal(err)
		}
		if web.User.ID != mp.User.ID || web.IsNewUser {
			t.Fatalf("web login = user %s (new %v), want %s", web.User.ID, web.IsNewUser, mp.User.ID)
		}
		if web.User.Nickname != "网站名" || web.User.City != "Guangzhou" || web.User.Gender != 1 {
			t.Errorf("profile = %+v: empty WeChat fields overwrote stored ones", web.User)
		}
		checkTwoIdentities(t, s, mp.User.ID)
	})
	t.Run("website first", func(t *testing.T) {
		web, err := s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{
			Code: s.webCode(t, fakewechat.User{UnionID: "union-web-first", Nickname: "W"})})
		if err != nil || !web.IsNewUser {
			t.Fatalf("web login = %+v, %v", web, err)
		}
		mp := s.mpLogin(t, fakewechat.User{UnionID: "union-web-first"}, nil)
		if mp.User.ID != web.User.ID || mp.IsNewUser {
			t.Fatalf("mini-program login = user %s (new %v), want %s", mp.User.ID, mp.IsNewUser, web.User.ID)
		}
		checkTwoIdentities(t, s, web.User.ID)
	})
}

func checkTwoIdentities(t *testing.T, s *service, userID string) {
	t.Helper()
	u, err := s.client.GetUser(ctx5s(t), userID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, i := range u.Identities {
		kinds[i.Kind] = i.AppID
	}
	if len(u.Identities) != 2 || kinds[api.KindMiniProgram] != fakewechat.DevMiniProgramAppID || kinds[api.KindWeb] != fakewechat.DevWebAppID {
		t.Errorf("identities = %+v, want one mini-program and one web", u.Identities)
	}
	var users int
	if err := s.db.Get(&users, `SELECT count(*) FROM users WHERE unionid = (SELECT unionid FROM users WHERE id = $1)`, userID); err != nil || users != 1 {
		t.Errorf("users with the unionid = %d, %v", users, err)
	}
	if got := s.events(t, identity.EventUserCreated, userID); len(got) != 1 {
		t.Errorf("%d user.created events, want 1", len(got))
	}
}

// With WXLOGIN_AUTO_REGISTER=false an unknown WeChat user gets a bind token
// and no account; registering with it makes the account their WeChat
// logins reach.
func TestAutoRegisterOff(t *testing.T) {
	s := start(t, func(c *identitysvc.Config) { c.AutoRegister = false })

	code, wxUser := s.mpCode(t, fakewechat.User{})
	_, err := s.client.MiniProgramLogin(ctx5s(t), identity.MiniProgramLoginRequest{Code: code, Profile: &identity.Profile{Nickname: ptr("小绑")}})
	ae := wantCode(t, err, api.CodeWechatNotBound)
	token := ae.Data[identity.DataBindToken]
	if len(token) != 43 {
		t.Fatalf("bind_token %q: want 32 bytes of base64url", token)
	}
	var users int
	if err := s.db.Get(&users, `SELECT count(*) FROM users`); err != nil || users != 0 {
		t.Fatalf("users = %d, %v: an unbound login created one", users, err)
	}
	if strings.Contains(s.logs.String(), token) {
		t.Error("the bind token is in the logs")
	}

	reg, err := s.client.Register(ctx5s(t), identity.RegisterRequest{Username: "Bound.User", Password: "s3cret-pass",
		WeChatProof: identity.WeChatProof{BindToken: token}})
	if err != nil {
		t.Fatal(err)
	}
	if reg.User.Username != "bound.user" || !reg.IsNewUser || reg.Kind != api.KindPassword || reg.User.Nickname != "小绑" {
		t.Errorf("register = %+v", reg)
	}
	for _, typ := range []string{identity.EventUserCreated, identity.EventUserBound} {
		if got := s.events(t, typ, reg.User.ID); len(got) != 1 || got[0].Identity == nil || got[0].Identity.OpenID != wxUser.OpenID {
			t.Errorf("%s events = %+v", typ, got)
		}
	}
	var sessionKey string
	if err := s.db.Get(&sessionKey, `SELECT session_key FROM identities WHERE user_id = $1`, reg.User.ID); err != nil || sessionKey == "" {
		t.Errorf("session_key from the bind token not stored: %q, %v", sessionKey, err)
	}

	// The token is spent.
	_, err = s.client.Register(ctx5s(t), identity.RegisterRequest{Username: "second", Password: "s3cret-pass",
		WeChatProof: identity.WeChatProof{BindToken: token}})
	wantCode(t, err, api.CodeInvalidRequest)
	_, err = s.client.Bind(ctx5s(t), identity.BindRequest{Username: "bound.user", Password: "s3cret-pass",
		WeChatProof: identity.WeChatProof{BindToken: token}})
	wantCode(t, err, api.CodeInvalidRequest)

	// The next WeChat login reaches the account.
	again := s.mpLogin(t, fakewechat.User{OpenID: wxUser.OpenID}, nil)
	if again.User.ID != reg.User.ID || again.IsNewUser {
		t.Errorf("login after register = %+v, want user %s", again, reg.User.ID)
	}

	// A website login of an unknown person is refused the same way; one of a
	// person known by unionid is linked.
	// The answer says whose WeChat it is, so the person binding it can tell
	// a stranger's (a forged callback) from their own.
	_, err = s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{Code: s.webCode(t,
		fakewechat.User{Nickname: "陌生人", HeadImgURL: "https://thirdwx.qlogo.cn/mmopen/stranger/132"})})
	nb := wantCode(t, err, api.CodeWechatNotBound)
	if nb.Data[identity.DataNickname] != "陌生人" || nb.Data[identity.DataAvatarURL] != "https://thirdwx.qlogo.cn/mmopen/stranger/132" {
		t.Errorf("not_bound data %v: want the WeChat nickname and avatar", nb.Data)
	}

	code, _ = s.mpCode(t, fakewechat.User{UnionID: "union-off"})
	_, err = s.client.MiniProgramLogin(ctx5s(t), identity.MiniProgramLoginRequest{Code: code})
	token = wantCode(t, err, api.CodeWechatNotBound).Data[identity.DataBindToken]
	withUnion, err := s.client.Register(ctx5s(t), identity.RegisterRequest{Username: "union-user", Password: "s3cret-pass",
		WeChatProof: identity.WeChatProof{BindToken: token}})
	if err != nil {
		t.Fatal(err)
	}
	web, err := s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{Code: s.webCode(t, fakewechat.User{UnionID: "union-off"})})
	if err != nil || web.User.ID != withUnion.User.ID || web.IsNewUser {
		t.Errorf("website login of a known unionid = %+v, %v; want user %s", web, err, withUnion.User.ID)
	}
}
