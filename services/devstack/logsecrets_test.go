package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNoSecretInLogs runs every flow against the services as separate
// processes at debug level and then looks for each secret the flows handled
// (WeChat codes, states and poll tokens, bind tokens, access and refresh
// tokens, passwords, the stand-in's session_key and access token, app
// secrets, the signing key, and every secret in the services' environment,
// NATS passwords included) in everything the processes wrote: as sent, and
// base64-, URL-, JSON- or hex-encoded, as a logger could write it. Failed
// attempts run too: their error paths log more. Once with an Ed25519 key
// file, once with an HS256 secret.
func TestNoSecretInLogs(t *testing.T) {
	t.Run("EdDSA key file", func(t *testing.T) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		pemText := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		file := filepath.Join(t.TempDir(), "jwt.pem")
		if err := os.WriteFile(file, pemText, 0o600); err != nil {
			t.Fatal(err)
		}
		keys := []string{string(key.Seed()), string(der)}
		for _, line := range strings.Split(string(pemText), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				keys = append(keys, line) // the file as a logger could quote it
			}
		}
		flowsLeakNothing(t, "EdDSA", []string{"WXLOGIN_JWT_KEY_FILE=" + file}, keys...)
	})
	t.Run("HS256 secret", func(t *testing.T) {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		// stackSecrets finds WXLOGIN_JWT_SECRET itself.
		flowsLeakNothing(t, "HS256", []string{"WXLOGIN_JWT_ALG=HS256", "WXLOGIN_JWT_SECRET=" + base64.RawURLEncoding.EncodeToString(secret)})
	})
}

