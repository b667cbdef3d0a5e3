package gatewaysvc_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
)

func TestIPRateLimit(t *testing.T) {
	e := newEnv(t)
	// Three requests, then one token a minute: the fourth is refused for
	// about 20 s whatever the machine's speed.
	base, _ := e.upAccounts(func(c *gatewaysvc.Config) { c.RateLimit = "3/m,burst=3" })
	body := `{"username":"alice","password":"correct horse"}`

	// The limited routes share one bucket per address.
	wantTokens(t, postJSON(t, base+"/api/v1/auth/password/login", body), http.StatusOK, false)
	wantTokens(t, postJSON(t, base+"/api/v1/auth/register", body), http.StatusCreated, true)
	wantTokens(t, postJSON(t, base+"/api/v1/auth/miniprogram/login", `{"code":"c"}`), http.StatusOK, false)

	for _, path := range []string{"/api/v1/auth/password/login", "/api/v1/auth/register", "/api/v1/auth/bind", "/api/v1/auth/miniprogram/login"} {
		t.Run("refused: "+path, func(t *testing.T) {
			r := postJSON(t, base+path, body)
			wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
			n, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || n < 1 || n > 20 {
				t.Errorf("Retry-After %q, want 1-20 seconds", r.header.Get("Retry-After"))
			}
		})
	}
	t.Run("other routes are not limited", func(t *testing.T) {
		token, _ := e.userToken()
		for range 5 {
			r := do(t, context.Background(), http.MethodPatch, base+"/api/v1/me", jsonType, `{"city":"x"}`, bearer(token))
			if r.status != http.StatusOK {
				t.Fatalf("PATCH /me %d: %s", r.status, r.raw)
			}
		}
	})
}

func TestIPRateLimitOff(t *testing.T) {
	e := newEnv(t)
	base, _ := e.upAccounts(func(c *gatewaysvc.Config) { c.RateLimit = "off" })
	for i := range 50 {
		if r := postJSON(t, base+"/api/v1/auth/password/login", `{"username":"alice","password":"correct horse"}`); r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.status, r.raw)
		}
	}
}

func TestRateLimitAndProxyConfig(t *testing.T) {
	for _, v := range []string{"WXLOGIN_RATE_LIMIT", "WXLOGIN_TRUSTED_PROXIES"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	cfg, err := gatewaysvc.ConfigFromEnv()
	if err != nil || cfg.RateLimit != "200/s,burst=400" || cfg.TrustedProxies != nil {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	t.Setenv("WXLOGIN_RATE_LIMIT", "10/s,burst=20")
	t.Setenv("WXLOGIN_TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.10 ,,fd00::/8")
	cfg, err = gatewaysvc.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit != "10/s,burst=20" || !reflect.DeepEqual(cfg.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.10", "fd00::/8"}) {
		t.Errorf("got %+v", cfg)
	}
	t.Setenv("WXLOGIN_RATE_LIMIT", "off")
	if _, err := gatewaysvc.ConfigFromEnv(); err != nil {
		t.Errorf("off: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	base, s := e.upAccounts(nil)
	login := base + "/api/v1/auth/password/login"
	wantTokens(t, postJSON(t, login, `{"username":"alice","password":"correct horse"}`), http.StatusOK, false)
	s.setFail("wxlogin.identity.password.login", &api401)
	wantProblem(t, postJSON(t, login, `{"username":"alice","password":"guess"}`), http.StatusUnauthorized, "invalid_credentials")
	s.setFail("wxlogin.identity.password.login", nil)
	wantTokens(t, postJSON(t, base+"/api/v1/auth/miniprogram/login", `{"code":"c"}`), http.StatusOK, false)
	token, _ := e.userToken()
	get(t, base+"/api/v1/admin/users/"+otherUserID, bearer(token))
	get(t, base+"/no/such/secret-path-123", nil)

	r := get(t, e.ops+"/metrics", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics %d %q", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`http_requests_total{method="POST",route="/api/v1/auth/password/login",status="200"} 1`,
		`http_requests_total{method="POST",route="/api/v1/auth/password/login",status="401"} 1`,
		`http_requests_total{method="GET",route="/api/v1/admin/users/:id",status="200"} 1`,
		`http_requests_total{method="GET",route="(unmatched)",status="404"} 1`,
		`http_request_duration_seconds_bucket{method="POST",route="/api/v1/auth/password/login",le="0.025"}`,
		`http_request_duration_seconds_count{method="POST",route="/api/v1/auth/password/login"} 2`,
		`wxlogin_logins_total{kind="password",result="success"} 1`,
		`wxlogin_logins_total{kind="password",result="invalid_credentials"} 1`,
		`wxlogin_logins_total{kind="miniprogram",result="success"} 1`,
		`nats_request_duration_seconds_count{subject="wxlogin.identity.password.login"} 2`,
		`nats_request_duration_seconds_count{subject="wxlogin.session.issue"} 2`,
		`nats_request_duration_seconds_count{subject="wxlogin.identity.admin.users.get"} 1`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Raw paths and ids never become labels.
	if strings.Contains(r.raw, "secret-path-123") || strings.Contains(r.raw, otherUserID) {
		t.Error("a raw path reached the metrics")
	}
	if regexp.MustCompile(`route="/api/v1/admin/users/[0-9a-f]`).MatchString(r.raw) {
		t.Error("a route label holds an id")
	}
	// Not on the public port: only on the ops listener (WXLOGIN_METRICS_ADDR).
	wantProblem(t, get(t, base+"/metrics", nil), http.StatusNotFound, "not_found")
	if r := get(t, e.ops+"/healthz", nil); r.status != http.StatusOK {
		t.Errorf("ops /healthz %d", r.status)
	}
}

var api401 = apiError("invalid_credentials", "wrong username or password")

// TestHeaderLimits: headers are bounded in size and in the time a client may
// take to send them, so neither a huge header nor a slow one ties up memory
// or a connection.
func TestHeaderLimits(t *testing.T) {
	e := newEnv(t)
	base, _ := e.upAccounts(nil)

	t.Run("a 64 KiB header is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})

	t.Run("headers that never end are cut off", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		// The server must close the connection after its header timeout
		// (5 s); the read deadline is where we stop waiting for it.
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(15 * time.Second))
		_, err = io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", time.Since(start).Round(time.Second))
		}
	})
}
