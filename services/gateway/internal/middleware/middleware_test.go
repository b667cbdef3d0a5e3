package middleware

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func serve(r http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestValidRequestID(t *testing.T) {
	cases := map[string]bool{
		"abc": true, "A-Z_a.z-09": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a b": false, "a/b": false, "é": false, "a\nb": false, `"q"`: false,
	}
	for id, want := range cases {
		t.Run(id, func(t *testing.T) {
			if got := ValidRequestID(id); got != want {
				t.Errorf("ValidRequestID(%q) = %v", id, got)
			}
		})
	}
}

func TestRecoveryAndAccessLog(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	r := gin.New()
	r.Use(RequestID(), AccessLog(log), Recovery(log))
	r.GET("/boom", func(c *gin.Context) { panic("kaboom") })

	w := serve(r, httptest.NewRequest(http.MethodGet, "/boom?code=secret-code-in-query", nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	rid := w.Header().Get(api.HeaderRequestID)
	if p["code"] != "internal_error" || rid == "" || p["request_id"] != rid {
		t.Errorf("problem %v, request id %q", p, rid)
	}
	if strings.Contains(w.Body.String(), "kaboom") || strings.Contains(w.Body.String(), "goroutine") {
		t.Errorf("panic details reached the client: %s", w.Body.String())
	}
	out := logs.String()
	if !strings.Contains(out, "kaboom") || !strings.Contains(out, "goroutine") {
		t.Errorf("panic and stack not logged: %s", out)
	}
	if !strings.Contains(out, `"route":"/boom"`) || !strings.Contains(out, `"status":500`) {
		t.Errorf("access log line missing route/status: %s", out)
	}
	if strings.Contains(out, "secret-code-in-query") {
		t.Errorf("query string logged: %s", out)
	}
}

func TestAccessLogQuietProbes(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := gin.New()
	r.Use(RequestID(), AccessLog(log))
	ready := true
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
	r.GET("/readyz", func(c *gin.Context) {
		if ready {
			c.Status(http.StatusOK)
			return
		}
		c.Status(http.StatusServiceUnavailable)
	})
	r.GET("/api/v1/me", func(c *gin.Context) { c.Status(http.StatusOK) })

	serve(r, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	serve(r, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if logs.Len() != 0 {
		t.Errorf("healthy probes logged at INFO: %s", logs.String())
	}
	ready = false
	serve(r, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	serve(r, httptest.NewRequest(http.MethodGet, "/api/v1/me", nil))
	out := logs.String()
	if !strings.Contains(out, `"route":"/readyz"`) || !strings.Contains(out, `"status":503`) {
		t.Errorf("failing probe not logged: %s", out)
	}
	if !strings.Contains(out, `"route":"/api/v1/me"`) {
		t.Errorf("API request not logged: %s", out)
	}
}

func TestCORS(t *testing.T) {
	r := gin.New()
	r.Use(RequestID(), CORS([]string{"https://a.example", "http://localhost:3000"}))
	r.GET("/x", func(c *gin.Context) { c.String(200, "ok") })
	r.NoRoute(func(c *gin.Context) { c.Status(404) })

	cases := []struct {
		name, method, origin string
		preflight            bool
		status               int
		allowOrigin          string
	}{
		{"same-origin request", http.MethodGet, "", false, 200, ""},
		{"allowed origin", http.MethodGet, "https://a.example", false, 200, "https://a.example"},
		{"origin matching is case-insensitive", http.MethodGet, "HTTPS://A.example", false, 200, "HTTPS://A.example"},
		{"other origin still runs, without CORS headers", http.MethodGet, "https://b.example", false, 200, ""},
		{"allowed preflight", http.MethodOptions, "http://localhost:3000", true, 204, "http://localhost:3000"},
		{"refused preflight", http.MethodOptions, "https://b.example", true, 403, ""},
		{"preflight to an unknown path", http.MethodOptions, "https://a.example", true, 204, "https://a.example"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := "/x"
			if strings.Contains(c.name, "unknown") {
				path = "/nope"
			}
			req := httptest.NewRequest(c.method, path, nil)
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			if c.preflight {
				req.Header.Set("Access-Control-Request-Method", "GET")
			}
			w := serve(r, req)
			if w.Code != c.status || w.Header().Get("Access-Control-Allow-Origin") != c.allowOrigin {
				t.Errorf("status %d, Allow-Origin %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
			}
			if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
				t.Errorf("no Vary: Origin with a list of origins")
			}
			if w.Header().Get(api.HeaderRequestID) == "" {
				t.Error("no X-Request-ID")
			}
		})
	}
}

type verifierFunc func(string) (*jwtverify.Claims, error)

func (f verifierFunc) Verify(t string) (*jwtverify.Claims, error) { return f(t) }

func TestBearer(t *testing.T) {
	var seen string
	v := verifierFunc(func(tok string) (*jwtverify.Claims, error) {
		seen = tok
		switch tok {
		case "good.to.ken":
			return &jwtverify.Claims{Subject: "u1"}, nil
		case "down":
			return nil, api.Errorf(api.CodeServiceUnavailable, "keys not loaded")
		}
		return nil, api.Errorf(api.CodeTokenInvalid, "bad")
	})
	r := gin.New()
	r.Use(RequestID())
	r.GET("/me", RequireSignedToken(v, slog.New(slog.DiscardHandler)), func(c *gin.Context) { c.String(200, ClaimsOf(c).Subject) })

	cases := []struct {
		name      string
		header    []string
		status    int
		token     string // what the verifier must have seen
		challenge bool
	}{
		{"valid", []string{"Bearer good.to.ken"}, 200, "good.to.ken", false},
		{"lower-case scheme, extra spaces", []string{"bearer   good.to.ken"}, 200, "good.to.ken", false},
		{"missing", nil, 401, "", true},
		{"two headers", []string{"Bearer good.to.ken", "Bearer good.to.ken"}, 401, "", true},
		{"no token", []string{"Bearer"}, 401, "", true},
		{"token with a space", []string{"Bearer good.to ken"}, 401, "", true},
		{"other scheme", []string{"Token good.to.ken"}, 401, "", true},
		{"too long", []string{"Bearer " + strings.Repeat("a", 8<<10)}, 401, "", true},
		{"rejected by the verifier", []string{"Bearer bad"}, 401, "bad", true},
		{"keys not loaded", []string{"Bearer down"}, 503, "down", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen = ""
			req := httptest.NewRequest(http.MethodGet, "/me", nil)
			for _, h := range c.header {
				req.Header.Add("Authorization", h)
			}
			w := serve(r, req)
			if w.Code != c.status || seen != c.token {
				t.Errorf("status %d, verifier saw %q", w.Code, seen)
			}
			if got := w.Header().Get("WWW-Authenticate"); (got != "") != c.challenge {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if c.status == 200 && w.Body.String() != "u1" {
				t.Errorf("claims not in context: %q", w.Body.String())
			}
		})
	}
}
