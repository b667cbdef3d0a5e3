package gatewaysvc_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// wantTokens checks a token response for the stub's user.
func wantTokens(t *testing.T, r response, status int, isNew bool) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["token_type"] != "Bearer" || r.body["access_token"] == nil || r.body["refresh_token"] == nil || r.body["is_new_user"] != isNew {
		t.Errorf("token response %s", r.raw)
	}
	if u, _ := r.body["user"].(map[string]any); u["id"] != testUserID {
		t.Errorf("user %v", r.body["user"])
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
}

func TestRegister(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	register := base + "/api/v1/auth/register"

	t.Run("JSON with a bind token", func(t *testing.T) {
		r := postJSON(t, register, `{"username":"alice","password":"correct horse","bind_token":"bt-123"}`)
		wantTokens(t, r, http.StatusCreated, true)
		got := last[identity.RegisterRequest](t, s, identity.SubjectRegister)
		want := identity.RegisterRequest{Username: "alice", Password: "correct horse", WeChatProof: identity.WeChatProof{BindToken: "bt-123"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("identity got %+v, want %+v", got, want)
		}
		if iss := last[session.IssueRequest](t, s, session.SubjectIssue); iss != (session.IssueRequest{UserID: testUserID, Kind: api.KindPassword}) {
			t.Errorf("issue %+v", iss)
		}
	})
	t.Run("form with a code", func(t *testing.T) {
		body := url.Values{"username": {"bob"}, "password": {"p&ss=word"}, "code": {"wx-code"}, "app": {"shop"}}.Encode()
		wantTokens(t, do(t, context.Background(), http.MethodPost, register, formType, body, nil), http.StatusCreated, true)
		got := last[identity.RegisterRequest](t, s, identity.SubjectRegister)
		if got.Password != "p&ss=word" || got.Code != "wx-code" || got.App != "shop" || got.BindToken != "" {
			t.Errorf("identity got %+v", got)
		}
	})

	invalid := []struct{ name, body, detail string }{
		{"no username", `{"password":"correct horse"}`, "username"},
		{"no password", `{"username":"alice"}`, "password"},
		{"username over 64 bytes", `{"username":"` + strings.Repeat("u", 65) + `","password":"correct horse"}`, "username"},
		{"password over 128 bytes", `{"username":"alice","password":"` + strings.Repeat("p", 129) + `"}`, "password"},
		{"both proofs", `{"username":"alice","password":"correct horse","bind_token":"b","code":"c"}`, "bind_token"},
		{"password not a string", `{"username":"alice","password":12345678}`, "password"},
		{"malformed JSON", `{"username":`, "JSON"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			before := s.count(identity.SubjectRegister)
			b := wantProblem(t, postJSON(t, register, c.body), http.StatusBadRequest, "invalid_request")
			if d, _ := b["detail"].(string); !strings.Contains(d, c.detail) {
				t.Errorf("detail %q does not name %s", d, c.detail)
			}
			if s.count(identity.SubjectRegister) != before {
				t.Error("an invalid request reached identity")
			}
		})
	}

	passthrough := []struct {
		code   api.Code
		status int
	}{
		{api.CodeUsernameTaken, 409}, {api.CodeIdentityBound, 409}, {api.CodeInvalidRequest, 400}, {api.CodeWechatCodeUsed, 401},
	}
	for _, c := range passthrough {
		t.Run("identity answers "+string(c.code), func(t *testing.T) {
			s.setFail(identity.SubjectRegister, &api.Error{Code: c.code, Message: "from identity"})
			defer s.setFail(identity.SubjectRegister, nil)
			b := wantProblem(t, postJSON(t, register, `{"username":"alice","password":"correct horse"}`), c.status, string(c.code))
			if b["detail"] != "from identity" {
				t.Errorf("detail %v", b["detail"])
			}
		})
	}
}

