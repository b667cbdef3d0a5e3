package gatewaysvc_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const (
	refreshURL = "/api/v1/auth/refresh"
	logoutURL  = "/api/v1/auth/logout"
	meURL      = "/api/v1/me"
)

func TestRefresh(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)

	ok := []struct{ name, contentType, body, token string }{
		{"JSON", "application/json", `{"refresh_token":"` + testUserID + `.f.s1"}`, testUserID + ".f.s1"},
		{"form", "application/x-www-form-urlencoded", "refresh_token=" + testUserID + ".f.s2", testUserID + ".f.s2"},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, context.Background(), http.MethodPost, base+refreshURL, c.contentType, c.body, nil)
			wantStatus(t, r, http.StatusOK)
			for _, k := range []string{"access_token", "refresh_token"} {
				if s, _ := r.body[k].(string); s == "" {
					t.Errorf("no %s: %s", k, r.raw)
				}
			}
			if r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(7200) || r.body["refresh_expires_in"] != float64(2592000) {
				t.Errorf("token fields: %s", r.raw)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("token answer cacheable")
			}
			w.mu.Lock()
			last := w.refreshes[len(w.refreshes)-1]
			w.mu.Unlock()
			if last != c.token {
				t.Errorf("session got %q, want %q", last, c.token)
			}
		})
	}

	bad := []struct{ name, contentType, body string }{
		{"missing", "application/json", `{}`},
		{"empty body", "application/json", ``},
		{"not a string", "application/json", `{"refresh_token":1}`},
		{"too long", "application/json", `{"refresh_token":"` + strings.Repeat("a", 513) + `"}`},
		{"spaces", "application/json", `{"refresh_token":"a b"}`},
		{"no content type", "", `refresh_token=x`},
	}
	for _, c := range bad {
		t.Run("bad "+c.name, func(t *testing.T) {
			wantProblem(t, do(t, context.Background(), http.MethodPost, base+refreshURL, c.contentType, c.body, nil),
				http.StatusBadRequest, "invalid_request")
		})
	}

	for _, code := range []api.Code{api.CodeTokenInvalid, api.CodeTokenExpired, api.CodeTokenRevoked, api.CodeRefreshTokenReused} {
		t.Run(string(code), func(t *testing.T) {
			w.set(func(w *webStub) { w.refreshFail = api.Errorf(code, "refused") })
			defer w.set(func(w *webStub) { w.refreshFail = nil })
			wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+testUserID+`.f.s"}`), http.StatusUnauthorized, string(code))
		})
	}
}

