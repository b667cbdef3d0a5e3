package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/verify"
)

const (
	introspectClient = "orders"
	introspectSecret = "orders-secret-0123456789abcdef0123456789"
)

// introspect posts token to the introspection endpoint with header.
func introspect(t *testing.T, p *procStack, token string, header map[string]string) response {
	t.Helper()
	return do(t, http.MethodPost, p.url("/api/v1/auth/introspect"), "application/x-www-form-urlencoded",
		url.Values{"token": {token}}.Encode(), header)
}

func basicAuth(id, secret string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}
}

// remoteVerifier is the verify module as an adopter's service runs it: keys
// from the stack's jwks_uri, re-read every 100 ms. at fixes its clock (nil: now).
func remoteVerifier(t *testing.T, jwksURI string, at func() time.Time) *verify.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := verify.NewRemote(ctx, jwksURI, verify.Options{Issuer: "wxlogin", Audience: "wxlogin", Now: at},
		verify.RemoteOptions{RefreshInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func verifyCode(err error) string {
	var e *verify.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestTokenChecksAsSeparateProcesses: issue 13's token checks for other
// services, through the real binaries: the RFC 8414 metadata leads to the
// keys, the verify module checks a token we issued with them, and
// introspection sees a logout that a local check cannot.
func TestTokenChecksAsSeparateProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_INTROSPECT_CLIENTS="+introspectClient+":"+introspectSecret)

	md := do(t, http.MethodGet, p.url("/.well-known/oauth-authorization-server"), "", "", nil)
	if md.status != http.StatusOK || str(md, "issuer") != "wxlogin" || str(md, "jwks_uri") != p.url("/.well-known/jwks.json") ||
		str(md, "introspection_endpoint") != p.url("/api/v1/auth/introspect") {
		t.Fatalf("metadata: %d %s", md.status, md.raw)
	}
	keys := do(t, http.MethodGet, str(md, "jwks_uri"), "", "", nil)
	var set verify.JWKSet
	if err := json.Unmarshal([]byte(keys.raw), &set); keys.status != http.StatusOK || err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks_uri: %d %s", keys.status, keys.raw)
	}

	login := p.login("o_verify_user")
	user, token := userID(t, login), str(login, "access_token")

	v := remoteVerifier(t, str(md, "jwks_uri"), nil)
	claims, err := v.Verify(token)
	if err != nil || claims.Subject != user || claims.Kind != "miniprogram" || claims.SessionID == "" {
		t.Fatalf("verify module: %+v, %v", claims, err)
	}

	t.Run("Node.js with jose verifies it", func(t *testing.T) {
		got := nodeVerify(t, p.base, token, true)
		if got["sub"] != user || got["sid"] != claims.SessionID || got["kind"] != "miniprogram" {
			t.Fatalf("jose: %v", got)
		}
		// One signature character changed, to another one (a full 6 bits:
		// the last character carries 2, and "AA" matched one time in 256).
		i := len(token) - 10
		c := byte('A')
		if token[i] == c {
			c = 'B'
		}
		tampered := token[:i] + string(c) + token[i+1:]
		if got := nodeVerify(t, p.base, tampered, false); got["error"] != "token_invalid" {
			t.Fatalf("jose on a tampered token: %v", got)
		}
	})

	t.Run("introspection without a client: 401", func(t *testing.T) {
		for name, h := range map[string]map[string]string{
			"no credentials":       nil,
			"wrong secret":         basicAuth(introspectClient, introspectSecret+"x"),
			"the user's own token": bearer(token),
		} {
			r := introspect(t, p, token, h)
			wantProblem(t, r, http.StatusUnauthorized, "invalid_credentials")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: WWW-Authenticate %q", name, r.header.Get("WWW-Authenticate"))
			}
		}
	})
	client := basicAuth(introspectClient, introspectSecret)
	t.Run("a live token is active", func(t *testing.T) {
		r := introspect(t, p, token, client)
		if r.status != http.StatusOK || r.body["active"] != true || str(r, "sub") != user || str(r, "sid") != claims.SessionID ||
			str(r, "kind") != "miniprogram" || str(r, "client_id") != standInMiniAppID {
			t.Fatalf("introspection: %d %s", r.status, r.raw)
		}
		if exp, _ := r.body["exp"].(float64); int64(exp) != claims.ExpiresAt.Unix() {
			t.Errorf("exp %v, want %d", r.body["exp"], claims.ExpiresAt.Unix())
		}
	})
	t.Run("garbage is inactive", func(t *testing.T) {
		for _, junk := range []string{"garbage", token + "x", strings.Repeat("e", 5000)} {
			if r := introspect(t, p, junk, client); r.status != http.StatusOK || r.raw != `{"active":false}` {
				t.Fatalf("introspection of garbage: %d %s", r.status, r.raw)
			}
		}
	})
	t.Run("after logout: inactive", func(t *testing.T) {
		out := do(t, http.MethodPost, p.url("/api/v1/auth/logout"), "application/json", "{}", bearer(token))
		if out.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", out.status, out.raw)
		}
		if r := introspect(t, p, token, client); r.status != http.StatusOK || r.raw != `{"active":false}` {
			t.Fatalf("introspection after logout: %d %s", r.status, r.raw)
		}
		// A local check cannot see a logout: that is what introspection is for.
		if _, err := v.Verify(token); err != nil {
			t.Fatalf("verify module after logout: %v (a local check only sees expiry)", err)
		}
	})
	t.Run("a disabled user's token: inactive as soon as the disable answered", func(t *testing.T) {
		admin := postJSON(t, p.url("/api/v1/auth/register"), map[string]any{"username": "verify_admin", "password": "correct horse battery"})
		if admin.status != http.StatusCreated {
			t.Fatalf("register: %d %s", admin.status, admin.raw)
		}
		p.grantAdmin("verify_admin")
		login := p.login("o_verify_disabled")
		victim, token := userID(t, login), str(login, "access_token")
		if r := introspect(t, p, token, client); r.body["active"] != true {
			t.Fatalf("introspection before the disable: %d %s", r.status, r.raw)
		}
		d := do(t, http.MethodPost, p.url("/api/v1/admin/users/"+victim+"/disable"), "", "", bearer(str(admin, "access_token")))
		if d.status != http.StatusOK {
			t.Fatalf("disable: %d %s", d.status, d.raw)
		}
		if r := introspect(t, p, token, client); r.status != http.StatusOK || r.raw != `{"active":false}` {
			t.Fatalf("introspection after the disable: %d %s", r.status, r.raw)
		}
	})
}