// flowsLeakNothing starts the processes with env, runs every flow and fails
// if any secret, keys among them, reached the output. Tokens are signed with alg.
func flowsLeakNothing(t *testing.T, alg string, env []string, keys ...string) {
	p := startProcs(t, append([]string{"WXLOGIN_AUTO_REGISTER=false"}, env...)...)
	s := &secrets{}
	s.add(standInSessionKey, standInServerToken)
	s.add(stackSecrets(p)...)
	s.add(keys...)
	const pass, pass2 = "Log-Secret-Pass-7319", "Log-Secret-Bind-4420"
	s.add(pass, pass2, pass+"x")

	// Password accounts.
	r := postJSON(t, p.url("/api/v1/auth/register"), map[string]any{"username": "logsec_alice", "password": pass})
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	s.tokens(t, r)
	r = postJSON(t, p.url("/api/v1/auth/password/login"), map[string]any{"username": "logsec_alice", "password": pass})
	if r.status != http.StatusOK {
		t.Fatalf("password login: %d %s", r.status, r.raw)
	}
	alice := s.tokens(t, r)
	if h, err := base64.RawURLEncoding.DecodeString(alice.access[:strings.IndexByte(alice.access, '.')]); err != nil || !strings.Contains(string(h), `"alg":"`+alg+`"`) {
		t.Fatalf("access token header %s, want alg %s", h, alg)
	}
	wantProblem(t, postJSON(t, p.url("/api/v1/auth/password/login"), map[string]any{"username": "logsec_alice", "password": pass + "x"}),
		http.StatusUnauthorized, "invalid_credentials")

	// Mini-program: an unknown WeChat user gets a bind token, binds it, then logs in.
	miniLogin := func(code string) response {
		s.add(code)
		p.wx.mint(code, standInUser{OpenID: "o_logsec_mini"})
		return postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": code})
	}
	r = miniLogin("logsec-mini-code-a91f0c")
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	bindToken := str(r, "bind_token")
	s.add(bindToken)
	r = postJSON(t, p.url("/api/v1/auth/bind"), map[string]any{"username": "logsec_alice", "password": pass, "bind_token": bindToken})
	if r.status != http.StatusOK {
		t.Fatalf("bind: %d %s", r.status, r.raw)
	}
	s.tokens(t, r)
	r = miniLogin("logsec-mini-code-b27d44")
	if r.status != http.StatusOK {
		t.Fatalf("mini-program login: %d %s", r.status, r.raw)
	}
	mini := s.tokens(t, r)
	s.add("logsec-spent-code-c5e3aa")
	wantProblem(t, postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": "logsec-spent-code-c5e3aa"}),
		http.StatusUnauthorized, "wechat_code_invalid")

	// Website QR login, driven like a browser: one cookie jar per browser.
	// An unknown WeChat user ends not_bound with a bind token, which registers.
	browser := newBrowserClient(t)
	webQR := func(code string) (ticket string, poll func() response) {
		r := doWith(t, browser, http.MethodPost, p.url("/api/v1/auth/web/qr"), "application/json", "{}", nil)
		if r.status != http.StatusCreated {
			t.Fatalf("create QR ticket: %d %s", r.status, r.raw)
		}
		ticket = str(r, "ticket")
		s.add(ticket, str(r, "poll_token"))
		if code != "" {
			s.add(code, "at-"+code) // the stand-in's access token holds the code
			p.wx.mint(code, standInUser{OpenID: "o_logsec_web", Nickname: "Log Secret"})
		}
		page := doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/web/callback?"+url.Values{"code": {code}, "state": {ticket}}.Encode()), "", "", nil)
		if page.status != http.StatusOK {
			t.Fatalf("callback: %d %s", page.status, page.raw)
		}
		return ticket, func() response {
			return doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/web/qr/"+ticket+"?wait=5s"), "", "", nil)
		}
	}
	ticket, poll := webQR("logsec-web-code-d8b130")
	// A stranger's poll with a made-up token learns nothing.
	if r := doWith(t, http.DefaultClient, http.MethodGet, p.url("/api/v1/auth/web/qr/"+ticket), "", "", map[string]string{"X-Poll-Token": "logsec-wrong-poll-7e21"}); r.status != http.StatusNotFound {
		t.Fatalf("poll with a wrong token: %d %s", r.status, r.raw)
	}
	s.add("logsec-wrong-poll-7e21")
	r = poll()
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	webBind := str(r, "bind_token")
	s.add(webBind)
	r = postJSON(t, p.url("/api/v1/auth/register"), map[string]any{"username": "logsec_bob", "password": pass2, "bind_token": webBind})
	if r.status != http.StatusCreated {
		t.Fatalf("register with the website's bind token: %d %s", r.status, r.raw)
	}
	s.tokens(t, r)
	_, poll = webQR("logsec-web-code-e64f92")
	r = poll()
	if r.status != http.StatusOK || str(r, "status") != "confirmed" {
		t.Fatalf("website login: %d %s", r.status, r.raw)
	}
	web := s.tokens(t, r)
	// A denial (no code) and a callback for a state nobody made.
	ticket, poll = webQR("")
	if r := poll(); str(r, "status") != "denied" {
		t.Fatalf("denied website login: %d %s", r.status, r.raw)
	}
	s.add("logsec-state-nobody-made-1f0e")
	doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/web/callback?code=logsec-web-code-f00d11&state=logsec-state-nobody-made-1f0e"), "", "", nil)
	s.add("logsec-web-code-f00d11")

	// In-WeChat browser login: the state's cookie, WeChat's code and the
	// wxlogin_code (a bind token here: auto-register is off) stay out.
	phone := newPhoneBrowser()
	r = doWith(t, phone, http.MethodGet, p.url("/api/v1/auth/oa/authorize?"+url.Values{"redirect_uri": {standInSite}}.Encode()), "", "", nil)
	wxAuth, _ := url.Parse(r.header.Get("Location"))
	state := wxAuth.Query().Get("state")
	_, cookie, _ := strings.Cut(strings.SplitN(r.header.Get("Set-Cookie"), ";", 2)[0], "=")
	s.add(cookie, "logsec-oa-code-9c1d", "at-logsec-oa-code-9c1d")
	p.wx.mint("logsec-oa-code-9c1d", standInUser{OpenID: "o_logsec_oa", AppID: standInOAAppID, Scope: "snsapi_userinfo"})
	r = doWith(t, phone, http.MethodGet, p.url("/api/v1/auth/oa/callback?"+url.Values{"code": {"logsec-oa-code-9c1d"}, "state": {state}}.Encode()), "", "", nil)
	back, _ := url.Parse(r.header.Get("Location"))
	oaCode := back.Query().Get("wxlogin_code")
	if r.status != http.StatusFound || oaCode == "" || cookie == "" {
		t.Fatalf("in-WeChat login: %d %q (cookie %q)", r.status, r.header.Get("Location"), cookie)
	}
	s.add(oaCode)
	r = postJSON(t, p.url("/api/v1/auth/oa/exchange"), map[string]any{"code": oaCode})
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	s.add(str(r, "bind_token"))
	// A mobile app's code.
	s.add("logsec-app-code-77e2", "at-logsec-app-code-77e2")
	p.wx.mint("logsec-app-code-77e2", standInUser{OpenID: "o_logsec_app", AppID: standInAppAppID})
	wantProblem(t, postJSON(t, p.url("/api/v1/auth/app/login"), map[string]any{"code": "logsec-app-code-77e2"}), http.StatusForbidden, "wechat_not_bound")

	// Phone, /me with a good and a forged token.
	p.wx.mintPhone("logsec-phone-code-5a7b", "13800138000")
	s.add("logsec-phone-code-5a7b")
	if r := postJSON2(t, p.url("/api/v1/me/phone"), map[string]any{"code": "logsec-phone-code-5a7b"}, bearer(alice.access)); r.status != http.StatusOK {
		t.Fatalf("phone: %d %s", r.status, r.raw)
	}
	if r := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(web.access)); r.status != http.StatusOK {
		t.Fatalf("me: %d %s", r.status, r.raw)
	}
	forged := web.access[:strings.LastIndexByte(web.access, '.')+1] + "AAAAlogsecforgedsignatureAAAA"
	s.add(forged)
	wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(forged)), http.StatusUnauthorized, "token_invalid")

	// Refresh, reuse of a spent refresh token, logout.
	refresh := func(tok string) response {
		return postJSON(t, p.url("/api/v1/auth/refresh"), map[string]any{"refresh_token": tok})
	}
	r = refresh(mini.refresh)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	s.tokens(t, r)
	wantProblem(t, refresh(mini.refresh), http.StatusUnauthorized, "refresh_token_reused")
	if r := postJSON2(t, p.url("/api/v1/auth/logout"), map[string]any{"refresh_token": web.refresh}, bearer(web.access)); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	wantProblem(t, do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(web.access)), http.StatusUnauthorized, "token_revoked")

	// Graceful stops log too (shutdown paths); then everything is written.
	for _, name := range []string{"gateway", "identity", "session"} {
		p.terminate(name)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) || strings.Count(logs, "\n") < 20 {
		t.Fatalf("the services' debug output was not captured:\n%s", logs)
	}
	for _, leak := range s.findIn(logs) {
		t.Errorf("secret in the logs: %s", leak)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}

