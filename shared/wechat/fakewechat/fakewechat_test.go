package fakewechat_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// Apps of the tests: the two devstack apps plus a second mini-program, to
// show codes and tokens do not cross apps.
const (
	miniID, miniSecret   = fakewechat.DevMiniProgramAppID, fakewechat.DevMiniProgramSecret
	webID, webSecret     = fakewechat.DevWebAppID, fakewechat.DevWebSecret
	mini2ID, mini2Secret = "wx3333333333333333", "second-miniprogram-secret"
)

type env struct {
	fake   *fakewechat.Server
	srv    *httptest.Server
	client *wechat.Client
	logs   *logtest.Buffer
}

// newEnv serves a fake on a fixed clock, so expiry depends only on Advance.
func newEnv(t *testing.T) *env {
	t.Helper()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	logs := &logtest.Buffer{}
	fake := fakewechat.New(fakewechat.Options{
		Apps: append(fakewechat.DefaultApps(), fakewechat.App{AppID: mini2ID, Secret: mini2Secret, Kind: "miniprogram"}),
		Now:  func() time.Time { return t0 },
		// Debug, so the no-secrets-in-logs check sees every line the fake can write.
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &env{fake: fake, srv: srv, client: wechat.New(wechat.Options{APIBase: srv.URL, OpenBase: srv.URL}), logs: logs}
}

func (e *env) mint(t *testing.T, appid string, u fakewechat.User) (string, fakewechat.User) {
	t.Helper()
	code, user, err := e.fake.MintCode(appid, u)
	if err != nil {
		t.Fatalf("MintCode(%s): %v", appid, err)
	}
	return code, user
}

// rawGet calls the fake without the client, to see exactly what it sends.
func (e *env) rawGet(t *testing.T, path string, q url.Values) (*http.Response, map[string]any) {
	t.Helper()
	return e.raw(t, http.MethodGet, path+"?"+q.Encode(), "")
}

func (e *env) raw(t *testing.T, method, pathAndQuery, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+pathAndQuery, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, pathAndQuery, b, err)
		}
	}
	return resp, m
}

func wantErrCode(t *testing.T, err error, want int) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("err = %v, want success", err)
		}
		return
	}
	var we *wechat.Error
	if !errors.As(err, &we) {
		t.Fatalf("err = %v, want WeChat errcode %d", err, want)
	}
	if we.Code != want {
		t.Fatalf("errcode = %d (%s), want %d", we.Code, we.Msg, want)
	}
	if !strings.Contains(we.Msg, " rid: ") {
		t.Errorf("errmsg %q has no rid", we.Msg)
	}
}

func TestCode2Session(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup returns the appid, secret and code to exchange.
		setup       func(t *testing.T, e *env) (appid, secret, code string)
		wantErrCode int
	}{
		{"success", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return miniID, miniSecret, code
		}, 0},
		{"unknown appid", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return "wx0000000000000000", miniSecret, code
		}, 40013},
		{"unknown appid checked before the secret", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return "wx0000000000000000", "wrong", code
		}, 40013},
		{"wrong secret", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return miniID, "wrong", code
		}, 40125},
		{"another app's secret", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return miniID, mini2Secret, code
		}, 40125},
		{"missing appid", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return "", miniSecret, code
		}, 41002},
		{"missing secret", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			return miniID, "", code
		}, 41004},
		{"missing code", func(t *testing.T, e *env) (string, string, string) {
			return miniID, miniSecret, ""
		}, 41008},
		{"unknown code", func(t *testing.T, e *env) (string, string, string) {
			return miniID, miniSecret, "0a3XyzNotARealCode0000000000000"
		}, 40029},
		{"used twice", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			if _, err := e.client.Code2Session(ctx, miniID, miniSecret, code); err != nil {
				t.Fatalf("first exchange: %v", err)
			}
			return miniID, miniSecret, code
		}, 40163},
		{"valid until just before 5 minutes", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			e.fake.Advance(5*time.Minute - time.Second)
			return miniID, miniSecret, code
		}, 0},
		{"expired after 5 minutes", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			e.fake.Advance(5 * time.Minute)
			return miniID, miniSecret, code
		}, 40029},
		{"used and then expired", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, miniID, fakewechat.User{})
			if _, err := e.client.Code2Session(ctx, miniID, miniSecret, code); err != nil {
				t.Fatalf("first exchange: %v", err)
			}
			e.fake.Advance(6 * time.Minute)
			return miniID, miniSecret, code
		}, 40029},
		{"another mini-program's code", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, mini2ID, fakewechat.User{})
			return miniID, miniSecret, code
		}, 40029},
		{"a website code", func(t *testing.T, e *env) (string, string, string) {
			code, _ := e.mint(t, webID, fakewechat.User{})
			return webID, webSecret, code
		}, 40029},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			appid, secret, code := tt.setup(t, e)
			sess, err := e.client.Code2Session(ctx, appid, secret, code)
			wantErrCode(t, err, tt.wantErrCode)
			if err == nil && sess.OpenID == "" {
				t.Fatal("success without openid")
			}
		})
	}
}

