package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestServicesAsSeparateProcesses: issue 2's acceptance through the real
// binaries, each its own process, against a WeChat stand-in.
func TestServicesAsSeparateProcesses(t *testing.T) {
	p := startProcs(t)
	login := p.url("/api/v1/auth/miniprogram/login")
	p.wx.mint("code-1", standInUser{OpenID: "o_standin_user"})
	r := postJSON(t, login, map[string]any{"code": "code-1"})
	if r.status != http.StatusOK || r.body["is_new_user"] != true {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	first := userID(t, r)
	p.wx.mint("code-2", standInUser{OpenID: "o_standin_user"})
	r = postJSON(t, login, map[string]any{"code": "code-2"})
	if r.status != http.StatusOK || userID(t, r) != first || r.body["is_new_user"] != false {
		t.Fatalf("second login: %d %s", r.status, r.raw)
	}
	wantProblem(t, postJSON(t, login, map[string]any{"code": "code-2"}), http.StatusUnauthorized, "wechat_code_invalid")

	jwks := do(t, http.MethodGet, p.url("/.well-known/jwks.json"), "", "", nil)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks.raw), &set); jwks.status != 200 || err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %d %s", jwks.status, jwks.raw)
	}

	// Identity dies: logins get 503 service_unavailable quickly, not a hang.
	p.kill("identity")
	p.wx.mint("code-3", standInUser{OpenID: "o_standin_user"})
	began := time.Now()
	wantProblem(t, postJSON(t, login, map[string]any{"code": "code-3"}), http.StatusServiceUnavailable, "service_unavailable")
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("503 took %s with identity down, want a few seconds at most", took)
	}
	// Back again: the same code now works, nothing else restarted.
	p.start("identity")
	until(t, 30*time.Second, "identity back", func() bool {
		r = postJSON(t, login, map[string]any{"code": "code-3"})
		if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
			t.Fatalf("while identity restarts: %d %s", r.status, r.raw)
		}
		return r.status == http.StatusOK
	})
	if userID(t, r) != first {
		t.Fatalf("after identity restart: %s", r.raw)
	}
}
