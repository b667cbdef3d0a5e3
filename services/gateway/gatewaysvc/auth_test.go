package gatewaysvc_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/poll"
)

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func TestMe(t *testing.T) {
	e := newEnv(t)
	base := e.up(nil)
	me := base + "/api/v1/me"

	t.Run("valid token", func(t *testing.T) {
		r := get(t, me, bearer(e.se.token(testUserID, nil)))
		if r.status != http.StatusOK || r.body["id"] != testUserID {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		ids, _ := r.body["identities"].([]any)
		if len(ids) != 1 {
			t.Errorf("want one identity: %s", r.raw)
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		e.id.mu.Lock()
		last := e.id.userGets[len(e.id.userGets)-1]
		e.id.mu.Unlock()
		if last != testUserID {
			t.Errorf("identity asked for %q, want the token's subject", last)
		}
	})

	t.Run("scheme is case-insensitive", func(t *testing.T) {
		r := get(t, me, map[string]string{"Authorization": "bEaReR " + e.se.token(testUserID, nil)})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})

	// A key the gateway never saw.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	foreign := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": testIssuer, "aud": "wxlogin", "sub": testUserID,
		"jti": uuid.NewString(), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	foreign.Header["typ"] = "at+jwt"
	foreign.Header["kid"] = jwtverify.Ed25519KeyID(stranger.Public().(ed25519.PublicKey))
	foreignToken, err := foreign.SignedString(stranger)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		header map[string]string
		code   string
	}{
		{"no Authorization header", nil, "token_invalid"},
		{"empty Bearer", map[string]string{"Authorization": "Bearer "}, "token_invalid"},
		{"Basic scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, "token_invalid"},
		{"garbage token", bearer("not-a-jwt"), "token_invalid"},
		{"tampered token", bearer(e.se.token(testUserID, nil) + "x"), "token_invalid"},
		{"unknown key", bearer(foreignToken), "token_invalid"},
		{"wrong audience", bearer(e.se.token(testUserID, func(c jwt.MapClaims) { c["aud"] = "someone-else" })), "token_invalid"},
		{"wrong issuer", bearer(e.se.token(testUserID, func(c jwt.MapClaims) { c["iss"] = "evil" })), "token_invalid"},
		{"oversize header", bearer(strings.Repeat("a", 9<<10)), "token_invalid"},
		{"expired token", bearer(e.se.token(testUserID, func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(-3 * time.Hour).Unix()
			c["nbf"] = c["iat"]
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		})), "token_expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := get(t, me, c.header)
			wantProblem(t, r, http.StatusUnauthorized, c.code)
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}

	t.Run("unknown user", func(t *testing.T) {
		e.id.setFail(api.Errorf(api.CodeNotFound, "no such user"))
		defer e.id.setFail(nil)
		wantProblem(t, get(t, me, bearer(e.se.token(uuid.NewString(), nil))), http.StatusNotFound, "not_found")
	})
}

func TestKeysArriveLate(t *testing.T) {
	e := newEnv(t)
	e.startIdentity()
	base := e.gateway(nil) // session is not up: no keys yet
	token := e.se.token(testUserID, nil)

	r := get(t, base+"/readyz", nil)
	b := wantProblem(t, r, http.StatusServiceUnavailable, "service_unavailable")
	// Session creates the revocation bucket too: nothing to watch yet.
	if down, _ := b["down"].([]any); len(down) != 3 || down[0] != "session" || down[1] != "keys" || down[2] != "revocations" {
		t.Errorf("down %v, want [session keys revocations]", b["down"])
	}
	wantProblem(t, get(t, base+"/api/v1/me", bearer(token)), http.StatusServiceUnavailable, "service_unavailable")
	wantProblem(t, get(t, base+"/.well-known/jwks.json", nil), http.StatusServiceUnavailable, "service_unavailable")

	e.startSession()
	poll.Until(t, 10*time.Second, "keys fetched after session came up", func() bool {
		return get(t, base+"/readyz", nil).status == http.StatusOK
	})
	if r := get(t, base+"/api/v1/me", bearer(token)); r.status != http.StatusOK {
		t.Fatalf("GET /me once keys are loaded: %d %s", r.status, r.raw)
	}
}

func TestKeyRotationIsPickedUp(t *testing.T) {
	e := newEnv(t)
	base := e.up(func(c *gatewaysvc.Config) { c.JWKSRefresh = 50 * time.Millisecond })
	old := e.se.token(testUserID, nil)

	e.se.rotate()
	fresh := e.se.token(testUserID, nil)
	poll.Until(t, 10*time.Second, "a token of the rotated key to verify", func() bool {
		return get(t, base+"/api/v1/me", bearer(fresh)).status == http.StatusOK
	})
	if r := get(t, base+"/api/v1/me", bearer(old)); r.status != http.StatusOK {
		t.Errorf("a token of the old key, still published, failed: %d %s", r.status, r.raw)
	}
	if r := get(t, base+"/.well-known/jwks.json", nil); r.raw != string(e.se.jwksBytes()) {
		t.Errorf("published JWKS %s, want the session's %s", r.raw, e.se.jwksBytes())
	}
}

func TestJWKS(t *testing.T) {
	t.Run("EdDSA publishes the session's keys", func(t *testing.T) {
		e := newEnv(t)
		base := e.up(nil)
		r := get(t, base+"/.well-known/jwks.json", nil)
		if r.status != http.StatusOK || r.raw != string(e.se.jwksBytes()) {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if got := r.header.Get("Cache-Control"); !strings.Contains(got, "max-age=60") {
			t.Errorf("Cache-Control %q", got)
		}
		if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
			t.Errorf("Content-Type %q", got)
		}
	})
	t.Run("HS256 publishes nothing", func(t *testing.T) {
		e := newEnv(t)
		base := e.up(func(c *gatewaysvc.Config) {
			c.JWTAlg, c.JWTSecret = "HS256", strings.Repeat("s", 32)
		})
		wantProblem(t, get(t, base+"/.well-known/jwks.json", nil), http.StatusNotFound, "not_found")
	})
}

func TestHS256(t *testing.T) {
	e := newEnv(t)
	secret := []byte("an-hs256-secret-of-at-least-32-bytes")
	base := e.up(func(c *gatewaysvc.Config) { c.JWTAlg, c.JWTSecret = "HS256", string(secret) })

	sign := func(key []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testIssuer, "aud": "wxlogin", "sub": testUserID,
			"jti": uuid.NewString(), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["typ"] = "at+jwt"
		tok.Header["kid"] = jwtverify.HS256KeyID(secret)
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if r := get(t, base+"/api/v1/me", bearer(sign(secret))); r.status != http.StatusOK {
		t.Fatalf("HS256 token: %d %s", r.status, r.raw)
	}
	wantProblem(t, get(t, base+"/api/v1/me", bearer(sign([]byte("another-secret-that-is-32-bytes-long")))), http.StatusUnauthorized, "token_invalid")
	// An EdDSA token is refused by an HS256 gateway.
	wantProblem(t, get(t, base+"/api/v1/me", bearer(e.se.token(testUserID, nil))), http.StatusUnauthorized, "token_invalid")
}
