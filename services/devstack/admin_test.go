package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// TestAdminConsoleProcesses is issue 12's API acceptance against separate
// processes: admin-only everywhere, stats, a user's sessions and revoking
// one, the audit log, admin grant/revoke, and the search.
func TestAdminConsoleProcesses(t *testing.T) {
	p := startProcs(t)
	const pass = "Correct-Horse-9"
	// passwordCall registers or logs in by password, wanting status.
	passwordCall := func(path string, status int) func(name string) response {
		return func(name string) response {
			t.Helper()
			r := postJSON(t, p.url(path), map[string]any{"username": name, "password": pass})
			if r.status != status {
				t.Fatalf("%s %s: %d %s", path, name, r.status, r.raw)
			}
			return r
		}
	}
	register := passwordCall("/api/v1/auth/register", http.StatusCreated)
	pwLogin := passwordCall("/api/v1/auth/password/login", http.StatusOK)
	admin := register("console_admin")
	adminID, adminToken := userID(t, admin), str(admin, "access_token")
	p.grantAdmin("console_admin")
	plain := register("console_plain")
	plainID, plainToken := userID(t, plain), str(plain, "access_token")
	asAdmin := func(method, path string) response {
		t.Helper()
		return do(t, method, p.url(path), "", "", bearer(adminToken))
	}

	// A WeChat user with a unionid and a nickname to search for.
	p.wx.mint("console-wx-1", standInUser{OpenID: "o_console_wx", UnionID: "u_console_union_42"})
	wx := postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": "console-wx-1", "nickname": "Zhang Sanfeng 张三丰"})
	if wx.status != http.StatusOK {
		t.Fatalf("mini-program login: %d %s", wx.status, wx.raw)
	}
	wxID := userID(t, wx)

	t.Run("a normal user gets 403 from every admin endpoint", func(t *testing.T) {
		// Every admin operation of the published OpenAPI document, so a new
		// endpoint is walked as soon as it is documented (and a route test
		// keeps routes and document in step).
		doc := do(t, http.MethodGet, p.url("/openapi.json"), "", "", nil)
		var spec struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		if doc.status != http.StatusOK || json.Unmarshal([]byte(doc.raw), &spec) != nil {
			t.Fatalf("/openapi.json: %d", doc.status)
		}
		var ops []string
		for path, methods := range spec.Paths {
			if !strings.HasPrefix(path, "/api/v1/admin/") && path != "/api/v1/admin" {
				continue
			}
			for m := range methods {
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
		sort.Strings(ops)
		if len(ops) < 11 {
			t.Fatalf("only %d admin operations documented: %v", len(ops), ops)
		}
		for _, op := range ops {
			method, path, _ := strings.Cut(op, " ")
			path = strings.NewReplacer("{id}", adminID, "{sid}", uuid.NewString()).Replace(path)
			r := do(t, method, p.url(path), "", "", bearer(plainToken))
			if r.status != http.StatusForbidden || r.body["code"] != "forbidden" {
				t.Errorf("%s as a normal user: %d %s, want 403 forbidden", op, r.status, r.raw)
			}
		}
		// And nothing without a token at all.
		if r := do(t, http.MethodGet, p.url("/api/v1/admin/stats"), "", "", nil); r.status != http.StatusUnauthorized {
			t.Errorf("stats without a token: %d %s", r.status, r.raw)
		}
	})

	t.Run("stats count the users created and their logins", func(t *testing.T) {
		pwLogin("console_plain")
		var st map[string]any
		// The logins are counted as the outbox relay publishes them.
		until(t, 10*time.Second, "the logins to be counted", func() bool {
			r := asAdmin(http.MethodGet, "/api/v1/admin/stats")
			if r.status != http.StatusOK {
				t.Fatalf("stats: %d %s", r.status, r.raw)
			}
			st = r.body
			logins, _ := st["logins_24h"].(map[string]any)
			// register ×2 and one password login; one mini-program login.
			return logins["password"] == 3.0 && logins["miniprogram"] == 1.0
		})
		for k, want := range map[string]float64{"users_total": 3, "users_new_24h": 3, "users_new_7d": 3, "users_disabled": 0} {
			if st[k] != want {
				t.Errorf("stats %s = %v, want %v (%v)", k, st[k], want, st)
			}
		}
		logins, _ := st["logins_24h"].(map[string]any)
		for _, kind := range []string{"miniprogram", "web", "officialaccount", "app", "password"} {
			if _, ok := logins[kind]; !ok {
				t.Errorf("logins_24h lacks %s: %v", kind, logins)
			}
		}
	})

	t.Run("revoking one of two sessions kills it and only it", func(t *testing.T) {
		register("console_two")
		one, two := pwLogin("console_two"), pwLogin("console_two")
		twoID := userID(t, one)
		// register made a third session: revoke it out of the way first, by
		// listing and checking all three are there.
		r := asAdmin(http.MethodGet, "/api/v1/admin/users/"+twoID+"/sessions")
		items, _ := r.body["items"].([]any)
		if r.status != http.StatusOK || len(items) != 3 {
			t.Fatalf("sessions of a user with three logins: %d %s", r.status, r.raw)
		}
		for _, it := range items {
			s := it.(map[string]any)
			for _, k := range []string{"id", "kind", "client_id", "created_at", "last_used_at", "expires_at"} {
				if s[k] == nil || s[k] == "" {
					t.Errorf("session lacks %s: %v", k, s)
				}
			}
			if s["kind"] != "password" || s["client_id"] != "wxlogin" {
				t.Errorf("session kind/client: %v", s)
			}
		}
		sidOf := func(tok string) string {
			t.Helper()
			parts := strings.Split(tok, ".")
			var claims struct {
				SID string `json:"sid"`
			}
			raw, err := base64.RawURLEncoding.DecodeString(parts[1])
			if err != nil || json.Unmarshal(raw, &claims) != nil || claims.SID == "" {
				t.Fatalf("no sid in the access token: %v", err)
			}
			return claims.SID
		}
		sidOne, sidTwo := sidOf(str(one, "access_token")), sidOf(str(two, "access_token"))
		ids := map[string]bool{}
		for _, it := range items {
			ids[it.(map[string]any)["id"].(string)] = true
		}
		if !ids[sidOne] || !ids[sidTwo] {
			t.Fatalf("listed sessions %v lack the logins' sids %s, %s", ids, sidOne, sidTwo)
		}
		for sid := range ids {
			if sid != sidOne && sid != sidTwo {
				if r := asAdmin(http.MethodDelete, "/api/v1/admin/users/"+twoID+"/sessions/"+sid); r.status != http.StatusNoContent {
					t.Fatalf("revoke the register session: %d %s", r.status, r.raw)
				}
			}
		}
		r = asAdmin(http.MethodGet, "/api/v1/admin/users/"+twoID+"/sessions")
		if items, _ := r.body["items"].([]any); len(items) != 2 {
			t.Fatalf("a user with two sessions lists %d: %s", len(items), r.raw)
		}

		if r := asAdmin(http.MethodDelete, "/api/v1/admin/users/"+twoID+"/sessions/"+sidOne); r.status != http.StatusNoContent {
			t.Fatalf("revoke session one: %d %s", r.status, r.raw)
		}
		wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(one, "access_token"))), http.StatusUnauthorized, "token_revoked")
		if r := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(two, "access_token"))); r.status != http.StatusOK {
			t.Fatalf("the other session's access token: %d %s", r.status, r.raw)
		}
		wantProblem(t, postJSON(t, p.url("/api/v1/auth/refresh"), map[string]any{"refresh_token": str(one, "refresh_token")}),
			http.StatusUnauthorized, "token_revoked")
		if r := postJSON(t, p.url("/api/v1/auth/refresh"), map[string]any{"refresh_token": str(two, "refresh_token")}); r.status != http.StatusOK {
			t.Fatalf("the other session's refresh: %d %s", r.status, r.raw)
		}
		r = asAdmin(http.MethodGet, "/api/v1/admin/users/"+twoID+"/sessions")
		if items, _ := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != sidTwo {
			t.Fatalf("after revoking one: %s", r.raw)
		}
		// Another user's session, an unknown one: 404, nothing revoked.
		wantProblem(t, asAdmin(http.MethodDelete, "/api/v1/admin/users/"+plainID+"/sessions/"+sidTwo), http.StatusNotFound, "not_found")
		wantProblem(t, asAdmin(http.MethodDelete, "/api/v1/admin/users/"+twoID+"/sessions/not-a-uuid"), http.StatusBadRequest, "invalid_request")
		if r := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(two, "access_token"))); r.status != http.StatusOK {
			t.Fatalf("the other session after a refused revoke: %d %s", r.status, r.raw)
		}
		audit := asAdmin(http.MethodGet, "/api/v1/admin/audit?action=session.revoke&target="+twoID)
		if items, _ := audit.body["items"].([]any); audit.status != http.StatusOK || len(items) != 2 {
			t.Fatalf("session revocations in the audit log: %d %s", audit.status, audit.raw)
		}
	})

	t.Run("revoking all of a user's sessions ends them and leaves the account enabled", func(t *testing.T) {
		register("console_three")
		one, two := pwLogin("console_three"), pwLogin("console_three")
		id := userID(t, one)
		if r := asAdmin(http.MethodDelete, "/api/v1/admin/users/"+id+"/sessions"); r.status != http.StatusNoContent {
			t.Fatalf("revoke all: %d %s", r.status, r.raw)
		}
		for _, s := range []response{one, two} {
			wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(s, "access_token"))), http.StatusUnauthorized, "token_revoked")
			if r := postJSON(t, p.url("/api/v1/auth/refresh"), map[string]any{"refresh_token": str(s, "refresh_token")}); r.status != http.StatusUnauthorized {
				t.Fatalf("refresh of a revoked session: %d %s", r.status, r.raw)
			}
		}
		if r := asAdmin(http.MethodGet, "/api/v1/admin/users/"+id+"/sessions"); r.status != http.StatusOK || !strings.Contains(r.raw, `"items":[]`) {
			t.Fatalf("sessions after revoking all: %d %s", r.status, r.raw)
		}
		// For a second or two after the revocation a login answers
		// token_revoked ("sign in again"): a login that raced it must not
		// outlive it, and iat counts whole seconds.
		var again response
		until(t, 5*time.Second, "a login after revoking all", func() bool {
			again = postJSON(t, p.url("/api/v1/auth/password/login"), map[string]any{"username": "console_three", "password": pass})
			return again.status == http.StatusOK
		})
		if r := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(again, "access_token"))); r.status != http.StatusOK {
			t.Fatalf("/me after a new login: %d %s", r.status, r.raw)
		}
	})

	t.Run("disabling shows in the audit log, admin as actor and user as target", func(t *testing.T) {
		if r := asAdmin(http.MethodPost, "/api/v1/admin/users/"+plainID+"/disable"); r.status != http.StatusOK {
			t.Fatalf("disable: %d %s", r.status, r.raw)
		}
		wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(plainToken)), http.StatusUnauthorized, "token_revoked")
		r := asAdmin(http.MethodGet, "/api/v1/admin/audit?target="+plainID)
		items, _ := r.body["items"].([]any)
		if r.status != http.StatusOK || len(items) != 1 || r.body["total"] != 1.0 {
			t.Fatalf("audit of the disabled user: %d %s", r.status, r.raw)
		}
		e := items[0].(map[string]any)
		if e["actor_id"] != adminID || e["target_id"] != plainID || e["action"] != "user.disable" || e["at"] == nil || e["id"] == nil {
			t.Errorf("audit entry %v: want actor %s, target %s, action user.disable", e, adminID, plainID)
		}
		if r := asAdmin(http.MethodGet, "/api/v1/admin/audit?actor="+adminID+"&action=user.disable"); r.body["total"] != 1.0 {
			t.Errorf("audit by actor and action: %s", r.raw)
		}
		if r := asAdmin(http.MethodGet, "/api/v1/admin/audit?actor="+plainID); r.status != http.StatusOK || r.body["total"] != 0.0 {
			t.Errorf("audit by an actor that did nothing: %d %s", r.status, r.raw)
		}
		wantProblem(t, asAdmin(http.MethodGet, "/api/v1/admin/audit?target=nope"), http.StatusBadRequest, "invalid_request")
		if r := asAdmin(http.MethodGet, "/api/v1/admin/stats"); r.body["users_disabled"] != 1.0 {
			t.Errorf("stats after a disable: %s", r.raw)
		}
		if r := asAdmin(http.MethodPost, "/api/v1/admin/users/"+plainID+"/enable"); r.status != http.StatusOK {
			t.Fatalf("enable: %d %s", r.status, r.raw)
		}
	})

	t.Run("grant and revoke admin, never the last one", func(t *testing.T) {
		wantProblem(t, asAdmin(http.MethodDelete, "/api/v1/admin/users/"+adminID+"/admin"), http.StatusConflict, "last_admin")
		r := asAdmin(http.MethodPost, "/api/v1/admin/users/"+plainID+"/admin")
		if r.status != http.StatusOK || r.body["is_admin"] != true {
			t.Fatalf("grant admin: %d %s", r.status, r.raw)
		}
		// A login within a second of the disable's cut-off is refused
		// (session), so this one may take a retry.
		until(t, 5*time.Second, "console_plain to log in again", func() bool {
			r := postJSON(t, p.url("/api/v1/auth/password/login"), map[string]any{"username": "console_plain", "password": pass})
			plainToken = str(r, "access_token")
			return r.status == http.StatusOK
		})
		if r := do(t, http.MethodGet, p.url("/api/v1/admin/stats"), "", "", bearer(plainToken)); r.status != http.StatusOK {
			t.Fatalf("the new admin's stats: %d %s", r.status, r.raw)
		}
		r = asAdmin(http.MethodDelete, "/api/v1/admin/users/"+plainID+"/admin")
		if r.status != http.StatusOK || r.body["is_admin"] != nil {
			t.Fatalf("revoke admin: %d %s", r.status, r.raw)
		}
		wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/admin/stats"), "", "", bearer(plainToken)), http.StatusForbidden, "forbidden")
		for _, action := range []string{"user.grant_admin", "user.revoke_admin"} {
			if r := asAdmin(http.MethodGet, "/api/v1/admin/audit?target="+plainID+"&action="+action); r.body["total"] != 1.0 {
				t.Errorf("%s in the audit log: %s", action, r.raw)
			}
		}
		// The refused revoke wrote nothing: the one row about the first admin
		// is the command line's grant, which has no actor.
		r = asAdmin(http.MethodGet, "/api/v1/admin/audit?target="+adminID)
		items, _ := r.body["items"].([]any)
		if r.body["total"] != 1.0 || len(items) != 1 || items[0].(map[string]any)["action"] != "user.grant_admin" || items[0].(map[string]any)["actor_id"] != "" {
			t.Errorf("audit of the first admin: want only the command line's grant: %s", r.raw)
		}
	})

	t.Run("admin actions go out as events", func(t *testing.T) {
		_, js := p.jetStream()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cons, err := js.OrderedConsumer(ctx, identity.EventStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{identity.SubjectAdminEventPrefix + ">"}})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for len(seen) < 6 {
			msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatalf("admin events so far %v: %v", seen, err)
			}
			var ev identity.AdminEvent
			if err := json.Unmarshal(msg.Data(), &ev); err != nil {
				t.Fatalf("admin event %s: %v", msg.Data(), err)
			}
			if ev.ActorID == "" && ev.TargetID == adminID && ev.Action == "user.grant_admin" {
				continue // identity grant-admin, the command line
			}
			if ev.ActorID != adminID || ev.Type != "admin."+ev.Action ||
				msg.Subject() != identity.SubjectAdminEventPrefix+ev.Action {
				t.Fatalf("admin event on %s: %s", msg.Subject(), msg.Data())
			}
			seen[ev.Action]++
		}
		for _, a := range []string{"session.revoke", "session.revoke_all", "user.disable", "user.enable", "user.grant_admin", "user.revoke_admin"} {
			if seen[a] == 0 {
				t.Errorf("no %s event: %v", a, seen)
			}
		}
	})

	t.Run("search finds a user by unionid and by a piece of the nickname", func(t *testing.T) {
		for _, q := range []string{"u_console_union_42", "union_4", "sanfeng", "三丰", "o_console_wx", "CONSOLE_TWO"} {
			r := asAdmin(http.MethodGet, "/api/v1/admin/users?q="+url.QueryEscape(q))
			items, _ := r.body["items"].([]any)
			if r.status != http.StatusOK || len(items) != 1 {
				t.Errorf("search %q: %d %s", q, r.status, r.raw)
				continue
			}
			if q != "CONSOLE_TWO" && items[0].(map[string]any)["id"] != wxID {
				t.Errorf("search %q found %v, want %s", q, items[0], wxID)
			}
		}
		// Four usernames, and the WeChat user's openid and unionid.
		r := asAdmin(http.MethodGet, "/api/v1/admin/users?q=console_&sort=-last_login_at&page_size=2")
		items, _ := r.body["items"].([]any)
		if r.status != http.StatusOK || len(items) != 2 || r.body["total"] != 5.0 {
			t.Fatalf("search sorted by last login: %d %s", r.status, r.raw)
		}
		// console_plain logged in last (to pick up its admin rights).
		if items[0].(map[string]any)["id"] != plainID {
			t.Errorf("most recent login first: %s", r.raw)
		}
		wantProblem(t, asAdmin(http.MethodGet, "/api/v1/admin/users?sort=nickname"), http.StatusBadRequest, "invalid_request")
		wantProblem(t, asAdmin(http.MethodGet, "/api/v1/admin/users?q=a%01b"), http.StatusBadRequest, "invalid_request")
	})
}
