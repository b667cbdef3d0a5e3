package fakewechat_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// The load mode is off unless asked for: a "load:" code is then as unknown
// as any other (40029), so the fake stays faithful by default.
func TestLoadCodesOffByDefault(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.client.Code2Session(ctx, miniID, miniSecret, "load:o_bench_1")
	if wechat.ErrCode(err) != wechat.ErrCodeInvalidCode {
		t.Fatalf("load code with the mode off: %v, want errcode 40029", err)
	}
	if _, err := e.client.OAuthAccessToken(ctx, webID, webSecret, "load:o_bench_1"); wechat.ErrCode(err) != wechat.ErrCodeInvalidCode {
		t.Fatalf("web load code with the mode off: %v, want errcode 40029", err)
	}
}

func TestLoadCodes(t *testing.T) {
	fake := fakewechat.New(fakewechat.Options{LoadCodes: true})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	c := wechat.New(wechat.Options{APIBase: srv.URL, OpenBase: srv.URL})
	ctx := context.Background()

	t.Run("mini-program, any number of times", func(t *testing.T) {
		var keys []string
		for range 3 {
			s, err := c.Code2Session(ctx, miniID, miniSecret, "load:o_bench_1:u_bench_1")
			if err != nil {
				t.Fatal(err)
			}
			if s.OpenID != "o_bench_1" || s.UnionID != "u_bench_1" || s.SessionKey == "" {
				t.Fatalf("session %+v", s)
			}
			keys = append(keys, s.SessionKey)
		}
		if keys[0] == keys[1] {
			t.Error("every exchange should carry a fresh session_key, as WeChat's do")
		}
		s, err := c.Code2Session(ctx, miniID, miniSecret, "load:o_bench_2")
		if err != nil || s.OpenID != "o_bench_2" || s.UnionID != "" {
			t.Fatalf("without unionid: %+v %v", s, err)
		}
	})
	t.Run("website: token and user info", func(t *testing.T) {
		for range 2 {
			tok, err := c.OAuthAccessToken(ctx, webID, webSecret, "load:o_web_1:u_bench_1")
			if err != nil {
				t.Fatal(err)
			}
			if tok.OpenID != "o_web_1" || tok.UnionID != "u_bench_1" {
				t.Fatalf("token %+v", tok)
			}
			info, err := c.UserInfo(ctx, tok.AccessToken, tok.OpenID)
			if err != nil || info.OpenID != "o_web_1" || info.UnionID != "u_bench_1" {
				t.Fatalf("userinfo %+v %v", info, err)
			}
		}
	})
	t.Run("still checked", func(t *testing.T) {
		cases := []struct {
			name, appid, secret, code string
			want                      int
		}{
			{"no openid", miniID, miniSecret, "load:", wechat.ErrCodeInvalidCode},
			{"openid with a space", miniID, miniSecret, "load:o bench", wechat.ErrCodeInvalidCode},
			{"wrong secret", miniID, "nope", "load:o_bench_1", wechat.ErrCodeInvalidAppSecret},
			{"web app on jscode2session", webID, webSecret, "load:o_bench_1", wechat.ErrCodeInvalidCode},
		}
		for _, tc := range cases {
			if _, err := c.Code2Session(ctx, tc.appid, tc.secret, tc.code); wechat.ErrCode(err) != tc.want {
				t.Errorf("%s: %v, want errcode %d", tc.name, err, tc.want)
			}
		}
		// Minted codes keep their single use.
		code, _, err := fake.MintCode(miniID, fakewechat.User{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Code2Session(ctx, miniID, miniSecret, code); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Code2Session(ctx, miniID, miniSecret, code); wechat.ErrCode(err) != wechat.ErrCodeCodeUsed {
			t.Errorf("minted code twice: %v, want 40163", err)
		}
	})
}
