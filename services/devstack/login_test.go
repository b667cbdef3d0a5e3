package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func TestMiniProgramLoginEndToEnd(t *testing.T) {
	st := startStack(t)
	login := st.GatewayURL + "/api/v1/auth/miniprogram/login"

	var firstID, accessToken string
	t.Run("first login creates the user", func(t *testing.T) {
		code := st.mint(t, fakewechat.User{OpenID: "o_alice_e2e", Nickname: "ignored by jscode2session"})
		r := postJSON(t, login, map[string]any{"code": code, "user_info": map[string]any{"nickName": "Alice", "gender": 2, "city": "Shenzhen"}})
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
		u := r.body["user"].(map[string]any)
		if u["nickname"] != "Alice" || u["gender"] != float64(2) || u["city"] != "Shenzhen" {
			t.Errorf("profile not mapped: %v", u)
		}
		if name, _ := u["username"].(string); !strings.HasPrefix(name, "wx_") || strings.Contains(name, "Alice") {
			t.Errorf("username %q: want wx_ + hash, never the nickname", name)
		}
		firstID = userID(t, r)
		accessToken, _ = r.body["access_token"].(string)
	})

	t.Run("second login of the same openid is the same user", func(t *testing.T) {
		// Form-encoded, with user_info as the raw JSON string wx.getUserInfo's rawData gives.
		form := url.Values{"code": {st.mint(t, fakewechat.User{OpenID: "o_alice_e2e"})}, "user_info": {`{"nickName":"Alice 2","avatarUrl":"https://example.com/a.png"}`}}
		r := do(t, http.MethodPost, login, "application/x-www-form-urlencoded", form.Encode(), nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := userID(t, r); got != firstID {
			t.Fatalf("second login user %s, first %s", got, firstID)
		}
		u := r.body["user"].(map[string]any)
		if r.body["is_new_user"] != false || u["nickname"] != "Alice 2" || u["city"] != "Shenzhen" {
			t.Errorf("want returning user with updated nickname and kept city: %s", r.raw)
		}
	})

	t.Run("me with the access token", func(t *testing.T) {
		r := do(t, http.MethodGet, st.GatewayURL+"/api/v1/me", "", "", map[string]string{"Authorization": "Bearer " + accessToken})
		if r.status != http.StatusOK || r.body["id"] != firstID {
			t.Fatalf("GET /me: %d %s", r.status, r.raw)
		}
		ids, _ := r.body["identities"].([]any)
		if len(ids) != 1 {
			t.Fatalf("want one identity, got %s", r.raw)
		}
		r = do(t, http.MethodGet, st.GatewayURL+"/api/v1/me", "", "", map[string]string{"Authorization": "Bearer " + accessToken + "x"})
		wantProblem(t, r, http.StatusUnauthorized, "token_invalid")
	})

	t.Run("errors", func(t *testing.T) {
		used := st.mint(t, fakewechat.User{})
		if r := postJSON(t, login, map[string]any{"code": used}); r.status != http.StatusOK {
			t.Fatalf("setup login: %d %s", r.status, r.raw)
		}
		cases := []struct {
			name        string
			contentType string
			body        string
			fail        int // errcode the fake answers next, 0 for none
			status      int
			code        string
		}{
			{"reused code", "application/json", fmt.Sprintf(`{"code":%q}`, used), 0, 401, "wechat_code_used"},
			{"unknown code", "application/json", `{"code":"no-such-code"}`, 0, 401, "wechat_code_invalid"},
			{"missing code", "application/json", `{}`, 0, 400, "code_missing"},
			{"empty form", "application/x-www-form-urlencoded", ``, 0, 400, "code_missing"},
			{"malformed JSON", "application/json", `{"code":`, 0, 400, "invalid_request"},
			{"oversize code", "application/json", fmt.Sprintf(`{"code":%q}`, strings.Repeat("c", 4096)), 0, 400, "invalid_request"},
			{"oversize nickname", "application/json", fmt.Sprintf(`{"code":"x","nickname":%q}`, strings.Repeat("名", 500)), 0, 400, "invalid_request"},
			{"oversize body", "application/json", fmt.Sprintf(`{"code":"x","pad":%q}`, strings.Repeat("p", 2<<20)), 0, 400, "invalid_request"},
			{"WeChat busy", "application/json", "", -1, 503, "wechat_unavailable"},
			{"WeChat minute quota", "application/json", "", 45011, 429, "wechat_rate_limited"},
			{"WeChat blocked user", "application/json", "", 40226, 502, "wechat_error"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				body := c.body
				if c.fail != 0 {
					body = fmt.Sprintf(`{"code":%q}`, st.mint(t, fakewechat.User{}))
					st.Fake.FailNext("/sns/jscode2session", c.fail, 1)
				}
				wantProblem(t, do(t, http.MethodPost, login, c.contentType, body, nil), c.status, c.code)
			})
		}
	})

	t.Run("50 concurrent first logins of one openid make one user", func(t *testing.T) {
		const n = 50
		codes := make([]string, n)
		for i := range codes {
			codes[i] = st.mint(t, fakewechat.User{OpenID: "o_concurrent_e2e"})
		}
		ids := make([]string, n)
		newUsers := make([]bool, n)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := postJSON(t, login, map[string]any{"code": codes[i]})
				if r.status != http.StatusOK {
					t.Errorf("login %d: %d %s", i, r.status, r.raw)
					return
				}
				ids[i] = userID(t, r)
				newUsers[i] = r.body["is_new_user"] == true
			}()
		}
		wg.Wait()
		news := 0
		for i := range ids {
			if ids[i] != ids[0] {
				t.Fatalf("login %d got user %s, login 0 got %s", i, ids[i], ids[0])
			}
			if newUsers[i] {
				news++
			}
		}
		if news != 1 {
			t.Errorf("%d logins said is_new_user, want exactly 1", news)
		}
		db := sqlx.MustOpen("postgres", st.dsn)
		defer db.Close()
		var users, identities int
		db.QueryRow(`SELECT count(*) FROM users u JOIN identities i ON i.user_id = u.id WHERE i.openid = 'o_concurrent_e2e'`).Scan(&users)
		db.QueryRow(`SELECT count(*) FROM identities WHERE openid = 'o_concurrent_e2e'`).Scan(&identities)
		if users != 1 || identities != 1 {
			t.Fatalf("rows: users %d identities %d, want 1 and 1", users, identities)
		}
	})

	t.Run("session_key appears in no response and no log line", func(t *testing.T) {
		code := st.mint(t, fakewechat.User{OpenID: "o_secret_e2e"})
		r := postJSON(t, login, map[string]any{"code": code})
		if r.status != http.StatusOK {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		db := sqlx.MustOpen("postgres", st.dsn)
		defer db.Close()
		var keys []string
		if err := db.Select(&keys, `SELECT session_key FROM identities WHERE session_key IS NOT NULL AND session_key <> ''`); err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Fatal("no session_key stored: identity should keep it")
		}
		logs := st.logs.String()
		for _, k := range keys {
			if strings.Contains(r.raw, k) || strings.Contains(logs, k) {
				t.Fatalf("a session_key leaked into a response or a log line")
			}
		}
		for _, secret := range []string{devMiniProgramSecret, devWebSecret} {
			if strings.Contains(logs, secret) {
				t.Fatalf("an app secret leaked into the logs")
			}
		}
		if strings.Contains(logs, code) {
			t.Fatalf("a WeChat code leaked into the logs")
		}
	})
}
