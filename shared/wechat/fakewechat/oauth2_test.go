package fakewechat_test

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

const (
	oaID, oaSecret   = fakewechat.DevOAAppID, fakewechat.DevOASecret
	appID, appSecret = fakewechat.DevAppAppID, fakewechat.DevAppSecret
	// oaCallback is on the web-authorization domain of newOAEnv's account.
	oaCallback = "https://h5.shop.example/api/v1/auth/oa/callback"
)

var hiddenQuery = regexp.MustCompile(`name="query" value="([^"]*)"`)

// newOAEnv is a fake whose official account's web-authorization domain is
// h5.shop.example.
func newOAEnv(t *testing.T) *env {
	t.Helper()
	fake := fakewechat.New(fakewechat.Options{Apps: []fakewechat.App{
		{AppID: webID, Secret: webSecret, Kind: "web"},
		{AppID: oaID, Secret: oaSecret, Kind: "officialaccount", Domain: "h5.shop.example"},
		{AppID: appID, Secret: appSecret, Kind: "app"},
	}})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &env{fake: fake, srv: srv, client: wechat.New(wechat.Options{APIBase: srv.URL, OpenBase: srv.URL})}
}

func (e *env) authorizeURL(appid, redirect, scope, state string) string {
	return e.client.OAuth2AuthorizeURL(appid, redirect, scope, state)
}

// answerPage shows the authorization page and submits it with action.
func answerPage(t *testing.T, e *env, authorizeURL, action string, form url.Values) page {
	t.Helper()
	p := getPage(t, strings.TrimSuffix(authorizeURL, "#wechat_redirect"))
	m := hiddenQuery.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("authorization page: %d %s", p.status, p.body)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("query", html.UnescapeString(m[1]))
	form.Set("action", action)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+fakewechat.PathOAuth2Confirm, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return fetch(t, req)
}

func location(t *testing.T, p page) *url.URL {
	t.Helper()
	if p.status != http.StatusFound {
		t.Fatalf("answer: %d %s, want 302", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestOAuth2AuthorizeChecks: the page refuses what WeChat refuses, with
// WeChat's messages: not an official account, a redirect_uri off the
// web-authorization domain (a subdomain or a look-alike too), a bad scope
// or state.
func TestOAuth2AuthorizeChecks(t *testing.T) {
	e := newOAEnv(t)
	for name, tc := range map[string]struct {
		appid, redirect, scope, state, says string
	}{
		"unknown appid":      {"wxnope", oaCallback, "snsapi_userinfo", "s1", "appid 参数错误"},
		"website appid":      {webID, oaCallback, "snsapi_userinfo", "s1", "appid 参数错误"},
		"other domain":       {oaID, "https://evil.example/cb", "snsapi_userinfo", "s1", "redirect_uri 域名与后台配置不一致"},
		"look-alike domain":  {oaID, "https://h5.shop.example.evil/cb", "snsapi_base", "s1", "redirect_uri 域名与后台配置不一致"},
		"subdomain":          {oaID, "https://x.h5.shop.example/cb", "snsapi_base", "s1", "redirect_uri 域名与后台配置不一致"},
		"login scope":        {oaID, oaCallback, "snsapi_login", "s1", "scope 参数错误"},
		"state not alphanum": {oaID, oaCallback, "snsapi_userinfo", "a-b", "state 参数错误"},
		"state too long":     {oaID, oaCallback, "snsapi_userinfo", strings.Repeat("a", 129), "state 参数错误"},
		"relative redirect":  {oaID, "/cb", "snsapi_userinfo", "s1", "redirect_uri 参数错误"},
	} {
		t.Run(name, func(t *testing.T) {
			p := getPage(t, strings.TrimSuffix(e.authorizeURL(tc.appid, tc.redirect, tc.scope, tc.state), "#wechat_redirect"))
			if p.status != http.StatusOK || !strings.Contains(p.body, tc.says) || !strings.Contains(p.body, `id="error"`) || strings.Contains(p.body, `name="query"`) {
				t.Errorf("%d, want WeChat's error page saying %q:\n%s", p.status, tc.says, p.body)
			}
			if _, err := e.fake.AuthorizeInWeChat(e.authorizeURL(tc.appid, tc.redirect, tc.scope, tc.state), fakewechat.User{}, fakewechat.OAuth2Allow); err == nil {
				t.Error("AuthorizeInWeChat accepted it")
			}
		})
	}
}

// TestOAuth2UserInfo: the confirm page of snsapi_userinfo offers allow,
// deny and a snapshot page; allow sends the browser to redirect_uri with a
// single-use code whose exchange gives openid, unionid and the profile.
func TestOAuth2UserInfo(t *testing.T) {
	e := newOAEnv(t)
	ctx := context.Background()
	auth := e.authorizeURL(oaID, oaCallback+"?from=menu", "snsapi_userinfo", "site123")
	p := getPage(t, strings.TrimSuffix(auth, "#wechat_redirect"))
	for _, want := range []string{`id="allow"`, `id="deny"`, `id="snapshot"`, "h5.shop.example", "你的昵称、头像"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	back := location(t, answerPage(t, e, auth, fakewechat.OAuth2Allow, url.Values{"nickname": {"Olivia"}, "unionid": {"u_olivia"}}))
	q := back.Query()
	if back.Host != "h5.shop.example" || back.Path != "/api/v1/auth/oa/callback" || q.Get("from") != "menu" || q.Get("state") != "site123" || q.Get("code") == "" {
		t.Fatalf("redirect %s", back)
	}
	tok, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, q.Get("code"))
	if err != nil || tok.OpenID == "" || tok.UnionID != "u_olivia" || tok.Scope != "snsapi_userinfo" || tok.SnapshotUser {
		t.Fatalf("exchange: %+v %v", tok, err)
	}
	info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
	if err != nil || info.Nickname != "Olivia" || info.UnionID != "u_olivia" {
		t.Errorf("userinfo: %+v %v", info, err)
	}
	if _, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, q.Get("code")); wechat.ErrCode(err) != wechat.ErrCodeCodeUsed {
		t.Errorf("second exchange: %v, want 40163", err)
	}

	// The same person again: the same openid.
	again := location(t, answerPage(t, e, auth, fakewechat.OAuth2Allow, url.Values{"unionid": {"u_olivia"}}))
	tok2, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, again.Query().Get("code"))
	if err != nil || tok2.OpenID != tok.OpenID {
		t.Errorf("second login: %+v %v, want openid %s", tok2, err, tok.OpenID)
	}
	// An official account's code is not another app's.
	third := location(t, answerPage(t, e, auth, fakewechat.OAuth2Allow, nil))
	if _, err := e.client.OAuthAccessToken(ctx, webID, webSecret, third.Query().Get("code")); wechat.ErrCode(err) != wechat.ErrCodeInvalidCode {
		t.Errorf("exchanged with the website's appid: %v, want 40029", err)
	}

	deny := location(t, answerPage(t, e, auth, fakewechat.OAuth2Deny, nil))
	if deny.Query().Has("code") || deny.Query().Get("state") != "site123" {
		t.Errorf("deny redirect %s, want the state and no code", deny)
	}
}

// TestOAuth2Base: snsapi_base is one "continue" (no deny); its code gives the
// openid without a unionid, and its token no profile (48001).
func TestOAuth2Base(t *testing.T) {
	e := newOAEnv(t)
	ctx := context.Background()
	auth := e.authorizeURL(oaID, oaCallback, "snsapi_base", "")
	p := getPage(t, strings.TrimSuffix(auth, "#wechat_redirect"))
	if !strings.Contains(p.body, "snsapi_base") || strings.Contains(p.body, `id="deny"`) {
		t.Errorf("base page:\n%s", p.body)
	}
	back := location(t, answerPage(t, e, auth, fakewechat.OAuth2Allow, url.Values{"unionid": {"u_bob"}}))
	tok, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, back.Query().Get("code"))
	if err != nil || tok.OpenID == "" || tok.UnionID != "" || tok.Scope != "snsapi_base" {
		t.Fatalf("exchange: %+v %v", tok, err)
	}
	if _, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID); wechat.ErrCode(err) != 48001 {
		t.Errorf("userinfo with snsapi_base: %v, want 48001", err)
	}
}