// TestKeyRotationAsSeparateProcesses: the verify module, fed from the
// running stack's jwks_uri, follows `session rotate-key`: a token signed
// with the old key still verifies while that key is published (retired
// keys stay for twice the access TTL), and is refused once it is gone.
func TestKeyRotationAsSeparateProcesses(t *testing.T) {
	const accessTTL = 2 * time.Second // retention: 2 × the access TTL
	p := startProcs(t, "WXLOGIN_ACCESS_TTL="+accessTTL.String())
	jwksURI := p.url("/.well-known/jwks.json")
	loginAt := time.Now()
	// The module's clock stays at the login: expiry (2 s) is not what this tests.
	v := remoteVerifier(t, jwksURI, func() time.Time { return loginAt })

	login := func() string { return str(p.login("o_rotation"), "access_token") }
	kidOf := func(token string) string {
		tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := tok.Header["kid"].(string)
		return kid
	}
	published := func() []string {
		r := do(t, http.MethodGet, jwksURI, "", "", nil)
		var set verify.JWKSet
		if err := json.Unmarshal([]byte(r.raw), &set); r.status != http.StatusOK || err != nil {
			t.Fatalf("jwks: %d %s", r.status, r.raw)
		}
		var kids []string
		for _, k := range set.Keys {
			if pub, err := k.Ed25519(); err != nil || verify.Ed25519KeyID(pub) != k.Kid {
				t.Fatalf("published key %+v is not an Ed25519 key under its thumbprint", k)
			}
			kids = append(kids, k.Kid)
		}
		return kids
	}
	rotate := func() string {
		t.Helper()
		out, err := p.command("session", "rotate-key", "-delay", "0s").Output()
		if err != nil {
			t.Fatalf("session rotate-key: %v\n%s", err, p.logs.String())
		}
		// The gateway re-reads the keys every 30 s; a restart reads them now.
		p.terminate("gateway")
		p.start("gateway")
		if err := waitReady(context.Background(), p.url("/readyz"), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}

	old := login()
	k1 := kidOf(old)
	if _, err := v.Verify(old); err != nil {
		t.Fatalf("before rotation: %v", err)
	}

	k2 := rotate()
	rotatedAt := time.Now()
	if kids := published(); !slices.Contains(kids, k1) || !slices.Contains(kids, k2) {
		t.Fatalf("after rotate-key: published %v, want %s and %s", kids, k1, k2)
	}
	var fresh string
	until(t, 10*time.Second, "session to sign with the new key", func() bool {
		fresh = login()
		return kidOf(fresh) == k2
	})
	if _, err := v.Verify(fresh); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Verify(old); err != nil {
		t.Fatalf("token of the retired, still published key: %v", err)
	}

	// The retention is wall-clock time after the rotation: nothing to poll.
	time.Sleep(time.Until(rotatedAt.Add(2*accessTTL + 500*time.Millisecond)))
	rotate()
	if kids := published(); slices.Contains(kids, k1) || !slices.Contains(kids, k2) {
		t.Fatalf("after the second rotate-key: published %v, want %s gone and %s kept", kids, k1, k2)
	}
	until(t, 10*time.Second, "the module to drop the deleted key", func() bool {
		_, err := v.Verify(old)
		return verifyCode(err) == verify.CodeTokenInvalid
	})
	if _, err := v.Verify(fresh); err != nil {
		t.Fatalf("token of the retired, still published second key: %v", err)
	}
}

// nodeExample is the jose example of docs/verifying-tokens.md.
const nodeExample = "../../examples/node-verify"

// nodeVerify runs the example on token (installing jose from its lock file
// first, once) and returns what it printed; ok is whether it must succeed.
func nodeVerify(t *testing.T, base, token string, ok bool) map[string]any {
	t.Helper()
	if _, err := os.Stat(nodeExample + "/node_modules/jose"); err != nil {
		if out, err := exec.Command("npm", "ci", "--prefix", nodeExample, "--no-audit", "--no-fund").CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", nodeExample, err, out)
		}
	}
	cmd := exec.Command("node", "verify.mjs", base, token)
	cmd.Dir = nodeExample
	out, err := cmd.Output()
	if (err == nil) != ok {
		t.Fatalf("node verify.mjs: %v, want success %v\n%s", err, ok, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node verify.mjs printed %q: %v", out, err)
	}
	return got
}
