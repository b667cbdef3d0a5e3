package gatewaysvc_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	base := e.up(nil)
	login := base + "/api/v1/auth/miniprogram/login"

	t.Run("an incoming id is echoed and reaches the service", func(t *testing.T) {
		r := do(t, context.Background(), http.MethodPost, login, jsonType, `{"code":"c"}`, map[string]string{"X-Request-ID": "client-req.42_A"})
		if r.status != http.StatusOK || r.header.Get("X-Request-ID") != "client-req.42_A" {
			t.Fatalf("status %d, X-Request-ID %q", r.status, r.header.Get("X-Request-ID"))
		}
		if got := e.id.lastRequestID(); got != "client-req.42_A" {
			t.Errorf("identity saw request id %q", got)
		}
	})

	for _, bad := range []string{strings.Repeat("a", 65), "has space", "semi;colon", "ünï"} {
		t.Run("an unfit incoming id is replaced: "+bad[:min(len(bad), 10)], func(t *testing.T) {
			r := do(t, context.Background(), http.MethodPost, login, jsonType, `{"code":"c"}`, map[string]string{"X-Request-ID": bad})
			got := r.header.Get("X-Request-ID")
			if !uuidRE.MatchString(got) {
				t.Fatalf("X-Request-ID %q, want a fresh uuid", got)
			}
			if e.id.lastRequestID() != got {
				t.Errorf("identity saw %q, response says %q", e.id.lastRequestID(), got)
			}
		})
	}

	cases := []struct {
		name, method, path string
		header             map[string]string
		status             int
	}{
		{"success", http.MethodGet, "/healthz", nil, 200},
		{"problem", http.MethodPost, "/api/v1/auth/miniprogram/login", nil, 400},
		{"unknown route", http.MethodGet, "/nope", nil, 404},
		{"trailing slash is not redirected", http.MethodGet, "/api/v1/me/", nil, 404},
		{"wrong method", http.MethodGet, "/api/v1/auth/miniprogram/login", nil, 405},
		{"CORS preflight", http.MethodOptions, "/api/v1/me", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}, 204},
	}
	for _, c := range cases {
		t.Run("present on "+c.name, func(t *testing.T) {
			r := do(t, context.Background(), c.method, base+c.path, "", "", c.header)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if !uuidRE.MatchString(r.header.Get("X-Request-ID")) {
				t.Errorf("X-Request-ID %q", r.header.Get("X-Request-ID"))
			}
		})
	}
}

func TestRoutingProblems(t *testing.T) {
	e := newEnv(t)
	base := e.up(nil)
	wantProblem(t, get(t, base+"/api/v1/nothing-here", nil), http.StatusNotFound, "not_found")
	r := do(t, context.Background(), http.MethodDelete, base+"/api/v1/me", "", "", nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %q: %s", r.status, r.header.Get("Content-Type"), r.raw)
	}
	// PATCH /api/v1/me updates the profile (accounts.go).
	if got := r.header.Get("Allow"); got != "GET, PATCH" {
		t.Errorf("Allow %q, want GET, PATCH", got)
	}
}

