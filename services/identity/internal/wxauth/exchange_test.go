package wxauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

// wechatAnswering is a WeChat stand-in answering every call with body.
func wechatAnswering(t *testing.T, body string, delay time.Duration) *wechat.Client {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(hs.Close)
	return wechat.New(wechat.Options{APIBase: hs.URL})
}

func TestCode2SessionTranslatesErrors(t *testing.T) {
	app := apps.App{Name: "mp", Kind: api.KindMiniProgram, AppID: "wx1", Secret: "s1"}
	for _, tc := range []struct {
		name    string
		body    string
		code    string
		timeout time.Duration
		want    api.Code
	}{
		{"ok", `{"openid":"o1","session_key":"k"}`, "c", 0, ""},
		{"empty code", `{"openid":"o1"}`, "", 0, api.CodeCodeMissing},
		{"invalid", `{"errcode":40029,"errmsg":"invalid code, rid: 1"}`, "c", 0, api.CodeWechatCodeInvalid},
		{"used", `{"errcode":40163,"errmsg":"code been used, rid: 1"}`, "c", 0, api.CodeWechatCodeUsed},
		{"quota", `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`, "c", 0, api.CodeWechatRateLimited},
		{"busy", `{"errcode":-1,"errmsg":"system error"}`, "c", 0, api.CodeWechatUnavailable},
		{"blocked", `{"errcode":40226,"errmsg":"invalid login, high risk user"}`, "c", 0, api.CodeWechatError},
		{"bad secret", `{"errcode":40125,"errmsg":"invalid appsecret"}`, "c", 0, api.CodeWechatError},
		{"not json", `<html>gateway</html>`, "c", 0, api.CodeWechatUnavailable},
		{"too slow", `{"openid":"o1"}`, "c", 50 * time.Millisecond, api.CodeWechatUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delay := time.Duration(0)
			ctx := context.Background()
			if tc.timeout > 0 {
				delay = time.Minute
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			var logs bytes.Buffer
			e := NewExchanger(wechatAnswering(t, tc.body, delay), nil, slog.New(slog.NewTextHandler(&logs, nil)))
			s, err := e.Code2Session(ctx, app, tc.code)
			if tc.want == "" {
				if err != nil || s.OpenID != "o1" {
					t.Fatalf("session = %+v, err = %v", s, err)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
			if strings.Contains(ae.Message, "rid") || strings.Contains(ae.Message, "system error") {
				t.Errorf("client message repeats WeChat's: %q", ae.Message)
			}
			if strings.Contains(logs.String(), "s1") {
				t.Errorf("log holds the secret: %s", logs.String())
			}
		})
	}
}
