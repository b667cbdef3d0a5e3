package main

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestTokenLifecycleProcesses is issue 5's acceptance through HTTP against
// separate processes: refresh rotation, reuse detection, logout, expiry.
func TestTokenLifecycleProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_ACCESS_TTL=3s")
	n := 0
	login := func() response {
		t.Helper()
		n++
		code := "tok-code-" + string(rune('a'+n))
		p.wx.mint(code, standInUser{OpenID: "o_tokens"})
		r := postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": code})
		if r.status != http.StatusOK {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		return r
	}
	refresh := func(tok string) response {
		return postJSON(t, p.url("/api/v1/auth/refresh"), map[string]any{"refresh_token": tok})
	}
	me := func(access string) response {
		return do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(access))
	}

	t.Run("access token expires", func(t *testing.T) {
		r := login()
		if got := r.body["expires_in"]; got != float64(3) {
			t.Fatalf("expires_in = %v, want 3", got)
		}
		access := str(r, "access_token")
		if m := me(access); m.status != http.StatusOK {
			t.Fatalf("fresh token refused: %d %s", m.status, m.raw)
		}
		until(t, 75*time.Second, "the access token to lapse", func() bool {
			m := me(access)
			if m.status == http.StatusOK {
				return false
			}
			wantProblem(t, m, http.StatusUnauthorized, "token_expired")
			return true
		})
	})

	t.Run("refresh rotates and reuse kills the family", func(t *testing.T) {
		r := login()
		first := str(r, "refresh_token")
		r2 := refresh(first)
		if r2.status != http.StatusOK || str(r2, "refresh_token") == "" || str(r2, "refresh_token") == first {
			t.Fatalf("refresh: %d %s", r2.status, r2.raw)
		}
		if userID(t, r2) != userID(t, r) || r2.body["is_new_user"] != false {
			t.Errorf("refresh answer lacks the login's user: %s", r2.raw)
		}
		second, access2 := str(r2, "refresh_token"), str(r2, "access_token")
		if m := me(access2); m.status != http.StatusOK {
			t.Fatalf("refreshed access token refused: %d %s", m.status, m.raw)
		}
		wantProblem(t, refresh(first), http.StatusUnauthorized, "refresh_token_reused")
		if r := refresh(second); r.status != http.StatusUnauthorized {
			t.Fatalf("newer refresh token of a reused family still works: %d %s", r.status, r.raw)
		}
		if m := me(access2); m.status != http.StatusUnauthorized {
			t.Fatalf("access token of a reused family still works: %d %s", m.status, m.raw)
		}
		// An access token is never a refresh token.
		if r := refresh(str(login(), "access_token")); r.status == http.StatusOK || r.status >= 500 {
			t.Fatalf("access token as refresh token: %d %s, want a 4xx", r.status, r.raw)
		}
	})

	t.Run("concurrent refreshes do not fork a family", func(t *testing.T) {
		tok := str(login(), "refresh_token")
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := refresh(tok); r.status == http.StatusOK {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins > 1 {
			t.Fatalf("%d of 8 concurrent refreshes succeeded, want at most 1", wins)
		}
	})

	t.Run("logout kills the access token at once", func(t *testing.T) {
		r := login()
		access := str(r, "access_token")
		out := postJSON2(t, p.url("/api/v1/auth/logout"), map[string]any{"refresh_token": str(r, "refresh_token")}, bearer(access))
		if out.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", out.status, out.raw)
		}
		wantProblem(t, me(access), http.StatusUnauthorized, "token_revoked")
		if r := refresh(str(r, "refresh_token")); r.status != http.StatusUnauthorized {
			t.Fatalf("refresh after logout: %d %s", r.status, r.raw)
		}
	})
}