func TestPasswordLogin(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	login := base + "/api/v1/auth/password/login"

	t.Run("success passes the client IP", func(t *testing.T) {
		wantTokens(t, postJSON(t, login, `{"username":"alice","password":"correct horse"}`), http.StatusOK, false)
		got := last[identity.PasswordLoginRequest](t, s, identity.SubjectPasswordLogin)
		if got != (identity.PasswordLoginRequest{Username: "alice", Password: "correct horse", ClientIP: "127.0.0.1"}) {
			t.Errorf("identity got %+v", got)
		}
		if iss := last[session.IssueRequest](t, s, session.SubjectIssue); iss.Kind != api.KindPassword || iss.UserID != testUserID {
			t.Errorf("issue %+v", iss)
		}
	})
	t.Run("a forged X-Forwarded-For is ignored without trusted proxies", func(t *testing.T) {
		r := do(t, context.Background(), http.MethodPost, login, jsonType, `{"username":"alice","password":"correct horse"}`,
			map[string]string{"X-Forwarded-For": "203.0.113.9"})
		wantTokens(t, r, http.StatusOK, false)
		if got := last[identity.PasswordLoginRequest](t, s, identity.SubjectPasswordLogin); got.ClientIP != "127.0.0.1" {
			t.Errorf("client IP %q", got.ClientIP)
		}
	})
	t.Run("form body", func(t *testing.T) {
		wantTokens(t, do(t, context.Background(), http.MethodPost, login, formType, "username=alice&password=correct+horse", nil), http.StatusOK, false)
	})
	for _, c := range []struct{ name, body string }{
		{"no password", `{"username":"alice"}`},
		{"password over 128 bytes", `{"username":"alice","password":"` + strings.Repeat("p", 129) + `"}`},
		{"empty body", ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantProblem(t, postJSON(t, login, c.body), http.StatusBadRequest, "invalid_request")
		})
	}
	t.Run("wrong Content-Type", func(t *testing.T) {
		wantProblem(t, do(t, context.Background(), http.MethodPost, login, "text/plain", "alice:pw", nil), http.StatusBadRequest, "invalid_request")
	})
	for _, c := range []struct {
		err    api.Error
		status int
	}{
		{apiError("invalid_credentials", "wrong username or password"), 401},
		{apiError("user_disabled", "disabled"), 403},
	} {
		t.Run(string(c.err.Code), func(t *testing.T) {
			s.setFail(identity.SubjectPasswordLogin, &c.err)
			defer s.setFail(identity.SubjectPasswordLogin, nil)
			wantProblem(t, postJSON(t, login, `{"username":"alice","password":"guess"}`), c.status, string(c.err.Code))
		})
	}
	t.Run("identity's failed-password limit keeps its Retry-After", func(t *testing.T) {
		s.setFail(identity.SubjectPasswordLogin, &api.Error{Code: api.CodeRateLimited, Message: "too many failed attempts", Data: map[string]string{"retry_after": "900"}})
		defer s.setFail(identity.SubjectPasswordLogin, nil)
		r := postJSON(t, login, `{"username":"alice","password":"guess"}`)
		wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if r.header.Get("Retry-After") != "900" {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
	})
}

// TestPasswordMustBeUTF8: a password identity would receive as U+FFFD, not
// as sent, is refused before identity is asked, on every route taking one.
func TestPasswordMustBeUTF8(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	// Only a new password (register): logins and bind take the password
	// as it comes, so an account set before this rule still logs in.
	for _, route := range []struct{ path, subject, rest string }{
		{"/api/v1/auth/register", identity.SubjectRegister, ""},
	} {
		form := "username=alice&password=correct%FFhorse"
		js := "{\"username\":\"alice\",\"password\":\"correct\xffhorse\""
		if route.rest != "" {
			form += "&" + route.rest
			js += `,"code":"c"`
		}
		for _, c := range []struct{ name, contentType, body string }{
			{"form byte 0xFF", formType, form},
			{"JSON byte 0xFF", jsonType, js + "}"},
			{"JSON lone surrogate", jsonType, strings.Replace(js, "\xff", `\udc00`, 1) + "}"},
		} {
			t.Run(route.path+" "+c.name, func(t *testing.T) {
				before := s.count(route.subject)
				b := wantProblem(t, do(t, context.Background(), http.MethodPost, base+route.path, c.contentType, c.body, nil),
					http.StatusBadRequest, "invalid_request")
				if d, _ := b["detail"].(string); !strings.HasPrefix(d, "password:") {
					t.Errorf("detail %q does not name the password", d)
				}
				if s.count(route.subject) != before {
					t.Error("identity was asked")
				}
			})
		}
	}
}