// The stand-in's own secrets (procs_test.go's standIn answers them).
const (
	standInSessionKey  = "c3RhbmRpbi1rZXktMTIzNA=="
	standInServerToken = "server-token"
)

// stackSecrets are the secrets the services were started with: every
// WXLOGIN_ variable whose name says it holds one (app secrets, NATS and
// database passwords, tokens, keys), in the stack's environment or a
// process's own, and the password of every URL among them. NATS passwords
// join here however startProcs hands them to a service, as long as the
// variable's name says PASSWORD (or the URL carries it).
func stackSecrets(p *procStack) []string {
	envs := [][]string{p.env}
	for _, cmd := range p.procs {
		envs = append(envs, cmd.Env)
	}
	var out []string
	for _, env := range envs {
		for _, kv := range env {
			name, val, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(name, "WXLOGIN_") || val == "" || strings.HasSuffix(name, "_FILE") {
				continue
			}
			if secretName(name) {
				out = append(out, val)
			}
			if u, err := url.Parse(val); err == nil && u.User != nil {
				pw, ok := u.User.Password()
				switch {
				case !ok && (u.Scheme == "nats" || u.Scheme == "tls"):
					pw, ok = u.User.Username(), true // nats://TOKEN@host
				case pw == u.User.Username():
					// Its own user name (postgres:postgres in CI) shows in
					// any redacted URL: no secret.
					ok = false
				}
				if ok && len(pw) >= 8 {
					out = append(out, pw)
				}
			}
		}
	}
	return out
}