func TestCode2SessionAnswer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)

	t.Run("new user without unionid", func(t *testing.T) {
		code, u := e.mint(t, miniID, fakewechat.User{})
		if len(u.OpenID) != 28 || u.OpenID[0] != 'o' {
			t.Errorf("openid %q is not 'o' + 27 characters", u.OpenID)
		}
		sess, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
		if err != nil {
			t.Fatal(err)
		}
		if sess.OpenID != u.OpenID || sess.UnionID != "" {
			t.Errorf("session = openid %q unionid %q, want openid %q and no unionid", sess.OpenID, sess.UnionID, u.OpenID)
		}
		key, err := base64.StdEncoding.DecodeString(sess.SessionKey)
		if err != nil || len(key) != 16 {
			t.Errorf("session_key is not base64 of 16 bytes (%d bytes, %v)", len(key), err)
		}
	})

	t.Run("unionid only when the user has one", func(t *testing.T) {
		code, _ := e.mint(t, miniID, fakewechat.User{})
		_, body := e.rawGet(t, "/sns/jscode2session", url.Values{"appid": {miniID}, "secret": {miniSecret},
			"js_code": {code}, "grant_type": {"authorization_code"}})
		if _, ok := body["unionid"]; ok {
			t.Errorf("answer %v has a unionid", body)
		}
		code, _ = e.mint(t, miniID, fakewechat.User{UnionID: "oUnion0000000000000000000001"})
		sess, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
		if err != nil {
			t.Fatal(err)
		}
		if sess.UnionID != "oUnion0000000000000000000001" {
			t.Errorf("unionid = %q", sess.UnionID)
		}
	})

	t.Run("fresh session_key per exchange", func(t *testing.T) {
		keys := map[string]bool{}
		for range 3 {
			code, _ := e.mint(t, miniID, fakewechat.User{OpenID: "oSameUser000000000000000000A"})
			sess, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
			if err != nil {
				t.Fatal(err)
			}
			if sess.OpenID != "oSameUser000000000000000000A" {
				t.Fatalf("openid = %q", sess.OpenID)
			}
			keys[sess.SessionKey] = true
		}
		if len(keys) != 3 {
			t.Errorf("3 exchanges gave %d distinct session keys", len(keys))
		}
	})

	t.Run("bad grant_type", func(t *testing.T) {
		code, _ := e.mint(t, miniID, fakewechat.User{})
		_, body := e.rawGet(t, "/sns/jscode2session", url.Values{"appid": {miniID}, "secret": {miniSecret},
			"js_code": {code}, "grant_type": {"client_credential"}})
		if body["errcode"] != json.Number("40002") {
			t.Errorf("answer %v, want errcode 40002", body)
		}
	})
}