// TestRefreshChecksTheUserFirst: identity is asked before session spends
// anything, so a disabled user is refused (and revoked) and an absent
// identity costs the client nothing but a retry.
func TestRefreshChecksTheUserFirst(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)
	token := testUserID + ".f.s"
	refreshes := func() int { w.mu.Lock(); defer w.mu.Unlock(); return len(w.refreshes) }
	revokes := func() []session.RevokeRequest {
		w.mu.Lock()
		defer w.mu.Unlock()
		return append([]session.RevokeRequest(nil), w.revokes...)
	}

	t.Run("identity away: 503, nothing spent", func(t *testing.T) {
		e.id.setFail(api.Errorf(api.CodeServiceUnavailable, "down"))
		defer e.id.setFail(nil)
		before := refreshes()
		wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+token+`"}`), http.StatusServiceUnavailable, "service_unavailable")
		if refreshes() != before {
			t.Fatal("session was asked to refresh while identity was away")
		}
	})

	t.Run("disabled user: 403, sessions revoked, nothing refreshed", func(t *testing.T) {
		e.id.setDisabled(true)
		defer e.id.setDisabled(false)
		before, revokedBefore := refreshes(), len(revokes())
		wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+token+`"}`), http.StatusForbidden, "user_disabled")
		if refreshes() != before {
			t.Fatal("session was asked to refresh a disabled user")
		}
		rs := revokes()
		if len(rs) != revokedBefore+1 || rs[len(rs)-1] != (session.RevokeRequest{UserID: testUserID}) {
			t.Fatalf("revoke requests %+v, want one of user %s", rs[revokedBefore:], testUserID)
		}
	})

	t.Run("disabled user, revoke fails: still 403", func(t *testing.T) {
		e.id.setDisabled(true)
		defer e.id.setDisabled(false)
		w.set(func(w *webStub) { w.revokeFail = api.Errorf(api.CodeServiceUnavailable, "down") })
		defer w.set(func(w *webStub) { w.revokeFail = nil })
		wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+token+`"}`), http.StatusForbidden, "user_disabled")
	})

	t.Run("unknown user: token_invalid, nothing refreshed", func(t *testing.T) {
		e.id.setFail(api.Errorf(api.CodeNotFound, "user not found"))
		defer e.id.setFail(nil)
		before := refreshes()
		wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+token+`"}`), http.StatusUnauthorized, "token_invalid")
		if refreshes() != before {
			t.Fatal("session was asked to refresh an unknown user")
		}
	})

	t.Run("no user in the token", func(t *testing.T) {
		before := refreshes()
		wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"nodots"}`), http.StatusUnauthorized, "token_invalid")
		if refreshes() != before {
			t.Fatal("session was asked to refresh a token naming no user")
		}
	})

	// uuid.Parse takes these too; only the canonical form is a user's id.
	for _, user := range []string{"urn:uuid:" + testUserID, strings.ToUpper(testUserID), "{" + testUserID + "}",
		strings.ReplaceAll(testUserID, "-", "")} {
		t.Run("user spelled "+user, func(t *testing.T) {
			gets, before := e.id.userGetCount(), refreshes()
			wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+user+`.f.s"}`), http.StatusUnauthorized, "token_invalid")
			if e.id.userGetCount() != gets || refreshes() != before {
				t.Fatal("identity or session was asked about a non-canonical user id")
			}
		})
	}

	t.Run("identity answered another user: token_invalid, nothing refreshed", func(t *testing.T) {
		e.id.setAnswerID(uuid.NewString())
		defer e.id.setAnswerID("")
		before := refreshes()
		wantProblem(t, postJSON(t, base+refreshURL, `{"refresh_token":"`+token+`"}`), http.StatusUnauthorized, "token_invalid")
		if refreshes() != before {
			t.Fatal("session was asked to refresh after identity answered another user")
		}
	})

	t.Run("session refreshed another user than the one checked", func(t *testing.T) {
		// The stub's pair is always testUserID's.
		r := postJSON(t, base+refreshURL, `{"refresh_token":"`+uuid.NewString()+`.f.s"}`)
		wantProblem(t, r, http.StatusInternalServerError, "internal_error")
		if strings.Contains(r.raw, "access_token") {
			t.Fatalf("the pair was handed out: %s", r.raw)
		}
	})
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)

	t.Run("the token stops working at once", func(t *testing.T) {
		sid := uuid.NewString()
		token := e.se.token(testUserID, func(c jwt.MapClaims) { c["sid"] = sid })
		wantStatus(t, get(t, base+meURL, bearer(token)), http.StatusOK)

		r := do(t, context.Background(), http.MethodPost, base+logoutURL, "application/json", `{"refresh_token":"u.f.s"}`, bearer(token))
		wantStatus(t, r, http.StatusNoContent)
		// The very next request: the local view has it before any watch.
		me := get(t, base+meURL, bearer(token))
		wantProblem(t, me, http.StatusUnauthorized, "token_revoked")
		if got := me.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", got)
		}

		w.mu.Lock()
		last := w.revokes[len(w.revokes)-1]
		w.mu.Unlock()
		if last.JTI == "" || last.SessionID != sid || last.Subject != testUserID || last.ExpiresAt < time.Now().Add(time.Hour).Unix() {
			t.Errorf("revoke request %+v", last)
		}
		// A new token of the same refresh family is dead too.
		wantProblem(t, get(t, base+meURL, bearer(e.se.token(testUserID, func(c jwt.MapClaims) { c["sid"] = sid }))),
			http.StatusUnauthorized, "token_revoked")
		// Another session of the same user is not.
		wantStatus(t, get(t, base+meURL, bearer(e.se.token(testUserID, nil))), http.StatusOK)

		// Logging out again is not an error.
		wantStatus(t, do(t, context.Background(), http.MethodPost, base+logoutURL, "", "", bearer(token)), http.StatusNoContent)
	})

	t.Run("session says the family is gone", func(t *testing.T) {
		w.set(func(w *webStub) { w.revokeFail = api.Errorf(api.CodeTokenRevoked, "already revoked") })
		defer w.set(func(w *webStub) { w.revokeFail = nil })
		wantStatus(t, do(t, context.Background(), http.MethodPost, base+logoutURL, "", "", bearer(e.se.token(testUserID, nil))), http.StatusNoContent)
	})

	t.Run("session down", func(t *testing.T) {
		w.set(func(w *webStub) { w.revokeFail = api.Errorf(api.CodeServiceUnavailable, "down") })
		defer w.set(func(w *webStub) { w.revokeFail = nil })
		token := e.se.token(testUserID, nil)
		wantProblem(t, do(t, context.Background(), http.MethodPost, base+logoutURL, "", "", bearer(token)), http.StatusServiceUnavailable, "service_unavailable")
		// Not logged out: the token still works, and a retry can succeed.
		wantStatus(t, get(t, base+meURL, bearer(token)), http.StatusOK)
	})

	bad := []struct {
		name   string
		header map[string]string
		body   string
		status int
		code   string
	}{
		{"no token", nil, "", http.StatusUnauthorized, "token_invalid"},
		{"expired token", bearer(e.se.token(testUserID, func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-3*time.Hour).Unix(), time.Now().Add(-3*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		})), "", http.StatusUnauthorized, "token_expired"},
		{"malformed refresh_token", bearer(e.se.token(testUserID, nil)), `{"refresh_token":"a b"}`, http.StatusBadRequest, "invalid_request"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			ct := ""
			if c.body != "" {
				ct = "application/json"
			}
			wantProblem(t, do(t, context.Background(), http.MethodPost, base+logoutURL, ct, c.body, c.header), c.status, c.code)
		})
	}
}

