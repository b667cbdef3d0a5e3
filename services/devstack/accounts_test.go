package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAccountsProcesses is issue 4's acceptance against separate processes
// and a WeChat stand-in, with auto-register off.
func TestAccountsProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_AUTO_REGISTER=false")
	register := func(body map[string]any) response { return postJSON(t, p.url("/api/v1/auth/register"), body) }
	pwLogin := func(user, pass string) response {
		return postJSON(t, p.url("/api/v1/auth/password/login"), map[string]any{"username": user, "password": pass})
	}
	wxLogin := func(code string) response {
		return postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": code})
	}
	const pass = "Correct-Horse-9"

	r := register(map[string]any{"username": "alice", "password": pass})
	if r.status != http.StatusCreated || str(r, "access_token") == "" {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	alice := userID(t, r)
	aliceToken := str(r, "access_token")
	wantProblem(t, register(map[string]any{"username": "alice", "password": pass}), http.StatusConflict, "username_taken")
	for _, weak := range []string{"short", "aaaaaaaaaaaa"} {
		wantProblem(t, register(map[string]any{"username": "weakling", "password": weak}), http.StatusBadRequest, "invalid_request")
	}
	wantProblem(t, register(map[string]any{"username": "wx_fake", "password": pass}), http.StatusBadRequest, "invalid_request")

	if r := pwLogin("alice", pass); r.status != http.StatusOK || userID(t, r) != alice {
		t.Fatalf("password login: %d %s", r.status, r.raw)
	}
	wrong, unknown := pwLogin("alice", pass+"x"), pwLogin("nobody", pass)
	wantProblem(t, wrong, http.StatusUnauthorized, "invalid_credentials")
	wantProblem(t, unknown, http.StatusUnauthorized, "invalid_credentials")
	if wrong.body["detail"] != unknown.body["detail"] {
		t.Errorf("wrong password and unknown user answer differently: %q vs %q", wrong.body["detail"], unknown.body["detail"])
	}

	// An unknown WeChat user gets a bind token instead of an account.
	p.wx.mint("c-alice-1", standInUser{OpenID: "o_alice_wx"})
	r = wxLogin("c-alice-1")
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	bindToken := str(r, "bind_token")
	if bindToken == "" {
		t.Fatalf("wechat_not_bound without bind_token: %s", r.raw)
	}
	bind := func(body map[string]any) response { return postJSON(t, p.url("/api/v1/auth/bind"), body) }
	wantProblem(t, bind(map[string]any{"username": "alice", "password": "nope-nope-1", "bind_token": bindToken}), http.StatusUnauthorized, "invalid_credentials")
	r = bind(map[string]any{"username": "alice", "password": pass, "bind_token": bindToken})
	if r.status != http.StatusOK || userID(t, r) != alice {
		t.Fatalf("bind with bind_token: %d %s", r.status, r.raw)
	}
	p.wx.mint("c-alice-2", standInUser{OpenID: "o_alice_wx"})
	if r := wxLogin("c-alice-2"); r.status != http.StatusOK || userID(t, r) != alice {
		t.Fatalf("WeChat login after bind: %d %s", r.status, r.raw)
	}

	// Seed 004: bind with a fresh wx.login code.
	p.wx.mint("c-alice-web", standInUser{OpenID: "o_alice_second"})
	if r := bind(map[string]any{"username": "alice", "password": pass, "code": "c-alice-web"}); r.status != http.StatusOK || userID(t, r) != alice {
		t.Fatalf("bind with code: %d %s", r.status, r.raw)
	}

	// Someone else's identity cannot be bound.
	if r := register(map[string]any{"username": "bob", "password": pass}); r.status != http.StatusCreated {
		t.Fatalf("register bob: %d %s", r.status, r.raw)
	}
	p.wx.mint("c-steal", standInUser{OpenID: "o_alice_wx"})
	wantProblem(t, bind(map[string]any{"username": "bob", "password": pass, "code": "c-steal"}), http.StatusConflict, "identity_already_bound")
	bobToken := str(pwLogin("bob", pass), "access_token")

	// Register straight from a bind token.
	p.wx.mint("c-carol", standInUser{OpenID: "o_carol_wx"})
	r = wxLogin("c-carol")
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	r = register(map[string]any{"username": "carol", "password": pass, "bind_token": str(r, "bind_token")})
	if r.status != http.StatusCreated {
		t.Fatalf("register with bind_token: %d %s", r.status, r.raw)
	}
	carol := userID(t, r)
	p.wx.mint("c-carol-2", standInUser{OpenID: "o_carol_wx"})
	if r := wxLogin("c-carol-2"); r.status != http.StatusOK || userID(t, r) != carol {
		t.Fatalf("carol's WeChat login: %d %s", r.status, r.raw)
	}

	// A website login of an unknown user with auto-register off: the poller
	// (and only the poller) gets a bind token to register with.
	ticket, pollToken := createTicket(t, p)
	p.wx.mint("web-dave", standInUser{OpenID: "o_dave_web", Nickname: "Dave"})
	if page := callback(t, p, url.Values{"code": {"web-dave"}, "state": {ticket}}); page.status != http.StatusOK {
		t.Fatalf("callback for an unknown user: %d %s", page.status, page.raw)
	}
	if r := poll(t, p, ticket, "wrong"); str(r, "bind_token") != "" {
		t.Fatalf("a wrong poll token got the bind token: %s", r.raw)
	}
	r = poll(t, p, ticket, pollToken)
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	// Whose WeChat it is, from WeChat's userinfo through identity and the
	// ticket: the person sees it before binding.
	if str(r, "nickname") != "Dave" || str(r, "avatar_url") != "https://example.com/h.png" {
		t.Errorf("not_bound poll answer %s: want the WeChat nickname and avatar", r.raw)
	}
	r = register(map[string]any{"username": "dave", "password": pass, "bind_token": str(r, "bind_token")})
	if r.status != http.StatusCreated {
		t.Fatalf("register with the website's bind_token: %d %s", r.status, r.raw)
	}
	dave := userID(t, r)
	ticket, pollToken = createTicket(t, p)
	p.wx.mint("web-dave-2", standInUser{OpenID: "o_dave_web"})
	callback(t, p, url.Values{"code": {"web-dave-2"}, "state": {ticket}})
	if r := poll(t, p, ticket, pollToken); r.status != http.StatusOK || userID(t, r) != dave {
		t.Fatalf("dave's next website login: %d %s", r.status, r.raw)
	}

	// Profile.
	patch := func(body string) response {
		return do(t, http.MethodPatch, p.url("/api/v1/me"), "application/json", body, bearer(aliceToken))
	}
	if r := patch(`{"nickname":"Alice A.","city":"Hangzhou","gender":2}`); r.status != http.StatusOK || r.body["nickname"] != "Alice A." || r.body["city"] != "Hangzhou" {
		t.Fatalf("PATCH /me: %d %s", r.status, r.raw)
	}
	for _, bad := range []string{`{"gender":5}`, `{"avatar_url":"ftp://x/y.png"}`, `{"email":"not-an-email"}`, `{"nickname":"` + strings.Repeat("n", 200) + `"}`} {
		wantProblem(t, patch(bad), http.StatusBadRequest, "invalid_request")
	}
	me := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(aliceToken))
	ids, _ := me.body["identities"].([]any)
	if me.status != http.StatusOK || len(ids) != 2 {
		t.Fatalf("/me identities: %d %s", me.status, me.raw)
	}
	for _, secret := range []string{"session_key", "c3RhbmRpbi1rZXktMTIzNA==", "password"} {
		if strings.Contains(me.raw, secret) {
			t.Errorf("/me shows %q: %s", secret, me.raw)
		}
	}

	// Phone number.
	p.wx.mintPhone("phone-1", "13800138000")
	r = postJSON2(t, p.url("/api/v1/me/phone"), map[string]any{"code": "phone-1"}, bearer(aliceToken))
	if r.status != http.StatusOK || !strings.Contains(str(r, "phone_number"), "13800138000") {
		t.Fatalf("/me/phone: %d %s", r.status, r.raw)
	}

	// Admin: granted by the CLI, then searches by openid and by phone.
	p.grantAdmin("alice")
	for _, q := range []string{"o_alice_wx", "13800138000"} {
		r := do(t, http.MethodGet, p.url("/api/v1/admin/users?q="+q), "", "", bearer(aliceToken))
		items, _ := r.body["items"].([]any)
		if r.status != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["id"] != alice {
			t.Fatalf("admin search %q: %d %s", q, r.status, r.raw)
		}
	}
	wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/admin/users?q=alice"), "", "", bearer(bobToken)), http.StatusForbidden, "forbidden")
}