func TestTrustedProxy(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(func(c *gatewaysvc.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	r := do(t, context.Background(), http.MethodPost, base+"/api/v1/auth/password/login", jsonType, `{"username":"alice","password":"correct horse"}`,
		map[string]string{"X-Forwarded-For": "203.0.113.9"})
	wantTokens(t, r, http.StatusOK, false)
	if got := last[identity.PasswordLoginRequest](t, s, identity.SubjectPasswordLogin); got.ClientIP != "203.0.113.9" {
		t.Errorf("client IP %q, want the forwarded one", got.ClientIP)
	}
	r = do(t, context.Background(), http.MethodPost, base+"/api/v1/auth/bind", jsonType, `{"username":"alice","password":"correct horse","code":"c"}`,
		map[string]string{"X-Forwarded-For": "203.0.113.10"})
	wantTokens(t, r, http.StatusOK, false)
	if got := last[identity.BindRequest](t, s, identity.SubjectBind); got.ClientIP != "203.0.113.10" {
		t.Errorf("bind: client IP %q, want the forwarded one", got.ClientIP)
	}
}

func TestBind(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	bind := base + "/api/v1/auth/bind"

	t.Run("bind token", func(t *testing.T) {
		wantTokens(t, postJSON(t, bind, `{"username":"alice","password":"correct horse","bind_token":"bt-1"}`), http.StatusOK, false)
		got := last[identity.BindRequest](t, s, identity.SubjectBind)
		// The client IP keys identity's failed-password limit, as for a login.
		if got != (identity.BindRequest{Username: "alice", Password: "correct horse", ClientIP: "127.0.0.1", WeChatProof: identity.WeChatProof{BindToken: "bt-1"}}) {
			t.Errorf("identity got %+v", got)
		}
	})
	t.Run("code", func(t *testing.T) {
		wantTokens(t, postJSON(t, bind, `{"username":"alice","password":"correct horse","code":"wx-code","app":"shop"}`), http.StatusOK, false)
		if got := last[identity.BindRequest](t, s, identity.SubjectBind); got.Code != "wx-code" || got.App != "shop" {
			t.Errorf("identity got %+v", got)
		}
	})
	for _, c := range []struct{ name, body, detail string }{
		{"no proof", `{"username":"alice","password":"correct horse"}`, "bind_token or code"},
		{"both proofs", `{"username":"alice","password":"correct horse","bind_token":"b","code":"c"}`, "not both"},
		{"bind token with spaces", `{"username":"alice","password":"correct horse","bind_token":"b t"}`, "bind_token"},
		{"no username", `{"password":"correct horse","bind_token":"b"}`, "username"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := wantProblem(t, postJSON(t, bind, c.body), http.StatusBadRequest, "invalid_request")
			if d, _ := b["detail"].(string); !strings.Contains(d, c.detail) {
				t.Errorf("detail %q", d)
			}
		})
	}
	t.Run("identity already bound", func(t *testing.T) {
		s.setFail(identity.SubjectBind, &api.Error{Code: api.CodeIdentityBound, Message: "bound to another account"})
		defer s.setFail(identity.SubjectBind, nil)
		wantProblem(t, postJSON(t, bind, `{"username":"alice","password":"correct horse","code":"c"}`), http.StatusConflict, "identity_already_bound")
	})
}

func TestWechatNotBoundCarriesBindToken(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	s.setFail(identity.SubjectMiniProgramLogin, &api.Error{Code: api.CodeWechatNotBound, Message: "bind or register first",
		Data: map[string]string{"bind_token": "bt-from-identity"}})
	b := wantProblem(t, postJSON(t, base+"/api/v1/auth/miniprogram/login", `{"code":"c"}`), http.StatusForbidden, "wechat_not_bound")
	if b["bind_token"] != "bt-from-identity" {
		t.Errorf("bind_token %v", b["bind_token"])
	}
	// ... and the token is what register and bind take.
	wantTokens(t, postJSON(t, base+"/api/v1/auth/register", `{"username":"alice","password":"correct horse","bind_token":"bt-from-identity"}`), http.StatusCreated, true)
}

func TestUpdateMe(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	me := base + "/api/v1/me"
	token, sub := e.userToken()
	patch := func(body string, header map[string]string) response {
		return do(t, context.Background(), http.MethodPatch, me, jsonType, body, header)
	}

	t.Run("success", func(t *testing.T) {
		r := patch(`{"nickname":"Ann B","email":"ann@example.com","date_of_birth":null}`, bearer(token))
		if r.status != http.StatusOK || r.body["id"] != sub || r.body["nickname"] != "Ann B" || r.body["email"] != "ann@example.com" {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		got := last[identity.UserUpdateRequest](t, s, identity.SubjectUserUpdate)
		want := identity.UserUpdateRequest{UserID: sub, Profile: identity.Profile{Nickname: ptr("Ann B")}, Email: ptr("ann@example.com"), DateOfBirth: ptr("")}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("identity got %+v", got)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
		}
	})
	t.Run("without a token", func(t *testing.T) {
		wantProblem(t, patch(`{"nickname":"x"}`, nil), http.StatusUnauthorized, "token_invalid")
	})
	for _, c := range []struct{ name, body, field string }{
		{"empty patch", `{}`, "nothing to update"},
		{"unknown field", `{"username":"root"}`, "username"},
		{"avatar not http", `{"avatar_url":"javascript:alert(1)"}`, "avatar_url"},
		{"gender 7", `{"gender":7}`, "gender"},
		{"bad email", `{"email":"not-an-address"}`, "email"},
		{"future birthday", `{"date_of_birth":"2999-01-01"}`, "date_of_birth"},
		{"description over 500", `{"description":"` + strings.Repeat("d", 501) + `"}`, "description"},
		{"long city", `{"city":"` + strings.Repeat("c", 65) + `"}`, "city"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.count(identity.SubjectUserUpdate)
			b := wantProblem(t, patch(c.body, bearer(token)), http.StatusBadRequest, "invalid_request")
			if d, _ := b["detail"].(string); !strings.Contains(d, c.field) {
				t.Errorf("detail %q does not name %s", d, c.field)
			}
			if s.count(identity.SubjectUserUpdate) != before {
				t.Error("an invalid patch reached identity")
			}
		})
	}
	t.Run("a long unknown field is not echoed whole", func(t *testing.T) {
		name := strings.Repeat("x", 10<<10)
		b := wantProblem(t, patch(`{"`+name+`":1}`, bearer(token)), http.StatusBadRequest, "invalid_request")
		if d, _ := b["detail"].(string); len(d) > 300 || !strings.Contains(d, `"`+name[:64]+`"…`) {
			t.Errorf("detail of %d bytes, want the name's first 64 in under 300: %.400s", len(d), d)
		}
	})
	t.Run("identity errors pass through", func(t *testing.T) {
		s.setFail(identity.SubjectUserUpdate, &api.Error{Code: api.CodeNotFound, Message: "no such user"})
		defer s.setFail(identity.SubjectUserUpdate, nil)
		wantProblem(t, patch(`{"city":"x"}`, bearer(token)), http.StatusNotFound, "not_found")
	})
}