func TestCORS(t *testing.T) {
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
	}
	t.Run("any origin by default", func(t *testing.T) {
		e := newEnv(t)
		base := e.up(nil)
		r := do(t, context.Background(), http.MethodOptions, base+"/api/v1/auth/miniprogram/login", "", "", preflight("https://shop.example"))
		if r.status != http.StatusNoContent {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Allow") != "" {
			t.Errorf("Allow-Origin %q, Allow %q", r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Allow"))
		}
		allowed := r.header.Get("Access-Control-Allow-Headers")
		for _, h := range []string{"Authorization", "Content-Type", "X-Poll-Token", "X-Request-ID"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("Allow-Headers %q lacks %s", allowed, h)
			}
		}
		if !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("Allow-Methods %q", r.header.Get("Access-Control-Allow-Methods"))
		}
		// The actual request exposes the request id to scripts.
		r = do(t, context.Background(), http.MethodPost, base+"/api/v1/auth/miniprogram/login", jsonType, `{"code":"c"}`, map[string]string{"Origin": "https://shop.example"})
		if r.status != http.StatusOK || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-ID") {
			t.Errorf("status %d, Expose-Headers %q", r.status, r.header.Get("Access-Control-Expose-Headers"))
		}
	})
	t.Run("listed origins only", func(t *testing.T) {
		e := newEnv(t)
		base := e.up(func(c *gatewaysvc.Config) { c.CORSOrigins = []string{"https://shop.example", "http://localhost:3000"} })
		r := do(t, context.Background(), http.MethodOptions, base+"/api/v1/me", "", "", preflight("https://shop.example"))
		if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
			r.header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("allowed origin: status %d, headers %v", r.status, r.header)
		}
		r = do(t, context.Background(), http.MethodOptions, base+"/api/v1/me", "", "", preflight("https://evil.example"))
		wantProblem(t, r, http.StatusForbidden, "forbidden")
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("disallowed origin got Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
		}
	})
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	stopIdentity := e.startIdentity()
	stopSession := e.startSession()
	base := e.gateway(nil)

	poll.Until(t, 10*time.Second, "ready", func() bool { return get(t, base+"/readyz", nil).status == http.StatusOK })
	if r := get(t, base+"/readyz", nil); r.body["status"] != "ok" {
		t.Errorf("readyz body %s", r.raw)
	}

	stopIdentity()
	b := wantProblem(t, get(t, base+"/readyz", nil), http.StatusServiceUnavailable, "service_unavailable")
	if !reflect.DeepEqual(b["down"], []any{"identity"}) {
		t.Errorf("down %v, want [identity]", b["down"])
	}
	stopSession()
	b = wantProblem(t, get(t, base+"/readyz", nil), http.StatusServiceUnavailable, "service_unavailable")
	if !reflect.DeepEqual(b["down"], []any{"identity", "session"}) {
		t.Errorf("down %v, want [identity session]", b["down"])
	}
	if d, _ := b["detail"].(string); !strings.Contains(d, "identity") || !strings.Contains(d, "session") {
		t.Errorf("detail %q does not list what is down", d)
	}

	// Liveness does not depend on the services; /healthz is its alias.
	for _, path := range []string{"/livez", "/healthz"} {
		r := get(t, base+path, nil)
		if r.status != http.StatusOK || r.body["status"] != "ok" {
			t.Fatalf("%s %d %s", path, r.status, r.raw)
		}
		if r := do(t, context.Background(), http.MethodHead, base+path, "", "", nil); r.status != http.StatusOK {
			t.Errorf("HEAD %s %d", path, r.status)
		}
	}
}

