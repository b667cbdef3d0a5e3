package ginverify_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/verify"
	"github.com/wxlogin/wxlogin/verify/ginverify"
)

func TestRequire(t *testing.T) {
	gin.SetMode(gin.TestMode)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	set, _ := json.Marshal(verify.JWKSet{Keys: []verify.JWK{verify.Ed25519JWK(pub)}})
	now := time.Now()
	v, err := verify.NewEdDSA(set, verify.Options{Issuer: "wxlogin", Audience: "wxlogin"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(exp time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "wxlogin", "aud": "wxlogin", "sub": "user-1", "jti": "j", "sid": "s", "iat": now.Unix(), "exp": exp.Unix(),
		})
		tok.Header["typ"], tok.Header["kid"] = "at+jwt", verify.Ed25519KeyID(pub)
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	r := gin.New()
	r.GET("/me", ginverify.Require(v), func(c *gin.Context) { c.String(200, ginverify.Claims(c).Subject) })
	for _, tc := range []struct {
		name, auth string
		status     int
		code       string
	}{
		{"valid", "Bearer " + sign(now.Add(time.Hour)), 200, ""},
		{"expired", "Bearer " + sign(now.Add(-time.Hour)), 401, verify.CodeTokenExpired},
		{"none", "", 401, verify.CodeTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/me", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if tc.code == "" {
				if w.Body.String() != "user-1" {
					t.Fatalf("body %q", w.Body)
				}
				return
			}
			var p verify.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Code != tc.code {
				t.Fatalf("body %s", w.Body)
			}
		})
	}
}