func TestMintCodeUsers(t *testing.T) {
	e := newEnv(t)
	_, first := e.mint(t, webID, fakewechat.User{UnionID: "oUnionA", Nickname: "Band", Sex: 1})
	tests := []struct {
		name    string
		appid   string
		user    fakewechat.User
		want    func(t *testing.T, got fakewechat.User)
		wantErr error
	}{
		{"same unionid, same app: same openid, profile merged", webID,
			fakewechat.User{UnionID: "oUnionA", City: "Guangzhou"},
			func(t *testing.T, got fakewechat.User) {
				if got.OpenID != first.OpenID || got.Nickname != "Band" || got.City != "Guangzhou" || got.Sex != 1 {
					t.Errorf("got %+v, want openid %s with nickname Band, sex 1 and city Guangzhou", got, first.OpenID)
				}
			}, nil},
		{"same unionid, another app: another openid", miniID,
			fakewechat.User{UnionID: "oUnionA"},
			func(t *testing.T, got fakewechat.User) {
				if got.OpenID == first.OpenID || got.UnionID != "oUnionA" {
					t.Errorf("got %+v, want a new openid with unionid oUnionA", got)
				}
			}, nil},
		{"given openid is kept", miniID, fakewechat.User{OpenID: "oGiven"},
			func(t *testing.T, got fakewechat.User) {
				if got.OpenID != "oGiven" {
					t.Errorf("openid = %q", got.OpenID)
				}
			}, nil},
		{"unionid of another openid", webID, fakewechat.User{OpenID: "oOther", UnionID: "oUnionA"}, nil, fakewechat.ErrBadInput},
		{"second unionid for one openid", webID, fakewechat.User{OpenID: first.OpenID, UnionID: "oUnionB"}, nil, fakewechat.ErrBadInput},
		{"sex out of range", miniID, fakewechat.User{Sex: 3}, nil, fakewechat.ErrBadInput},
		{"openid with a space", miniID, fakewechat.User{OpenID: "o x"}, nil, fakewechat.ErrBadInput},
		{"oversize nickname", miniID, fakewechat.User{Nickname: strings.Repeat("x", 2000)}, nil, fakewechat.ErrBadInput},
		{"unknown app", "wx0000000000000000", fakewechat.User{}, nil, fakewechat.ErrUnknownApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got, err := e.fake.MintCode(tt.appid, tt.user)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(code) != 32 {
				t.Fatalf("MintCode = %q, %v", code, err)
			}
			tt.want(t, got)
		})
	}
}