// TestRevocationsFromKV: what session writes to wxlogin_revoked (another
// gateway's logout, a refresh token reuse, an admin disable) reaches this
// gateway through its watch.
func TestRevocationsFromKV(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)
	now := time.Now()

	t.Run("by jti", func(t *testing.T) {
		jti := uuid.NewString()
		token := e.se.token(testUserID, func(c jwt.MapClaims) { c["jti"] = jti })
		wantStatus(t, get(t, base+meURL, bearer(token)), http.StatusOK)
		w.putRevocation(t, session.RevokedJTIKey(jti), session.Revocation{At: now.Unix(), Exp: now.Add(time.Hour).Unix()})
		waitRevoked(t, base, token)
	})

	t.Run("by refresh family", func(t *testing.T) {
		sid := uuid.NewString()
		token := e.se.token(testUserID, func(c jwt.MapClaims) { c["sid"] = sid })
		wantStatus(t, get(t, base+meURL, bearer(token)), http.StatusOK)
		w.putRevocation(t, session.RevokedSIDKey(sid), session.Revocation{At: now.Unix()})
		waitRevoked(t, base, token)
	})

	t.Run("by user, for tokens issued until then", func(t *testing.T) {
		user := uuid.NewString()
		at := time.Now().Unix()
		old := e.se.token(user, func(c jwt.MapClaims) { c["iat"], c["nbf"] = at-60, at-60 })
		same := e.se.token(user, func(c jwt.MapClaims) { c["iat"], c["nbf"] = at, at })
		later := e.se.token(user, func(c jwt.MapClaims) { c["iat"], c["nbf"] = at+1, at })
		other := e.se.token(uuid.NewString(), func(c jwt.MapClaims) { c["iat"], c["nbf"] = at-60, at-60 })
		w.putRevocation(t, session.RevokedUserKey(user), session.Revocation{At: at})
		waitRevoked(t, base, old)
		wantProblem(t, get(t, base+meURL, bearer(same)), http.StatusUnauthorized, "token_revoked")
		wantStatus(t, get(t, base+meURL, bearer(later)), http.StatusOK)
		wantStatus(t, get(t, base+meURL, bearer(other)), http.StatusOK)
	})

	t.Run("a deleted entry revokes no more", func(t *testing.T) {
		sid := uuid.NewString()
		token := e.se.token(testUserID, func(c jwt.MapClaims) { c["sid"] = sid })
		w.putRevocation(t, session.RevokedSIDKey(sid), session.Revocation{At: now.Unix()})
		waitRevoked(t, base, token)
		if err := w.revoked.Delete(context.Background(), session.RevokedSIDKey(sid)); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 10*time.Second, "the token to work again", func() bool {
			return get(t, base+meURL, bearer(token)).status == http.StatusOK
		})
	})
}

func waitRevoked(t *testing.T, base, token string) {
	t.Helper()
	poll.Until(t, 10*time.Second, "the revocation to reach the gateway", func() bool {
		r := get(t, base+meURL, bearer(token))
		if r.status == http.StatusOK {
			return false
		}
		wantProblem(t, r, http.StatusUnauthorized, "token_revoked")
		return true
	})
}

// TestRevocationsBeforeBucket: until session has created the revocation
// bucket (and the gateway has read it), the gateway is not ready and
// refuses to vouch for any token; it never creates the bucket itself.
func TestRevocationsBeforeBucket(t *testing.T) {
	e := newEnv(t)
	e.startIdentity()
	base := e.gateway(nil) // no session: no keys, no buckets
	r := get(t, base+"/readyz", nil)
	b := wantProblem(t, r, http.StatusServiceUnavailable, "service_unavailable")
	down, _ := b["down"].([]any)
	if len(down) == 0 || down[len(down)-1] != "revocations" {
		t.Errorf("down %v, want revocations listed", b["down"])
	}
	wantProblem(t, get(t, base+meURL, bearer(e.se.token(testUserID, nil))), http.StatusServiceUnavailable, "service_unavailable")
	// The gateway has tried (readyz answered) and created nothing.
	js, err := jetstream.New(e.nc)
	must(t, err)
	for _, bucket := range []string{session.BucketRevoked, session.BucketQR} {
		if _, err := js.KeyValue(context.Background(), bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("bucket %s: %v, want not found: the gateway must not create it", bucket, err)
		}
	}

	e.startSession() // creates the buckets, as session does
	poll.Until(t, 15*time.Second, "ready once the buckets exist", func() bool {
		return get(t, base+"/readyz", nil).status == http.StatusOK
	})
	wantStatus(t, get(t, base+meURL, bearer(e.se.token(testUserID, nil))), http.StatusOK)
}
