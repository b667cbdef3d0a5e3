package middleware

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

type revocationsFunc func(*jwtverify.Claims) error

func (f revocationsFunc) Check(c *jwtverify.Claims) error { return f(c) }

func TestRequireLiveToken(t *testing.T) {
	v := verifierFunc(func(tok string) (*jwtverify.Claims, error) {
		if tok == "bad" {
			return nil, api.Errorf(api.CodeTokenInvalid, "bad")
		}
		return &jwtverify.Claims{Subject: "u1", ID: tok}, nil
	})
	checked := 0
	rev := revocationsFunc(func(c *jwtverify.Claims) error {
		checked++
		switch c.ID {
		case "revoked":
			return api.Errorf(api.CodeTokenRevoked, "revoked")
		case "unknown":
			return api.Errorf(api.CodeServiceUnavailable, "revocation list not loaded")
		}
		return nil
	})
	log := slog.New(slog.DiscardHandler)
	r := gin.New()
	r.Use(RequestID())
	r.GET("/me", RequireLiveToken(v, rev, log), func(c *gin.Context) { c.String(200, ClaimsOf(c).ID) })
	// Without a revocation view nothing passes: fail closed.
	r.GET("/unchecked", RequireLiveToken(v, nil, log), func(c *gin.Context) { c.String(200, ClaimsOf(c).ID) })
	// The signature-only variant lets a revoked token through (logout).
	r.GET("/logout", RequireSignedToken(v, log), func(c *gin.Context) { c.String(200, ClaimsOf(c).ID) })

	cases := []struct {
		path      string
		token     string
		status    int
		code      string
		challenge string
		checks    int
	}{
		{"/me", "live", 200, "", "", 1},
		{"/me", "revoked", 401, "token_revoked", `error_description="The access token has been revoked"`, 1},
		{"/me", "unknown", 503, "service_unavailable", "", 1},
		// A token that fails verification is never looked up.
		{"/me", "bad", 401, "token_invalid", `error="invalid_token"`, 0},
		{"/unchecked", "live", 503, "service_unavailable", "", 0},
		{"/logout", "revoked", 200, "", "", 0},
		{"/logout", "bad", 401, "token_invalid", `error="invalid_token"`, 0},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.token, func(t *testing.T) {
			checked = 0
			req := httptest.NewRequest(http.MethodGet, c.path, nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			w := serve(r, req)
			if w.Code != c.status || checked != c.checks {
				t.Fatalf("status %d after %d checks: %s", w.Code, checked, w.Body.String())
			}
			if c.code != "" && !strings.Contains(w.Body.String(), `"code":"`+c.code+`"`) {
				t.Errorf("body %s, want code %s", w.Body.String(), c.code)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) || (c.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
		})
	}
}
