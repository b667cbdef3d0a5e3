package gatewaysvc_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

func TestAdminUsers(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(func(c *gatewaysvc.Config) { c.IntrospectClients = "api:" + introspectSecret })
	admin, actor := e.userToken()
	users := base + "/api/v1/admin/users"
	post := func(url string) response {
		return do(t, context.Background(), http.MethodPost, url, "", "", bearer(admin))
	}

	t.Run("search", func(t *testing.T) {
		r := get(t, users+"?q=ann&page=2&page_size=50", bearer(admin))
		if r.status != http.StatusOK || r.body["total"] != float64(42) {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if items, _ := r.body["items"].([]any); len(items) != 2 {
			t.Errorf("items %v", r.body["items"])
		}
		if got := last[identity.AdminSearchRequest](t, s, identity.SubjectAdminUsersSearch); got != (identity.AdminSearchRequest{ActorID: actor, Q: "ann", Page: 2, PageSize: 50}) {
			t.Errorf("identity got %+v", got)
		}
	})
	t.Run("search defaults", func(t *testing.T) {
		if r := get(t, users, bearer(admin)); r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := last[identity.AdminSearchRequest](t, s, identity.SubjectAdminUsersSearch); got.Page != 1 || got.PageSize != 20 || got.Q != "" {
			t.Errorf("identity got %+v", got)
		}
	})
	t.Run("no match is an empty list, not null", func(t *testing.T) {
		r := get(t, users+"?q=nobody", bearer(admin))
		if r.status != http.StatusOK || !strings.Contains(r.raw, `"items":[]`) || r.body["total"] != float64(0) {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	for _, q := range []string{"page=0", "page=abc", "page_size=0", "page_size=101", "q=" + strings.Repeat("q", 129)} {
		t.Run("bad query "+q[:min(len(q), 16)], func(t *testing.T) {
			field, _, _ := strings.Cut(q, "=")
			b := wantProblem(t, get(t, users+"?"+q, bearer(admin)), http.StatusBadRequest, "invalid_request")
			if d, _ := b["detail"].(string); !strings.HasPrefix(d, field+":") {
				t.Errorf("detail %q does not name %s", d, field)
			}
		})
	}

	t.Run("get a user", func(t *testing.T) {
		r := get(t, users+"/"+otherUserID, bearer(admin))
		if r.status != http.StatusOK || r.body["id"] != otherUserID || r.body["identities"] == nil {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := last[identity.AdminUserRequest](t, s, identity.SubjectAdminUserGet); got != (identity.AdminUserRequest{ActorID: actor, UserID: otherUserID}) {
			t.Errorf("identity got %+v", got)
		}
	})

	// The user's token is inactive on this gateway as soon as disable has
	// answered: the stub writes no KV, so only the gateway's own view can
	// tell.
	active := func(token string) bool {
		t.Helper()
		r := introspect(t, base, token, basic("api", introspectSecret))
		if r.status != http.StatusOK {
			t.Fatalf("introspection: status %d: %s", r.status, r.raw)
		}
		return r.body["active"] == true
	}
	t.Run("disable revokes the user's sessions", func(t *testing.T) {
		victim := e.se.token(otherUserID, nil)
		if !active(victim) {
			t.Fatal("the user's token is inactive before the disable")
		}
		revokes := s.count(session.SubjectRevoke)
		r := post(users + "/" + otherUserID + "/disable")
		if r.status != http.StatusOK || r.body["disabled_at"] == nil {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := last[identity.AdminDisableRequest](t, s, identity.SubjectAdminUserDisabled); got != (identity.AdminDisableRequest{ActorID: actor, UserID: otherUserID, Disabled: true}) {
			t.Errorf("identity got %+v", got)
		}
		if s.count(session.SubjectRevoke) != revokes+1 {
			t.Fatalf("%d revokes, want one more than %d", s.count(session.SubjectRevoke), revokes)
		}
		if got := last[session.RevokeRequest](t, s, session.SubjectRevoke); got != (session.RevokeRequest{UserID: otherUserID}) {
			t.Errorf("session got %+v", got)
		}
		if active(victim) {
			t.Error("the disabled user's token is still active")
		}
		if !active(admin) {
			t.Error("another user's token became inactive")
		}
	})
	t.Run("a failed revoke is reported, so the admin retries", func(t *testing.T) {
		s.setFail(session.SubjectRevoke, &api.Error{Code: api.CodeServiceUnavailable, Message: "session busy"})
		defer s.setFail(session.SubjectRevoke, nil)
		victim, id := e.userToken()
		wantProblem(t, post(users+"/"+id+"/disable"), http.StatusServiceUnavailable, "service_unavailable")
		if !strings.Contains(e.logs.String(), "user disabled but its sessions not revoked yet") {
			t.Error("the failed revoke was not logged")
		}
		// Identity has disabled the user: this gateway refuses its tokens
		// even though the session service has not revoked them yet.
		if active(victim) {
			t.Error("the disabled user's token is still active")
		}
	})
	t.Run("revoking all of a user's sessions refuses its tokens here at once", func(t *testing.T) {
		victim, id := e.userToken()
		r := do(t, context.Background(), http.MethodDelete, users+"/"+id+"/sessions", "", "", bearer(admin))
		if r.status != http.StatusNoContent {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := last[session.RevokeRequest](t, s, session.SubjectRevoke); got != (session.RevokeRequest{UserID: id}) {
			t.Errorf("session got %+v", got)
		}
		if active(victim) {
			t.Error("the user's token is still active")
		}
	})
	t.Run("enable does not revoke", func(t *testing.T) {
		revokes := s.count(session.SubjectRevoke)
		r := post(users + "/" + otherUserID + "/enable")
		if r.status != http.StatusOK || r.body["disabled_at"] != nil {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := last[identity.AdminDisableRequest](t, s, identity.SubjectAdminUserDisabled); got.Disabled || got.UserID != otherUserID {
			t.Errorf("identity got %+v", got)
		}
		if s.count(session.SubjectRevoke) != revokes {
			t.Error("enable revoked sessions")
		}
	})

	routes := []struct{ name, method, path string }{
		{"search", http.MethodGet, "/api/v1/admin/users"},
		{"get", http.MethodGet, "/api/v1/admin/users/" + otherUserID},
		{"disable", http.MethodPost, "/api/v1/admin/users/" + otherUserID + "/disable"},
		{"enable", http.MethodPost, "/api/v1/admin/users/" + otherUserID + "/enable"},
	}
	for _, rt := range routes {
		t.Run(rt.name+": not an admin", func(t *testing.T) {
			for _, subj := range []string{identity.SubjectAdminUsersSearch, identity.SubjectAdminUserGet, identity.SubjectAdminUserDisabled} {
				s.setFail(subj, &api.Error{Code: api.CodeForbidden, Message: "admins only"})
			}
			defer func() {
				for _, subj := range []string{identity.SubjectAdminUsersSearch, identity.SubjectAdminUserGet, identity.SubjectAdminUserDisabled} {
					s.setFail(subj, nil)
				}
			}()
			revokes := s.count(session.SubjectRevoke)
			wantProblem(t, do(t, context.Background(), rt.method, base+rt.path, "", "", bearer(admin)), http.StatusForbidden, "forbidden")
			if s.count(session.SubjectRevoke) != revokes {
				t.Error("a refused disable still revoked sessions")
			}
		})
		t.Run(rt.name+": no token", func(t *testing.T) {
			wantProblem(t, do(t, context.Background(), rt.method, base+rt.path, "", "", nil), http.StatusUnauthorized, "token_invalid")
		})
	}
	for _, p := range []string{"/api/v1/admin/users/not-a-uuid", "/api/v1/admin/users/not-a-uuid/disable"} {
		t.Run("bad id "+p, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasSuffix(p, "/disable") {
				method = http.MethodPost
			}
			wantProblem(t, do(t, context.Background(), method, base+p, "", "", bearer(admin)), http.StatusBadRequest, "invalid_request")
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		s.setFail(identity.SubjectAdminUserGet, &api.Error{Code: api.CodeNotFound, Message: "no such user"})
		defer s.setFail(identity.SubjectAdminUserGet, nil)
		wantProblem(t, get(t, users+"/"+otherUserID, bearer(admin)), http.StatusNotFound, "not_found")
	})
}
