package problem

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/wxlogin/wxlogin/shared/api"
)

// The status of every contract code, as docs/api.md lists them.
func TestStatusTable(t *testing.T) {
	want := map[api.Code]int{
		api.CodeInvalidRequest: 400, api.CodeCodeMissing: 400,
		api.CodeWechatCodeInvalid: 401, api.CodeWechatCodeUsed: 401, api.CodeInvalidCredentials: 401,
		api.CodeTokenInvalid: 401, api.CodeTokenExpired: 401, api.CodeTokenRevoked: 401, api.CodeRefreshTokenReused: 401,
		api.CodeWechatNotBound: 403, api.CodeForbidden: 403, api.CodeUserDisabled: 403,
		api.CodeNotFound: 404, api.CodeQRTicketNotFound: 404, api.CodeQRTicketExpired: 410, api.CodeQRWrongBrowser: 403, api.CodeSignatureInvalid: 401,
		api.CodeInvalidRedirectURI: 400, api.CodeLoginCodeInvalid: 400, api.CodeSnapshotUser: 403,
		api.CodeUsernameTaken: 409, api.CodeIdentityBound: 409, api.CodeLastIdentity: 409, api.CodeLastAdmin: 409,
		api.CodeRateLimited: 429, api.CodeWechatRateLimited: 429,
		api.CodeWechatError: 502, api.CodeWechatUnavailable: 503, api.CodeServiceUnavailable: 503,
		api.CodeInternal: 500, "not_a_contract_code": 500,
	}
	for code, status := range want {
		t.Run(string(code), func(t *testing.T) {
			if got := Status(code); got != status {
				t.Errorf("Status = %d, want %d", got, status)
			}
		})
	}
	if len(table) != len(want)-1 {
		t.Errorf("table has %d codes, the test knows %d: keep them in step", len(table), len(want)-1)
	}
}

func TestFor(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		code       api.Code
		status     int
		unexpected bool
		detail     string
	}{
		{"contract error", api.Errorf(api.CodeWechatCodeUsed, "code already used"), api.CodeWechatCodeUsed, 401, false, "code already used"},
		{"wrapped contract error", fmt.Errorf("login: %w", api.Errorf(api.CodeUserDisabled, "disabled")), api.CodeUserDisabled, 403, false, "disabled"},
		{"empty message takes the title", &api.Error{Code: api.CodeForbidden}, api.CodeForbidden, 403, false, "Forbidden"},
		{"plain error", errors.New("dial tcp: secret detail"), api.CodeInternal, 500, true, internalDetail},
		{"internal code", api.Errorf(api.CodeInternal, "pq: boom"), api.CodeInternal, 500, true, internalDetail},
		{"unknown code", api.Errorf("brand_new", "whatever"), api.CodeInternal, 500, true, internalDetail},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, unexpected := For(c.err, "rid-1")
			if p.Code != c.code || p.Status != c.status || unexpected != c.unexpected || p.Detail != c.detail {
				t.Errorf("got %+v unexpected=%v", p, unexpected)
			}
			if p.RequestID != "rid-1" || p.Type != TypeBase+string(c.code) || p.Title == "" {
				t.Errorf("shape: %+v", p)
			}
		})
	}
	if p, _ := For(&api.Error{Code: api.CodeRateLimited, Data: map[string]string{"retry_after": "x"}}, ""); p.retryAfter != 1 {
		t.Errorf("a malformed retry_after should keep the default, got %d", p.retryAfter)
	}
	if p, _ := For(&api.Error{Code: api.CodeWechatNotBound, Data: map[string]string{"bind_token": "b"}}, ""); p.BindToken != "b" || p.Status != http.StatusForbidden {
		t.Errorf("bind_token: %+v", p)
	}
	nb := &api.Error{Code: api.CodeWechatNotBound, Data: map[string]string{"bind_token": "b", "nickname": "小王", "avatar_url": "https://a.example/h"}}
	if p, _ := For(nb, ""); p.Nickname != "小王" || p.AvatarURL != "https://a.example/h" {
		t.Errorf("whose WeChat it is: %+v", p)
	}
	if p, _ := For(&api.Error{Code: api.CodeForbidden, Data: map[string]string{"bind_token": "b", "nickname": "x"}}, ""); p.BindToken != "" || p.Nickname != "" {
		t.Errorf("not_bound data on another code: %+v", p)
	}
}