func TestStartsWithoutNATS(t *testing.T) {
	e := newEnv(t)
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "nats://" + l.Addr().String()
	l.Close()
	base := e.gateway(func(c *gatewaysvc.Config) { c.NATSURL = deadURL })

	if r := get(t, base+"/livez", nil); r.status != http.StatusOK {
		t.Fatalf("livez %d", r.status)
	}
	b := wantProblem(t, get(t, base+"/readyz", nil), http.StatusServiceUnavailable, "service_unavailable")
	if !reflect.DeepEqual(b["down"], []any{"nats", "keys", "revocations"}) {
		t.Errorf("down %v, want [nats keys revocations]", b["down"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	wantProblem(t, do(t, ctx, http.MethodPost, base+"/api/v1/auth/miniprogram/login", jsonType, `{"code":"c"}`, nil),
		http.StatusServiceUnavailable, "service_unavailable")
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	base := e.up(nil)
	const code = "wx-code-must-not-be-logged-123"
	r := do(t, context.Background(), http.MethodPost, base+"/api/v1/auth/miniprogram/login?code="+code+"&state=state-must-not-be-logged",
		jsonType, `{"code":"`+code+`"}`, map[string]string{"X-Request-ID": "log-test-1"})
	if r.status != http.StatusOK {
		t.Fatalf("login %d %s", r.status, r.raw)
	}
	access, refresh := r.body["access_token"].(string), r.body["refresh_token"].(string)
	if r := get(t, base+"/api/v1/me", bearer(access)); r.status != http.StatusOK {
		t.Fatalf("me %d", r.status)
	}
	e.id.setFail(&api500)
	postJSON(t, base+"/api/v1/auth/miniprogram/login", `{"code":"`+code+`"}`)
	e.id.setFail(nil)

	logs := e.logs.String()
	for _, secret := range []string{code, "state-must-not-be-logged", access, refresh, strings.Split(access, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the logs: %.20s...", secret)
		}
	}

	var found bool
	for line := range strings.SplitSeq(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "http request" || rec["request_id"] != "log-test-1" {
			continue
		}
		found = true
		if rec["route"] != "/api/v1/auth/miniprogram/login" || rec["method"] != "POST" || rec["status"] != float64(200) ||
			rec["user_id"] != testUserID || rec["duration"] == nil {
			t.Errorf("access log line %s", line)
		}
	}
	if !found {
		t.Errorf("no access log line for the login")
	}
	if !strings.Contains(logs, `"msg":"request failed"`) {
		t.Errorf("the internal error was not logged")
	}
}

func TestConfigFromEnv(t *testing.T) {
	vars := []string{"WXLOGIN_NATS_URL", "WXLOGIN_HTTP_ADDR", "WXLOGIN_PUBLIC_URL", "WXLOGIN_CORS_ORIGINS", "WXLOGIN_JWT_ALG",
		"WXLOGIN_JWT_SECRET", "WXLOGIN_JWT_ISSUER", "WXLOGIN_JWT_AUDIENCE", "WXLOGIN_LOG_LEVEL",
		"WXLOGIN_RATE_LIMIT", "WXLOGIN_TRUSTED_PROXIES", "WXLOGIN_WECHAT_OPEN_BASE", "WXLOGIN_ACCESS_TTL",
		"WXLOGIN_REVOCATION_MAX_STALE", "WXLOGIN_METRICS_ADDR", "WXLOGIN_REDIRECT_URIS"}
	clear := func(t *testing.T) {
		for _, v := range vars {
			t.Setenv(v, "")
			os.Unsetenv(v)
		}
	}

	t.Run("defaults", func(t *testing.T) {
		clear(t)
		cfg, err := gatewaysvc.ConfigFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		want := gatewaysvc.Config{NATSURL: "nats://127.0.0.1:4222", HTTPAddr: "127.0.0.1:8080", PublicURL: "http://127.0.0.1:8080",
			CORSOrigins: []string{"*"}, JWTAlg: "EdDSA", JWTIssuer: "wxlogin", JWTAudience: "wxlogin", LogLevel: slog.LevelInfo,
			RateLimit: "200/s,burst=400", WechatOpenBase: "https://open.weixin.qq.com", AccessTTL: 2 * time.Hour,
			RevocationMaxStale: 5 * time.Second, IntrospectRateLimit: "1000/s,burst=2000"}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("got %+v\nwant %+v", cfg, want)
		}
	})

	t.Run("values", func(t *testing.T) {
		clear(t)
		t.Setenv("WXLOGIN_CORS_ORIGINS", "https://a.example, https://b.example/")
		t.Setenv("WXLOGIN_JWT_ALG", "hs256")
		t.Setenv("WXLOGIN_JWT_SECRET", strings.Repeat("k", 32))
		t.Setenv("WXLOGIN_LOG_LEVEL", "debug")
		t.Setenv("WXLOGIN_REDIRECT_URIS", "https://Shop.Example/h5/ , https://www.example.com:443/app")
		cfg, err := gatewaysvc.ConfigFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg.RedirectURIs, []string{"https://shop.example/h5/", "https://www.example.com/app"}) {
			t.Errorf("redirect URIs %q", cfg.RedirectURIs)
		}
		if !reflect.DeepEqual(cfg.CORSOrigins, []string{"https://a.example", "https://b.example"}) || cfg.JWTAlg != "HS256" || cfg.LogLevel != slog.LevelDebug {
			t.Errorf("got %+v", cfg)
		}
	})

	bad := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"log level", map[string]string{"WXLOGIN_LOG_LEVEL": "loud"}, "WXLOGIN_LOG_LEVEL"},
		{"alg", map[string]string{"WXLOGIN_JWT_ALG": "RS256"}, "WXLOGIN_JWT_ALG"},
		{"HS256 without secret", map[string]string{"WXLOGIN_JWT_ALG": "HS256"}, "WXLOGIN_JWT_SECRET"},
		{"short secret", map[string]string{"WXLOGIN_JWT_ALG": "HS256", "WXLOGIN_JWT_SECRET": "short"}, "WXLOGIN_JWT_SECRET"},
		{"public URL", map[string]string{"WXLOGIN_PUBLIC_URL": "example.com"}, "WXLOGIN_PUBLIC_URL"},
		{"CORS origin with a path", map[string]string{"WXLOGIN_CORS_ORIGINS": "https://a.example/app"}, "WXLOGIN_CORS_ORIGINS"},
		{"rate limit", map[string]string{"WXLOGIN_RATE_LIMIT": "lots"}, "WXLOGIN_RATE_LIMIT"},
		{"rate limit burst", map[string]string{"WXLOGIN_RATE_LIMIT": "10/s,burst=0"}, "WXLOGIN_RATE_LIMIT"},
		{"trusted proxy", map[string]string{"WXLOGIN_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "WXLOGIN_TRUSTED_PROXIES"},
		{"WeChat open base", map[string]string{"WXLOGIN_WECHAT_OPEN_BASE": "open.weixin.qq.com"}, "WXLOGIN_WECHAT_OPEN_BASE"},
		{"access TTL", map[string]string{"WXLOGIN_ACCESS_TTL": "two hours"}, "WXLOGIN_ACCESS_TTL"},
		{"negative access TTL", map[string]string{"WXLOGIN_ACCESS_TTL": "-1h"}, "WXLOGIN_ACCESS_TTL"},
		{"revocation max stale", map[string]string{"WXLOGIN_REVOCATION_MAX_STALE": "-5s"}, "WXLOGIN_REVOCATION_MAX_STALE"},
		{"metrics address", map[string]string{"WXLOGIN_METRICS_ADDR": "9100"}, "WXLOGIN_METRICS_ADDR"},
		{"introspect client without secret", map[string]string{"WXLOGIN_INTROSPECT_CLIENTS": "api"}, "WXLOGIN_INTROSPECT_CLIENTS"},
		{"introspect client short secret", map[string]string{"WXLOGIN_INTROSPECT_CLIENTS": "api:short"}, "WXLOGIN_INTROSPECT_CLIENTS"},
		{"introspect client twice", map[string]string{"WXLOGIN_INTROSPECT_CLIENTS": "api:" + strings.Repeat("a", 32) + ",api:" + strings.Repeat("b", 32)}, "WXLOGIN_INTROSPECT_CLIENTS"},
		{"introspect rate limit", map[string]string{"WXLOGIN_INTROSPECT_RATE_LIMIT": "lots"}, "WXLOGIN_INTROSPECT_RATE_LIMIT"},
		{"redirect URI without scheme", map[string]string{"WXLOGIN_REDIRECT_URIS": "shop.example/h5/"}, "WXLOGIN_REDIRECT_URIS"},
		{"redirect URI with a query", map[string]string{"WXLOGIN_REDIRECT_URIS": "https://shop.example/h5/?a=1"}, "WXLOGIN_REDIRECT_URIS"},
	}
	for _, c := range bad {
		t.Run("bad "+c.name, func(t *testing.T) {
			clear(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := gatewaysvc.ConfigFromEnv()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}

	t.Run("the secret is masked in logs", func(t *testing.T) {
		cfg := gatewaysvc.Config{JWTAlg: "HS256", JWTSecret: "super-secret-value-of-32-bytes!!", NATSURL: "nats://u:natspass@127.0.0.1:4222",
			IntrospectClients: "api:introspect-secret-of-at-least-32-bytes"}
		var buf logtest.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", cfg)
		if !strings.Contains(buf.String(), `"introspect_clients":"api"`) {
			t.Errorf("introspection client ids not logged: %s", buf.String())
		}
		if strings.Contains(buf.String(), "super-secret") || strings.Contains(buf.String(), "natspass") || strings.Contains(buf.String(), "introspect-secret") {
			t.Errorf("secret in log: %s", buf.String())
		}
	})
}

var api500 = apiError("internal_error", "pq: connection refused")
