package gatewaysvc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const (
	formType = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

func ptr[T any](v T) *T { return &v }

func TestMiniProgramLogin(t *testing.T) {
	e := newEnv(t)
	base := e.up(nil)
	login := base + "/api/v1/auth/miniprogram/login"

	t.Run("JSON body gives tokens and the user", func(t *testing.T) {
		r := postJSON(t, login, `{"code":"code-json-1","app":"shop"}`)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		for _, k := range []string{"access_token", "refresh_token", "expires_in", "refresh_expires_in", "user", "is_new_user"} {
			if _, ok := r.body[k]; !ok {
				t.Errorf("response lacks %q: %s", k, r.raw)
			}
		}
		if r.body["token_type"] != "Bearer" || r.body["is_new_user"] != true {
			t.Errorf("token_type/is_new_user wrong: %s", r.raw)
		}
		if u, _ := r.body["user"].(map[string]any); u["id"] != testUserID || u["nickname"] != "Alice" {
			t.Errorf("user wrong: %s", r.raw)
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		got := e.id.lastLogin(t)
		want := identity.MiniProgramLoginRequest{Code: "code-json-1", App: "shop"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("identity got %+v, want %+v", got, want)
		}
		issue := e.se.lastIssue(t)
		if issue.UserID != testUserID || issue.Kind != api.KindMiniProgram || issue.AppID != testAppID {
			t.Errorf("session issue got %+v", issue)
		}
		// The token the login returned really verifies at /me.
		me := get(t, base+"/api/v1/me", map[string]string{"Authorization": "Bearer " + r.body["access_token"].(string)})
		if me.status != http.StatusOK || me.body["id"] != testUserID {
			t.Errorf("GET /me with the new token: %d %s", me.status, me.raw)
		}
	})

	t.Run("form body gives tokens", func(t *testing.T) {
		r := do(t, context.Background(), http.MethodPost, login, formType+"; charset=utf-8", url.Values{"code": {"code-form-1"}}.Encode(), nil)
		if r.status != http.StatusOK || r.body["access_token"] == nil {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := e.id.lastLogin(t); got.Code != "code-form-1" || got.Profile != nil {
			t.Errorf("identity got %+v", got)
		}
	})

	rawData := `{"nickName":"Bob","avatarUrl":"https://thirdwx.qlogo.cn/a/132","gender":1,"language":"zh_CN","city":"Shenzhen","province":"Guangdong","country":"China"}`
	full := &identity.Profile{Nickname: ptr("Bob"), AvatarURL: ptr("https://thirdwx.qlogo.cn/a/132"), Gender: ptr(1),
		Language: ptr("zh_CN"), City: ptr("Shenzhen"), Province: ptr("Guangdong"), Country: ptr("China")}
	profiles := []struct {
		name        string
		contentType string
		body        string
		want        *identity.Profile
	}{
		{"user_info as an object", jsonType, `{"code":"c","user_info":` + rawData + `}`, full},
		{"user_info as the rawData string", jsonType, fmt.Sprintf(`{"code":"c","user_info":%q}`, rawData), full},
		{"user_info as a form field", formType, url.Values{"code": {"c"}, "user_info": {rawData}}.Encode(), full},
		{"flat JSON fields", jsonType, `{"code":"c","nickname":"Carol","avatar_url":"http://a.example/c.png","gender":"2"}`,
			&identity.Profile{Nickname: ptr("Carol"), AvatarURL: ptr("http://a.example/c.png"), Gender: ptr(2)}},
		{"flat form fields", formType, url.Values{"code": {"c"}, "nickname": {"李雷"}, "gender": {"0"}}.Encode(),
			&identity.Profile{Nickname: ptr("李雷"), Gender: ptr(0)}},
		{"only the sent fields", jsonType, `{"code":"c","user_info":{"city":"Beijing","gender":"2"}}`,
			&identity.Profile{City: ptr("Beijing"), Gender: ptr(2)}},
		{"flat fields win over user_info", jsonType, `{"code":"c","nickname":"Dave","user_info":{"nickName":"Bob","country":"China"}}`,
			&identity.Profile{Nickname: ptr("Dave"), Country: ptr("China")}},
		{"empty fields are not sent", formType, "code=c&nickname=&avatar_url=&gender=&user_info=", nil},
	}
	for _, c := range profiles {
		t.Run("profile/"+c.name, func(t *testing.T) {
			r := do(t, context.Background(), http.MethodPost, login, c.contentType, c.body, nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			got := e.id.lastLogin(t).Profile
			if !reflect.DeepEqual(got, c.want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(c.want)
				t.Errorf("profile %s, want %s", gj, wj)
			}
		})
	}

	long := func(s string, n int) string { return strings.Repeat(s, n) }
	bad := []struct {
		name        string
		contentType string
		body        string
		code        string
		detail      string // a substring the detail must hold, naming the field
	}{
		{"no code", jsonType, `{}`, "code_missing", "code"},
		{"empty code", jsonType, `{"code":""}`, "code_missing", "code"},
		{"null code", jsonType, `{"code":null}`, "code_missing", "code"},
		{"empty JSON body", jsonType, ``, "code_missing", "code"},
		{"empty form", formType, ``, "code_missing", "code"},
		{"malformed JSON", jsonType, `{"code":`, "invalid_request", "JSON"},
		{"trailing garbage", jsonType, `{"code":"c"} x`, "invalid_request", "JSON"},
		{"JSON array body", jsonType, `["c"]`, "invalid_request", "object"},
		{"code not a string", jsonType, `{"code":123}`, "invalid_request", "code"},
		{"oversize code", jsonType, fmt.Sprintf(`{"code":%q}`, long("c", 257)), "invalid_request", "code"},
		{"code with spaces", formType, "code=a+b", "invalid_request", "code"},
		{"oversize app", jsonType, fmt.Sprintf(`{"code":"c","app":%q}`, long("a", 65)), "invalid_request", "app"},
		{"oversize nickname", jsonType, fmt.Sprintf(`{"code":"c","nickname":%q}`, long("名", 65)), "invalid_request", "nickname"},
		{"oversize nickName in user_info", jsonType, fmt.Sprintf(`{"code":"c","user_info":{"nickName":%q}}`, long("x", 65)), "invalid_request", "user_info.nickName"},
		{"oversize city", jsonType, fmt.Sprintf(`{"code":"c","user_info":{"city":%q}}`, long("城", 65)), "invalid_request", "user_info.city"},
		{"oversize language", jsonType, fmt.Sprintf(`{"code":"c","user_info":{"language":%q}}`, long("z", 33)), "invalid_request", "user_info.language"},
		{"oversize avatar_url", jsonType, fmt.Sprintf(`{"code":"c","avatar_url":"https://a.example/%s"}`, long("p", 1024)), "invalid_request", "avatar_url"},
		{"oversize user_info string", formType, url.Values{"code": {"c"}, "user_info": {`{"nickName":"` + long(" ", 8200) + `"}`}}.Encode(), "invalid_request", "user_info"},
		{"user_info not JSON", formType, url.Values{"code": {"c"}, "user_info": {"nick"}}.Encode(), "invalid_request", "user_info"},
		{"user_info an array", jsonType, `{"code":"c","user_info":[1]}`, "invalid_request", "user_info"},
		{"nickname with a control character", jsonType, `{"code":"c","nickname":"a\u0000b"}`, "invalid_request", "nickname"},
		{"gender 3", jsonType, `{"code":"c","gender":3}`, "invalid_request", "gender"},
		{"gender text", formType, "code=c&gender=male", "invalid_request", "gender"},
		{"gender fraction", jsonType, `{"code":"c","user_info":{"gender":1.5}}`, "invalid_request", "user_info.gender"},
		{"gender bool", jsonType, `{"code":"c","gender":true}`, "invalid_request", "gender"},
		{"javascript avatar", jsonType, `{"code":"c","avatar_url":"javascript:alert(1)"}`, "invalid_request", "avatar_url"},
		{"ftp avatar", formType, "code=c&avatar_url=ftp%3A%2F%2Fa.example%2Fa.png", "invalid_request", "avatar_url"},
		{"relative avatar", jsonType, `{"code":"c","user_info":{"avatarUrl":"/a.png"}}`, "invalid_request", "user_info.avatarUrl"},
		{"malformed form", formType, "code=%zz", "invalid_request", "form"},
		{"wrong content type", "text/plain", `{"code":"c"}`, "invalid_request", "Content-Type"},
		{"no content type", "", `{"code":"c"}`, "invalid_request", "Content-Type"},
		{"oversize body", jsonType, fmt.Sprintf(`{"code":"c","pad":%q}`, long("p", 2<<20)), "invalid_request", "body"},
		{"body just over the limit", jsonType, fmt.Sprintf(`{"code":"c","pad":%q}`, long("p", 64<<10)), "invalid_request", "body"},
	}
	for _, c := range bad {
		t.Run("bad input/"+c.name, func(t *testing.T) {
			before := e.id.loginCount()
			r := do(t, context.Background(), http.MethodPost, login, c.contentType, c.body, nil)
			b := wantProblem(t, r, http.StatusBadRequest, c.code)
			if d, _ := b["detail"].(string); !strings.Contains(d, c.detail) {
				t.Errorf("detail %q does not mention %q", d, c.detail)
			}
			if e.id.loginCount() != before {
				t.Error("invalid input reached the identity service")
			}
		})
	}

	t.Run("a body just under the limit is accepted", func(t *testing.T) {
		body := `{"code":"c","pad":"` + long("p", 64<<10-len(`{"code":"c","pad":""}`)) + `"}`
		if len(body) != 64<<10 {
			t.Fatalf("test body is %d bytes", len(body))
		}
		if r := postJSON(t, login, body); r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
}

func TestErrorCodesMapToProblems(t *testing.T) {
	e := newEnv(t)
	base := e.up(nil)
	login := base + "/api/v1/auth/miniprogram/login"

	cases := []struct {
		code       api.Code
		status     int
		data       map[string]string
		retryAfter string
	}{
		{api.CodeInvalidRequest, 400, nil, ""},
		{api.CodeCodeMissing, 400, nil, ""},
		{api.CodeWechatCodeInvalid, 401, nil, ""},
		{api.CodeWechatCodeUsed, 401, nil, ""},
		{api.CodeInvalidCredentials, 401, nil, ""},
		{api.CodeTokenInvalid, 401, nil, ""},
		{api.CodeTokenExpired, 401, nil, ""},
		{api.CodeTokenRevoked, 401, nil, ""},
		{api.CodeRefreshTokenReused, 401, nil, ""},
		{api.CodeWechatNotBound, 403, map[string]string{"bind_token": "bind-abc"}, ""},
		{api.CodeForbidden, 403, nil, ""},
		{api.CodeUserDisabled, 403, nil, ""},
		{api.CodeNotFound, 404, nil, ""},
		{api.CodeQRTicketNotFound, 404, nil, ""},
		{api.CodeQRTicketExpired, 410, nil, ""},
		{api.CodeUsernameTaken, 409, nil, ""},
		{api.CodeIdentityBound, 409, nil, ""},
		{api.CodeLastIdentity, 409, nil, ""},
		{api.CodeRateLimited, 429, nil, "1"},
		{api.CodeRateLimited, 429, map[string]string{"retry_after": "7"}, "7"},
		{api.CodeWechatRateLimited, 429, nil, "60"},
		{api.CodeWechatError, 502, nil, ""},
		{api.CodeWechatUnavailable, 503, nil, ""},
		{api.CodeServiceUnavailable, 503, nil, ""},
	}
	for _, c := range cases {
		t.Run(string(c.code), func(t *testing.T) {
			e.id.setFail(&api.Error{Code: c.code, Message: "safe message for " + string(c.code), Data: c.data})
			defer e.id.setFail(nil)
			r := postJSON(t, login, `{"code":"c"}`)
			b := wantProblem(t, r, c.status, string(c.code))
			if b["detail"] != "safe message for "+string(c.code) {
				t.Errorf("detail %v, want the service's safe message", b["detail"])
			}
			if got := r.header.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			if want := c.data["bind_token"]; want != "" && b["bind_token"] != want {
				t.Errorf("bind_token %v, want %q", b["bind_token"], want)
			}
			if _, ok := b["bind_token"]; ok && c.data["bind_token"] == "" {
				t.Errorf("bind_token present without one: %s", r.raw)
			}
			if _, ok := b["retry_after"]; ok {
				t.Errorf("error data other than bind_token leaked: %s", r.raw)
			}
		})
	}

	for _, code := range []api.Code{api.CodeInternal, "some_new_code"} {
		t.Run("generic 500 for "+string(code), func(t *testing.T) {
			e.id.setFail(&api.Error{Code: code, Message: "pq: relation users does not exist at /srv/x.go:12"})
			defer e.id.setFail(nil)
			b := wantProblem(t, postJSON(t, login, `{"code":"c"}`), 500, "internal_error")
			if d, _ := b["detail"].(string); strings.Contains(d, "pq") || strings.Contains(d, "relation") {
				t.Errorf("raw error text reached the client: %q", d)
			}
		})
	}

	t.Run("session errors map too", func(t *testing.T) {
		e.se.setFail(&api.Error{Code: api.CodeUserDisabled, Message: "user disabled"})
		defer e.se.setFail(nil)
		wantProblem(t, postJSON(t, login, `{"code":"c"}`), 403, "user_disabled")
	})
}

func TestDeadServiceIsUnavailableFast(t *testing.T) {
	e := newEnv(t)
	stopIdentity := e.startIdentity()
	stopSession := e.startSession()
	base := e.gateway(nil)
	poll.Until(t, 10*time.Second, "ready", func() bool { return get(t, base+"/readyz", nil).status == http.StatusOK })
	token := e.se.token(testUserID, nil)

	stopIdentity()
	cases := []struct {
		name, method, path, contentType, body string
		header                                map[string]string
	}{
		{"login without identity", http.MethodPost, "/api/v1/auth/miniprogram/login", jsonType, `{"code":"c"}`, nil},
		{"me without identity", http.MethodGet, "/api/v1/me", "", "", map[string]string{"Authorization": "Bearer " + token}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The deadline makes a hang fail the test instead of stalling it.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			wantProblem(t, do(t, ctx, c.method, base+c.path, c.contentType, c.body, c.header), 503, "service_unavailable")
		})
	}

	t.Run("login without session", func(t *testing.T) {
		e.startIdentity()
		stopSession()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		wantProblem(t, do(t, ctx, http.MethodPost, base+"/api/v1/auth/miniprogram/login", jsonType, `{"code":"c"}`, nil), 503, "service_unavailable")
	})
}