func TestWebLogin(t *testing.T) {
	ctx := context.Background()
	profile := fakewechat.User{UnionID: "oUnionWeb", Nickname: "微信用户", HeadImgURL: "https://thirdwx.qlogo.cn/x/132",
		Sex: 2, Province: "Guangdong", City: "Shenzhen", Country: "CN"}

	t.Run("code exchange and userinfo", func(t *testing.T) {
		e := newEnv(t)
		code, u := e.mint(t, webID, profile)
		tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code)
		if err != nil {
			t.Fatal(err)
		}
		if tok.OpenID != u.OpenID || tok.UnionID != "oUnionWeb" || tok.Scope != "snsapi_login" ||
			tok.ExpiresIn != 7200 || tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Fatalf("token answer %+v", tok)
		}
		info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
		if err != nil {
			t.Fatal(err)
		}
		want := wechat.UserInfo{OpenID: u.OpenID, UnionID: "oUnionWeb", Nickname: "微信用户", Sex: 2,
			Province: "Guangdong", City: "Shenzhen", Country: "CN", HeadImgURL: "https://thirdwx.qlogo.cn/x/132"}
		if info != want {
			t.Errorf("userinfo = %+v, want %+v", info, want)
		}
		// On the wire: sex a number, privilege an empty list.
		_, body := e.rawGet(t, "/sns/userinfo", url.Values{"access_token": {tok.AccessToken}, "openid": {tok.OpenID}})
		if body["sex"] != json.Number("2") {
			t.Errorf("sex = %#v, want the number 2", body["sex"])
		}
		if p, ok := body["privilege"].([]any); !ok || len(p) != 0 {
			t.Errorf("privilege = %#v, want []", body["privilege"])
		}
	})

	tests := []struct {
		name string
		// run does the failing call after any setup.
		run         func(t *testing.T, e *env) error
		wantErrCode int
	}{
		{"code used twice", func(t *testing.T, e *env) error {
			code, _ := e.mint(t, webID, profile)
			if _, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code); err != nil {
				t.Fatal(err)
			}
			_, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code)
			return err
		}, 40163},
		{"code valid for just under 10 minutes", func(t *testing.T, e *env) error {
			code, _ := e.mint(t, webID, profile)
			e.fake.Advance(10*time.Minute - time.Second)
			_, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code)
			return err
		}, 0},
		{"code expired after 10 minutes", func(t *testing.T, e *env) error {
			code, _ := e.mint(t, webID, profile)
			e.fake.Advance(10 * time.Minute)
			_, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code)
			return err
		}, 40029},
		{"a mini-program code", func(t *testing.T, e *env) error {
			code, _ := e.mint(t, miniID, profile)
			_, err := e.client.OAuthAccessToken(ctx, miniID, miniSecret, code)
			return err
		}, 40029},
		{"wrong secret", func(t *testing.T, e *env) error {
			code, _ := e.mint(t, webID, profile)
			_, err := e.client.OAuthAccessToken(ctx, webID, miniSecret, code)
			return err
		}, 40125},
		{"userinfo with an unknown token", func(t *testing.T, e *env) error {
			_, err := e.client.UserInfo(ctx, "86_notatoken", "oWhoever")
			return err
		}, 40001},
		{"userinfo with another openid", func(t *testing.T, e *env) error {
			tok := webToken(t, e, profile)
			_, err := e.client.UserInfo(ctx, tok.AccessToken, "oSomeoneElse")
			return err
		}, 40003},
		{"userinfo just before the token expires", func(t *testing.T, e *env) error {
			tok := webToken(t, e, profile)
			e.fake.Advance(7199 * time.Second)
			_, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
			return err
		}, 0},
		{"userinfo with an expired token", func(t *testing.T, e *env) error {
			tok := webToken(t, e, profile)
			e.fake.Advance(7200 * time.Second)
			_, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
			return err
		}, 42001},
		{"userinfo with a long-expired token", func(t *testing.T, e *env) error {
			tok := webToken(t, e, profile)
			e.fake.Advance(7200*time.Second + time.Hour)
			_, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
			return err
		}, 40001},
		{"userinfo without openid", func(t *testing.T, e *env) error {
			tok := webToken(t, e, profile)
			_, err := e.client.UserInfo(ctx, tok.AccessToken, "")
			return err
		}, 41009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrCode(t, tt.run(t, newEnv(t)), tt.wantErrCode)
		})
	}
}

func webToken(t *testing.T, e *env, u fakewechat.User) wechat.OAuthToken {
	t.Helper()
	code, _ := e.mint(t, webID, u)
	tok, err := e.client.OAuthAccessToken(context.Background(), webID, webSecret, code)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStableToken(t *testing.T) {
	ctx := context.Background()

	t.Run("same token while valid, new on force_refresh", func(t *testing.T) {
		e := newEnv(t)
		a, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		if a.ExpiresIn != 7200 {
			t.Errorf("expires_in = %d, want 7200", a.ExpiresIn)
		}
		e.fake.Advance(time.Hour)
		b, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		if b.AccessToken != a.AccessToken || b.ExpiresIn != 3600 {
			t.Errorf("second call = %+v, want the same token with 3600s left", b)
		}
		c, err := e.client.StableToken(ctx, miniID, miniSecret, true)
		if err != nil {
			t.Fatal(err)
		}
		if c.AccessToken == a.AccessToken || c.ExpiresIn != 7200 {
			t.Errorf("force_refresh = %+v, want a new token for 7200s", c)
		}
		// force_refresh invalidates the old token at once.
		wantErrCode(t, phoneWith(t, e, a.AccessToken), 40001)
		wantErrCode(t, phoneWith(t, e, c.AccessToken), 0)
	})

	t.Run("renewed in its last 5 minutes, old one works until expiry", func(t *testing.T) {
		e := newEnv(t)
		a, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(7200*time.Second - 5*time.Minute)
		b, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		if b.AccessToken == a.AccessToken {
			t.Fatal("token not renewed in its last 5 minutes")
		}
		wantErrCode(t, phoneWith(t, e, a.AccessToken), 0)
		e.fake.Advance(5 * time.Minute)
		wantErrCode(t, phoneWith(t, e, a.AccessToken), 42001)
		wantErrCode(t, phoneWith(t, e, b.AccessToken), 0)
	})

	for _, tt := range []struct {
		name, appid, secret string
		want                int
	}{
		{"unknown appid", "wx0000000000000000", miniSecret, 40013},
		{"wrong secret", miniID, webSecret, 40125},
		{"missing appid", "", miniSecret, 41002},
		{"missing secret", miniID, "", 41004},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newEnv(t).client.StableToken(ctx, tt.appid, tt.secret, false)
			wantErrCode(t, err, tt.want)
		})
	}

	t.Run("bad bodies", func(t *testing.T) {
		e := newEnv(t)
		for body, want := range map[string]string{
			``:         "44002",
			`{"appid"`: "47001",
			`{"grant_type":"authorization_code","appid":"` + miniID + `","secret":"` + miniSecret + `"}`: "40002",
		} {
			_, m := e.raw(t, http.MethodPost, "/cgi-bin/stable_token", body)
			if m["errcode"] != json.Number(want) {
				t.Errorf("body %q: answer %v, want errcode %s", body, m, want)
			}
		}
	})
}