func TestSetPhone(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	phone := base + "/api/v1/me/phone"
	token, sub := e.userToken()

	r := do(t, context.Background(), http.MethodPost, phone, jsonType, `{"code":"phone-code","app":"shop"}`, bearer(token))
	if r.status != http.StatusOK || r.body["phone_number"] != "+8613800138000" {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if got := last[identity.UserPhoneRequest](t, s, identity.SubjectUserPhone); got != (identity.UserPhoneRequest{UserID: sub, Code: "phone-code", App: "shop"}) {
		t.Errorf("identity got %+v", got)
	}
	r = do(t, context.Background(), http.MethodPost, phone, formType, "code=phone-code-2", bearer(token))
	if r.status != http.StatusOK {
		t.Errorf("form: %d %s", r.status, r.raw)
	}

	cases := []struct {
		name, body string
		header     map[string]string
		status     int
		code       string
	}{
		{"no code", `{}`, bearer(token), 400, "code_missing"},
		{"code over 256 bytes", `{"code":"` + strings.Repeat("c", 257) + `"}`, bearer(token), 400, "invalid_request"},
		{"app over 64 bytes", `{"code":"c","app":"` + strings.Repeat("a", 65) + `"}`, bearer(token), 400, "invalid_request"},
		{"no token", `{"code":"c"}`, nil, 401, "token_invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantProblem(t, do(t, context.Background(), http.MethodPost, phone, jsonType, c.body, c.header), c.status, c.code)
		})
	}
	t.Run("WeChat refuses the code", func(t *testing.T) {
		s.setFail(identity.SubjectUserPhone, &api.Error{Code: api.CodeWechatCodeInvalid, Message: "invalid code"})
		defer s.setFail(identity.SubjectUserPhone, nil)
		wantProblem(t, do(t, context.Background(), http.MethodPost, phone, jsonType, `{"code":"c"}`, bearer(token)), 401, "wechat_code_invalid")
	})
}