func secretName(name string) bool {
	for _, w := range []string{"SECRET", "PASSWORD", "TOKEN", "NKEY", "SEED", "PRIVATE", "SIGNING_KEY", "HS256", "AES_KEY"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// secrets is what must never reach a log.
type secrets struct{ list []string }

// pair is an answer's token pair.
type pair struct{ access, refresh string }

func (s *secrets) add(vs ...string) {
	for _, v := range vs {
		if v != "" && !slices.Contains(s.list, v) {
			s.list = append(s.list, v)
		}
	}
}

// tokens adds an answer's token pair (and the access token's signature on
// its own) and returns it.
func (s *secrets) tokens(t *testing.T, r response) pair {
	t.Helper()
	p := pair{access: str(r, "access_token"), refresh: str(r, "refresh_token")}
	if p.access == "" || p.refresh == "" {
		t.Fatalf("no token pair in %s", r.raw)
	}
	s.add(p.access, p.refresh, p.access[strings.LastIndexByte(p.access, '.')+1:])
	return p
}

// findIn returns each secret found in logs, with the form it took.
func (s *secrets) findIn(logs string) []string {
	var found []string
	for _, v := range s.list {
		for form, enc := range encodings(v) {
			if strings.Contains(logs, enc) {
				found = append(found, form+" "+v)
				break
			}
		}
	}
	return found
}

// encodings are the forms in which a logger could write v.
func encodings(v string) map[string]string {
	j, _ := json.Marshal(v)
	out := map[string]string{
		"as is":          v,
		"JSON-escaped":   strings.Trim(string(j), `"`),
		"query-escaped":  url.QueryEscape(v),
		"path-escaped":   url.PathEscape(v),
		"base64":         base64.StdEncoding.EncodeToString([]byte(v)),
		"base64url":      base64.RawURLEncoding.EncodeToString([]byte(v)),
		"base64 raw std": base64.RawStdEncoding.EncodeToString([]byte(v)),
		"hex":            hex.EncodeToString([]byte(v)),
	}
	// A value that is base64 itself (the session_key) may be logged decoded.
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) >= 8 {
		out["base64-decoded"] = string(b)
	}
	return out
}

// TestSecretsFindIn: the log check finds a secret in each encoding.
func TestSecretsFindIn(t *testing.T) {
	s := &secrets{}
	s.add("pä ss/wörd+=1", standInSessionKey)
	for form, enc := range encodings("pä ss/wörd+=1") {
		if got := s.findIn(`{"level":"DEBUG","msg":"x","v":"` + enc + `"}`); len(got) != 1 {
			t.Errorf("%s form %q not found: %v", form, enc, got)
		}
	}
	if got := s.findIn(`{"msg":"key standin-key-1234"}`); len(got) != 1 {
		t.Errorf("decoded session_key not found: %v", got)
	}
	if got := s.findIn(`{"msg":"nothing here"}`); len(got) != 0 {
		t.Errorf("found %v in a clean log", got)
	}
	p := &procStack{env: []string{"WXLOGIN_NATS_PASSWORD=nats-pass-1", "WXLOGIN_WEB_SECRET=web-secret",
		"WXLOGIN_NATS_URL=nats://gateway:url-password-2@127.0.0.1:4222", "WXLOGIN_DATABASE_URL=postgres://postgres:postgres@h/db",
		"HOME=/root"}, procs: map[string]*exec.Cmd{"gateway": {Env: []string{"WXLOGIN_NATS_GATEWAY_PASSWORD=per-process-3"}}}}
	got := stackSecrets(p)
	slices.Sort(got)
	if want := []string{"nats-pass-1", "per-process-3", "url-password-2", "web-secret"}; !slices.Equal(got, want) {
		t.Errorf("stackSecrets = %v, want %v", got, want)
	}
}

// newBrowserClient is an HTTP client with its own cookie jar, as a browser
// keeps the cookies the gateway sets.
func newBrowserClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 15 * time.Second}
}