// phoneWith exchanges a fresh phone code of the mini-program with token.
func phoneWith(t *testing.T, e *env, token string) error {
	t.Helper()
	code, err := e.fake.MintPhoneCode(miniID, "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.PhoneNumber(context.Background(), token, code)
	return err
}

func TestCGIBinToken(t *testing.T) {
	e := newEnv(t)
	get := func() string {
		t.Helper()
		resp, m := e.rawGet(t, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {miniID}, "secret": {miniSecret}})
		if resp.StatusCode != 200 || m["expires_in"] != json.Number("7200") {
			t.Fatalf("cgi-bin/token answered %d %v", resp.StatusCode, m)
		}
		return m["access_token"].(string)
	}
	first := get()
	second := get()
	if first == second {
		t.Fatal("cgi-bin/token returned the same token twice")
	}
	third := get()
	// The previous token lives 5 more minutes; the one before it is gone.
	wantErrCode(t, phoneWith(t, e, first), 40001)
	wantErrCode(t, phoneWith(t, e, second), 0)
	wantErrCode(t, phoneWith(t, e, third), 0)
	e.fake.Advance(5 * time.Minute)
	wantErrCode(t, phoneWith(t, e, second), 40001)
	wantErrCode(t, phoneWith(t, e, third), 0)

	// Independent of the stable_token family.
	st, err := e.client.StableToken(context.Background(), miniID, miniSecret, false)
	if err != nil {
		t.Fatal(err)
	}
	get()
	get()
	wantErrCode(t, phoneWith(t, e, st.AccessToken), 0)

	_, m := e.rawGet(t, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {miniID}, "secret": {"nope"}})
	if m["errcode"] != json.Number("40125") {
		t.Errorf("wrong secret: %v", m)
	}
	_, m = e.rawGet(t, "/cgi-bin/token", url.Values{"grant_type": {"password"}, "appid": {miniID}, "secret": {miniSecret}})
	if m["errcode"] != json.Number("40002") {
		t.Errorf("wrong grant_type: %v", m)
	}
}

