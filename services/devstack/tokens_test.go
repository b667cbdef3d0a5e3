package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestTokenLifecycleProcesses is issue 5's acceptance through HTTP against
// separate processes: refresh rotation, reuse detection, logout, expiry.
func TestTokenLifecycleProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_ACCESS_TTL=3s")
	login := func() response { return p.login("o_tokens") }
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

// TestRefreshDefencesProcesses is issue 9's refresh acceptance through HTTP
// against separate processes and a real Postgres: an earlier refresh token,
// however old, revokes its family; a refresh never proceeds without identity
// having vouched for the user, and never for a disabled one.
func TestRefreshDefencesProcesses(t *testing.T) {
	p := startProcs(t)
	const pass = "Correct-Horse-9"
	refresh := func(tok string) response {
		return postJSON(t, p.url("/api/v1/auth/refresh"), map[string]any{"refresh_token": tok})
	}
	me := func(access string) response {
		return do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(access))
	}
	register := func(name string) response {
		t.Helper()
		r := postJSON(t, p.url("/api/v1/auth/register"), map[string]any{"username": name, "password": pass})
		if r.status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", name, r.status, r.raw)
		}
		return r
	}
	admin := register("refresh_admin")
	adminID, adminToken := userID(t, admin), str(admin, "access_token")
	p.grantAdmin("refresh_admin")
	// A refresh token naming a real user but no family: 401 once identity
	// and session both answer, 503 while either is away. Spends nothing.
	probe := adminID + ".probe"
	backUp := func(what string) {
		t.Helper()
		until(t, 30*time.Second, what+" to answer again", func() bool {
			r := refresh(probe)
			return r.status == http.StatusUnauthorized && r.body["code"] == "token_invalid"
		})
	}

	t.Run("the first of 41 refresh tokens revokes the newest", func(t *testing.T) {
		r := register("refresh_rotator")
		first, tok, access := str(r, "refresh_token"), str(r, "refresh_token"), str(r, "access_token")
		for i := range 40 {
			next := refresh(tok)
			if next.status != http.StatusOK {
				t.Fatalf("rotation %d: %d %s", i+1, next.status, next.raw)
			}
			tok, access = str(next, "refresh_token"), str(next, "access_token")
		}
		if m := me(access); m.status != http.StatusOK {
			t.Fatalf("newest access token refused: %d %s", m.status, m.raw)
		}
		wantProblem(t, refresh(first), http.StatusUnauthorized, "refresh_token_reused")
		wantProblem(t, refresh(tok), http.StatusUnauthorized, "token_revoked")
		until(t, 10*time.Second, "the family's access token to be refused", func() bool {
			m := me(access)
			if m.status == http.StatusOK {
				return false
			}
			wantProblem(t, m, http.StatusUnauthorized, "token_revoked")
			return true
		})
	})

	t.Run("identity away: 503, and the token still works after", func(t *testing.T) {
		tok := str(register("refresh_patient"), "refresh_token")
		p.terminate("identity")
		wantProblem(t, refresh(tok), http.StatusServiceUnavailable, "service_unavailable")
		p.start("identity")
		backUp("identity")
		if r := refresh(tok); r.status != http.StatusOK {
			t.Fatalf("refresh after identity came back: %d %s", r.status, r.raw)
		}
	})

	t.Run("a disabled user whose revoke failed cannot refresh, nor after re-enable", func(t *testing.T) {
		r := register("refresh_disabled")
		id, tok, access := userID(t, r), str(r, "refresh_token"), str(r, "access_token")
		disable := p.url("/api/v1/admin/users/" + id + "/disable")
		// Session away: identity marks the user disabled, the revoke fails.
		p.terminate("session")
		if d := postJSON2(t, disable, map[string]any{}, bearer(adminToken)); d.status != http.StatusServiceUnavailable {
			t.Fatalf("disable with session away: %d %s, want 503", d.status, d.raw)
		}
		// Session recorded no revocation, but this gateway saw the disable:
		// it refuses the user's token already.
		wantProblem(t, me(access), http.StatusUnauthorized, "token_revoked")
		p.start("session")
		backUp("session")
		wantProblem(t, refresh(tok), http.StatusForbidden, "user_disabled")
		// The refusal revoked the user's sessions in KV: a restarted
		// gateway, which knows only KV's view, refuses the token too.
		p.terminate("gateway")
		p.start("gateway")
		if err := waitReady(context.Background(), p.url("/readyz"), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		until(t, 10*time.Second, "the disabled user's access token to be refused", func() bool {
			return me(access).status == http.StatusUnauthorized
		})
		enable := postJSON2(t, p.url("/api/v1/admin/users/"+id+"/enable"), map[string]any{}, bearer(adminToken))
		if enable.status != http.StatusOK {
			t.Fatalf("enable: %d %s", enable.status, enable.raw)
		}
		// Re-enabling lets the user log in again; it does not resurrect sessions.
		wantProblem(t, refresh(tok), http.StatusUnauthorized, "token_revoked")
	})
}