func TestDeleteIdentity(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	token, sub := e.userToken()
	const idn = "1d5a3e1c-2b4f-4a6d-8e9f-0a1b2c3d4e5f"
	del := func(id string, header map[string]string) response {
		return do(t, context.Background(), http.MethodDelete, base+"/api/v1/me/identities/"+id, "", "", header)
	}

	r := del(idn, bearer(token))
	if r.status != http.StatusNoContent || r.raw != "" {
		t.Fatalf("status %d: %q", r.status, r.raw)
	}
	if got := last[identity.IdentityDeleteRequest](t, s, identity.SubjectIdentityDelete); got != (identity.IdentityDeleteRequest{UserID: sub, IdentityID: idn}) {
		t.Errorf("identity got %+v", got)
	}
	t.Run("upper-case UUID is canonicalised", func(t *testing.T) {
		if r := del(strings.ToUpper(idn), bearer(token)); r.status != http.StatusNoContent {
			t.Fatalf("status %d", r.status)
		}
		if got := last[identity.IdentityDeleteRequest](t, s, identity.SubjectIdentityDelete); got.IdentityID != idn {
			t.Errorf("identity got %q", got.IdentityID)
		}
	})
	t.Run("not a UUID", func(t *testing.T) {
		wantProblem(t, del("42", bearer(token)), 400, "invalid_request")
	})
	t.Run("no token", func(t *testing.T) {
		wantProblem(t, del(idn, nil), 401, "token_invalid")
	})
	for _, c := range []struct {
		code   api.Code
		status int
	}{{api.CodeLastIdentity, 409}, {api.CodeNotFound, 404}} {
		t.Run(string(c.code), func(t *testing.T) {
			s.setFail(identity.SubjectIdentityDelete, &api.Error{Code: c.code, Message: "no"})
			defer s.setFail(identity.SubjectIdentityDelete, nil)
			wantProblem(t, del(idn, bearer(token)), c.status, string(c.code))
		})
	}
}