func TestPhoneNumber(t *testing.T) {
	ctx := context.Background()

	t.Run("answer", func(t *testing.T) {
		e := newEnv(t)
		tok, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			in                     string
			phone, pure, countryCC string
		}{
			{"13800138000", "13800138000", "13800138000", "86"},
			{"+8613800138000", "13800138000", "13800138000", "86"},
			{"+86 13800138000", "13800138000", "13800138000", "86"},
			{"+1 4155550100", "+1 4155550100", "4155550100", "1"},
			{"+852-51234567", "+852 51234567", "51234567", "852"},
		} {
			t.Run(tt.in, func(t *testing.T) {
				code, err := e.fake.MintPhoneCode(miniID, tt.in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := e.client.PhoneNumber(ctx, tok.AccessToken, code)
				if err != nil {
					t.Fatal(err)
				}
				want := wechat.PhoneInfo{PhoneNumber: tt.phone, PurePhoneNumber: tt.pure, CountryCode: tt.countryCC, WatermarkAppID: miniID}
				if got != want {
					t.Errorf("got %+v, want %+v", got, want)
				}
			})
		}
	})

	t.Run("wire format", func(t *testing.T) {
		e := newEnv(t)
		tok, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		code, err := e.fake.MintPhoneCode(miniID, "+8613800138000")
		if err != nil {
			t.Fatal(err)
		}
		resp, m := e.raw(t, http.MethodPost, "/wxa/business/getuserphonenumber?access_token="+url.QueryEscape(tok.AccessToken), `{"code":"`+code+`"}`)
		if resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
		}
		info, _ := m["phone_info"].(map[string]any)
		wm, _ := info["watermark"].(map[string]any)
		if m["errcode"] != json.Number("0") || m["errmsg"] != "ok" || info["countryCode"] != "86" ||
			wm["appid"] != miniID || wm["timestamp"] != json.Number("1714564800") {
			t.Errorf("answer %v: want errcode 0, errmsg ok, countryCode the string \"86\", watermark with appid and timestamp", m)
		}
	})

	tests := []struct {
		name        string
		run         func(t *testing.T, e *env, token string) error
		wantErrCode int
	}{
		{"code used twice", func(t *testing.T, e *env, token string) error {
			code, _ := e.fake.MintPhoneCode(miniID, "13800138000")
			if _, err := e.client.PhoneNumber(ctx, token, code); err != nil {
				t.Fatal(err)
			}
			_, err := e.client.PhoneNumber(ctx, token, code)
			return err
		}, 40029},
		{"code expired after 5 minutes", func(t *testing.T, e *env, token string) error {
			code, _ := e.fake.MintPhoneCode(miniID, "13800138000")
			e.fake.Advance(5 * time.Minute)
			_, err := e.client.PhoneNumber(ctx, token, code)
			return err
		}, 40029},
		{"unknown code", func(t *testing.T, e *env, token string) error {
			_, err := e.client.PhoneNumber(ctx, token, "nope")
			return err
		}, 40029},
		{"another app's code", func(t *testing.T, e *env, token string) error {
			code, _ := e.fake.MintPhoneCode(mini2ID, "13800138000")
			_, err := e.client.PhoneNumber(ctx, token, code)
			return err
		}, 40029},
		{"unknown access token", func(t *testing.T, e *env, token string) error {
			code, _ := e.fake.MintPhoneCode(miniID, "13800138000")
			_, err := e.client.PhoneNumber(ctx, "86_stale", code)
			return err
		}, 40001},
		{"expired access token", func(t *testing.T, e *env, token string) error {
			e.fake.Advance(7200 * time.Second)
			code, _ := e.fake.MintPhoneCode(miniID, "13800138000")
			_, err := e.client.PhoneNumber(ctx, token, code)
			return err
		}, 42001},
		{"missing access token", func(t *testing.T, e *env, token string) error {
			code, _ := e.fake.MintPhoneCode(miniID, "13800138000")
			_, err := e.client.PhoneNumber(ctx, "", code)
			return err
		}, 41001},
		{"a website's access token", func(t *testing.T, e *env, token string) error {
			web, err := e.client.StableToken(ctx, webID, webSecret, false)
			if err != nil {
				t.Fatal(err)
			}
			code, _ := e.fake.MintPhoneCode(miniID, "13800138000")
			_, err = e.client.PhoneNumber(ctx, web.AccessToken, code)
			return err
		}, 48001},
		{"missing code", func(t *testing.T, e *env, token string) error {
			_, err := e.client.PhoneNumber(ctx, token, "")
			return err
		}, 41008},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok, err := e.client.StableToken(ctx, miniID, miniSecret, false)
			if err != nil {
				t.Fatal(err)
			}
			wantErrCode(t, tt.run(t, e, tok.AccessToken), tt.wantErrCode)
		})
	}

	t.Run("mint errors", func(t *testing.T) {
		e := newEnv(t)
		for _, tt := range []struct {
			appid, phone string
			want         error
		}{
			{webID, "13800138000", fakewechat.ErrWrongKind},
			{"wx0000000000000000", "13800138000", fakewechat.ErrUnknownApp},
			{miniID, "", fakewechat.ErrBadInput},
			{miniID, "138-0013", fakewechat.ErrBadInput},
			{miniID, "+14155550100", fakewechat.ErrBadInput}, // ambiguous country code
			{miniID, "+1 41a5550100", fakewechat.ErrBadInput},
			{miniID, "1234", fakewechat.ErrBadInput},
		} {
			if _, err := e.fake.MintPhoneCode(tt.appid, tt.phone); !errors.Is(err, tt.want) {
				t.Errorf("MintPhoneCode(%s, %q) = %v, want %v", tt.appid, tt.phone, err, tt.want)
			}
		}
	})
}