// TestOAuth2Snapshot: a snapshot page's code answers is_snapshotuser 1 with a
// virtual openid, not the person's, and no unionid.
func TestOAuth2Snapshot(t *testing.T) {
	e := newOAEnv(t)
	ctx := context.Background()
	auth := e.authorizeURL(oaID, oaCallback, "snsapi_userinfo", "s")
	real := location(t, answerPage(t, e, auth, fakewechat.OAuth2Allow, url.Values{"unionid": {"u_snap"}}))
	tok, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, real.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	snap := location(t, answerPage(t, e, auth, fakewechat.OAuth2Snapshot, url.Values{"unionid": {"u_snap"}}))
	st, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, snap.Query().Get("code"))
	if err != nil || !st.SnapshotUser || st.OpenID == tok.OpenID || st.UnionID != "" {
		t.Fatalf("snapshot exchange: %+v %v (the person's openid %s)", st, err, tok.OpenID)
	}
	if _, err := e.client.UserInfo(ctx, st.AccessToken, st.OpenID); err == nil {
		t.Error("userinfo answered for a snapshot user")
	}
	// The Go helper does the same.
	to, err := e.fake.AuthorizeInWeChat(auth, fakewechat.User{UnionID: "u_snap"}, fakewechat.OAuth2Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := url.Parse(to)
	if st, err := e.client.OAuthAccessToken(ctx, oaID, oaSecret, back.Query().Get("code")); err != nil || !st.SnapshotUser {
		t.Errorf("AuthorizeInWeChat snapshot: %+v %v", st, err)
	}
}

// TestMobileAppCodes: a mobile app's code (the SDK's SendAuth) is exchanged
// like a website's, with the app's own appid and secret, once.
func TestMobileAppCodes(t *testing.T) {
	e := newOAEnv(t)
	ctx := context.Background()
	code, u, err := e.fake.MintCode(appID, fakewechat.User{UnionID: "u_app", Nickname: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.client.OAuthAccessToken(ctx, appID, appSecret, code)
	if err != nil || tok.OpenID != u.OpenID || tok.UnionID != "u_app" || tok.Scope != "snsapi_userinfo" {
		t.Fatalf("exchange: %+v %v", tok, err)
	}
	if info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID); err != nil || info.Nickname != "Ann" {
		t.Errorf("userinfo: %+v %v", info, err)
	}
	if _, err := e.client.OAuthAccessToken(ctx, appID, appSecret, code); wechat.ErrCode(err) != wechat.ErrCodeCodeUsed {
		t.Errorf("reuse: %v, want 40163", err)
	}
	if _, _, err := e.fake.MintOACode(appID, fakewechat.User{}, "snsapi_base", false); !errors.Is(err, fakewechat.ErrWrongKind) {
		t.Errorf("MintOACode for a mobile app: %v, want ErrWrongKind", err)
	}
}