func TestFailNext(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		path    string
		errcode int
		count   int
		wantMsg string
	}{
		{"busy", "/sns/jscode2session", -1, 1, "system error"},
		{"minute quota", "/sns/jscode2session", 45011, 2, "api minute-quota reach limit mustslower retry next minute"},
		{"high risk user", "/sns/jscode2session", 40226, 1, "invalid login, high risk user"},
		{"any path", "", -1, 3, "system error"},
		{"path without slash", "sns/jscode2session", 45011, 1, "api minute-quota"},
		{"other errcode", "/sns/jscode2session", 40164, 1, "invalid ip"},
		{"unlisted errcode", "/sns/jscode2session", 99999, 1, "fake error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			code, u := e.mint(t, miniID, fakewechat.User{})
			e.fake.FailNext(tt.path, tt.errcode, tt.count)
			// Another API path is untouched unless the rule names none.
			_, err := e.client.StableToken(ctx, miniID, miniSecret, false)
			count := tt.count
			if tt.path == "" {
				wantErrCode(t, err, tt.errcode)
				count--
			} else {
				wantErrCode(t, err, 0)
			}
			for i := range count {
				_, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
				wantErrCode(t, err, tt.errcode)
				var we *wechat.Error
				errors.As(err, &we)
				if !strings.HasPrefix(we.Msg, tt.wantMsg) {
					t.Errorf("call %d: errmsg %q, want it to start with %q", i, we.Msg, tt.wantMsg)
				}
			}
			// Recovery: the failures did not spend the code.
			sess, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
			if err != nil {
				t.Fatalf("after the failures: %v", err)
			}
			if sess.OpenID != u.OpenID {
				t.Errorf("openid = %q, want %q", sess.OpenID, u.OpenID)
			}
		})
	}

	t.Run("count 0 cancels", func(t *testing.T) {
		e := newEnv(t)
		e.fake.FailNext("/sns/jscode2session", -1, 5)
		e.fake.FailNext("/cgi-bin/stable_token", -1, 5)
		e.fake.FailNext("/sns/jscode2session", 0, 0)
		code, _ := e.mint(t, miniID, fakewechat.User{})
		if _, err := e.client.Code2Session(ctx, miniID, miniSecret, code); err != nil {
			t.Fatalf("cancelled failure still applied: %v", err)
		}
		_, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		wantErrCode(t, err, -1)
		e.fake.FailNext("", 0, 0)
		if _, err := e.client.StableToken(ctx, miniID, miniSecret, false); err != nil {
			t.Fatalf("cancel-all left a failure: %v", err)
		}
	})
}

func TestWireQuirks(t *testing.T) {
	e := newEnv(t)
	code, _ := e.mint(t, miniID, fakewechat.User{})
	tests := []struct {
		name, method, pathAndQuery, body string
		wantErrCode                      string // "" for a success
	}{
		{"success", http.MethodGet, "/sns/jscode2session?" + url.Values{"appid": {miniID}, "secret": {miniSecret},
			"js_code": {code}, "grant_type": {"authorization_code"}}.Encode(), "", ""},
		{"error", http.MethodGet, "/sns/jscode2session?appid=" + miniID, "", "41004"},
		{"GET on a POST API", http.MethodGet, "/cgi-bin/stable_token", "", "43002"},
		{"POST on a GET API", http.MethodPost, "/sns/jscode2session", "{}", "43001"},
		{"oversize body", http.MethodPost, "/cgi-bin/stable_token", strings.Repeat(" ", 70<<10), "47001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := e.raw(t, tt.method, tt.pathAndQuery, tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, want 200 even for errors", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if tt.wantErrCode == "" {
				if _, ok := m["errcode"]; ok {
					t.Errorf("success answer %v has an errcode", m)
				}
				return
			}
			msg, _ := m["errmsg"].(string)
			if m["errcode"] != json.Number(tt.wantErrCode) || !strings.Contains(msg, " rid: ") {
				t.Errorf("answer %v, want errcode %s and an errmsg with a rid", m, tt.wantErrCode)
			}
		})
	}

	t.Run("unknown API path is a 404", func(t *testing.T) {
		resp, err := http.Get(e.srv.URL + "/sns/nope")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

// TestConcurrentUse runs logins, minting and control calls at once; with
// -race it checks the fake's locking, and every login must still succeed once.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 50 {
		wg.Go(func() {
			code, u, err := e.fake.MintCode(miniID, fakewechat.User{})
			if err != nil {
				errs <- err
				return
			}
			sess, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
			if err != nil {
				errs <- err
				return
			}
			if sess.OpenID != u.OpenID {
				errs <- errors.New("openid mismatch")
			}
			if _, err := e.client.Code2Session(ctx, miniID, miniSecret, code); wechat.ErrCode(err) != 40163 {
				errs <- errors.New("second exchange did not answer 40163")
			}
			if i%10 == 0 {
				e.fake.Advance(time.Second)
			}
			if _, err := e.client.StableToken(ctx, miniID, miniSecret, false); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLogsHoldNoSecrets drives every API and checks the fake's debug log for
// codes, tokens, secrets and session keys.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var secrets []string
	code, _ := e.mint(t, miniID, fakewechat.User{})
	sess, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
	if err != nil {
		t.Fatal(err)
	}
	webCode, _ := e.mint(t, webID, fakewechat.User{})
	tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, webCode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.StableToken(ctx, miniID, miniSecret, false)
	if err != nil {
		t.Fatal(err)
	}
	phoneCode, err := e.fake.MintPhoneCode(miniID, "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PhoneNumber(ctx, st.AccessToken, phoneCode); err != nil {
		t.Fatal(err)
	}
	_, _ = e.client.Code2Session(ctx, miniID, miniSecret, code) // an error line too
	secrets = append(secrets, code, sess.SessionKey, webCode, tok.AccessToken, tok.RefreshToken, st.AccessToken,
		phoneCode, miniSecret, webSecret)

	logs := e.logs.String()
	if !strings.Contains(logs, "/sns/jscode2session") {
		t.Fatalf("the fake logged nothing useful: %q", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log output contains a secret (%.6s…)", s)
		}
	}
}

func TestParseApps(t *testing.T) {
	tests := []struct {
		in      string
		want    []fakewechat.App
		wantErr string
	}{
		{in: "wxa:s1:miniprogram, wxb:s2:web", want: []fakewechat.App{{AppID: "wxa", Secret: "s1", Kind: "miniprogram"}, {AppID: "wxb", Secret: "s2", Kind: "web"}}},
		{in: "wxa:s1:miniprogram,", want: []fakewechat.App{{AppID: "wxa", Secret: "s1", Kind: "miniprogram"}}},
		{in: "", wantErr: "no apps"},
		{in: "wxa:s1", wantErr: "want appid:secret:kind"},
		{in: "wxa:s1:desktop", wantErr: "kind"},
		{in: "wxa:s1:officialaccount,wxb:s2:app", want: []fakewechat.App{{AppID: "wxa", Secret: "s1", Kind: "officialaccount"}, {AppID: "wxb", Secret: "s2", Kind: "app"}}},
		{in: "wxa::web", wantErr: "empty secret"},
		{in: ":s:web", wantErr: "without appid"},
		{in: "wxa:s1:web,wxa:s2:web", wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := fakewechat.ParseApps(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s1") || strings.Contains(err.Error(), "s2") {
					t.Errorf("error %q shows a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("app %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
