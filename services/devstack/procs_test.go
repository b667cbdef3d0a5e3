package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/pgtest"
	polling "github.com/wxlogin/wxlogin/shared/poll"
)

// Stand-in apps: not the devstack's, so nothing can lean on our fake's defaults.
const (
	standInMiniAppID  = "wxstandin000000001"
	standInMiniSecret = "standin-mini-secret"
	standInWebAppID   = "wxstandin000000002"
	standInWebSecret  = "standin-web-secret"
	standInOAAppID    = "wxstandin000000003" // the official account
	standInOASecret   = "standin-oa-secret"
	standInOAToken    = "standinOAtoken"
	standInAppAppID   = "wxstandin000000004" // the mobile app
	standInAppSecret  = "standin-app-secret"
	// standInSite is the site of the in-WeChat login (WXLOGIN_REDIRECT_URIS).
	standInSite = "https://site.example/h5/"
)

// standInUser is who a stand-in code belongs to. For sns/oauth2 codes,
// AppID is the app that minted it (empty: the website), Scope the official
// account's scope (snsapi_base: no unionid, no userinfo), Snapshot a
// snapshot-page code (a virtual openid, is_snapshotuser 1).
type standInUser struct {
	OpenID, UnionID, Nickname string
	AppID, Scope              string
	Snapshot                  bool
}

// standInOAuthApps are the apps sns/oauth2/access_token serves, by appid.
var standInOAuthApps = map[string]string{
	standInWebAppID: standInWebSecret, standInOAAppID: standInOASecret, standInAppAppID: standInAppSecret,
}

// standIn is a WeChat stand-in written independently of
// shared/wechat/fakewechat, so these tests show the services need nothing of
// our fake but a base URL. It implements just what the flows call, with
// WeChat's habits: HTTP 200 errors, text/plain JSON, single-use codes.
type standIn struct {
	mu     sync.Mutex
	codes  map[string]standInUser // mini-program and web codes
	tokens map[string]standInUser // web access tokens
	phones map[string]string      // phone code -> number
	calls  map[string]int
	fault  wxFault       // how every call misbehaves; "" answers normally
	delay  time.Duration // how long every call takes
	oa     standInOA     // the official account's codes and followers (oafollow_test.go)
}

// wxFault is a way WeChat (or what stands between us) misbehaves.
type wxFault string

const (
	wxSlow      wxFault = "slow"       // answers nothing until the caller gives up
	wxHTML      wxFault = "html"       // HTTP 200 with an HTML page
	wxProxyPage wxFault = "proxy-page" // HTTP 502 with a proxy's HTML page
	wxGarbage   wxFault = "garbage"    // HTTP 200 with bytes that are not JSON
	wxTruncated wxFault = "truncated"  // HTTP 200 with JSON cut short
	wxEmpty     wxFault = "empty"      // HTTP 200 with {}
	wxErrcode   wxFault = "errcode"    // an errcode we do not know
)

func (s *standIn) setFault(f wxFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *standIn) setDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// misbehave answers as fault says. It runs without s.mu held.
func misbehave(w http.ResponseWriter, r *http.Request, fault wxFault) {
	switch fault {
	case wxSlow:
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	case wxHTML:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>")
	case wxProxyPage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
	case wxGarbage:
		_, _ = w.Write([]byte("\x00\xff\x1f\x8bnot json at all"))
	case wxTruncated:
		fmt.Fprint(w, `{"openid":"o_truncated","session_key":"c3Rh`)
	case wxEmpty:
		fmt.Fprint(w, `{}`)
	case wxErrcode:
		fmt.Fprint(w, `{"errcode":48001,"errmsg":"api unauthorized, rid: 6a1f"}`)
	}
}

func newStandIn(t *testing.T) (*standIn, string) {
	s := &standIn{codes: map[string]standInUser{}, tokens: map[string]standInUser{}, phones: map[string]string{}, calls: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *standIn) mint(code string, u standInUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = u
}

func (s *standIn) mintPhone(code, number string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phones[code] = number
}

func (s *standIn) take(m map[string]standInUser, key string) (standInUser, bool) {
	u, ok := m[key]
	delete(m, key)
	return u, ok
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	s.mu.Lock()
	s.calls[r.URL.Path]++
	fault, delay := s.fault, s.delay
	s.mu.Unlock()
	select {
	case <-r.Context().Done():
		return
	case <-time.After(delay):
	}
	if fault != "" {
		misbehave(w, r, fault)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	fail := func(code int, msg string) { fmt.Fprintf(w, `{"errcode":%d,"errmsg":"%s, rid: 6a1f"}`, code, msg) }
	out := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	switch r.URL.Path {
	case "/sns/jscode2session":
		if q.Get("appid") != standInMiniAppID || q.Get("secret") != standInMiniSecret {
			fail(40125, "invalid appsecret")
			return
		}
		u, ok := s.take(s.codes, q.Get("js_code"))
		if !ok {
			fail(40029, "invalid code")
			return
		}
		resp := map[string]any{"openid": u.OpenID, "session_key": "c3RhbmRpbi1rZXktMTIzNA=="}
		if u.UnionID != "" {
			resp["unionid"] = u.UnionID
		}
		out(resp)
	case "/sns/oauth2/access_token":
		appid := q.Get("appid")
		if secret, ok := standInOAuthApps[appid]; !ok || q.Get("secret") != secret {
			fail(40125, "invalid appsecret")
			return
		}
		u, ok := s.codes[q.Get("code")]
		if ok && cmp.Or(u.AppID, standInWebAppID) != appid {
			fail(40029, "invalid code") // another app's code
			return
		}
		delete(s.codes, q.Get("code"))
		if !ok {
			if _, used := s.tokens["at-"+q.Get("code")]; used {
				fail(40163, "code been used") // as WeChat answers a spent code
				return
			}
			fail(40029, "invalid code")
			return
		}
		tok := "at-" + q.Get("code")
		resp := map[string]any{"access_token": tok, "expires_in": 7200, "refresh_token": "rt", "openid": u.OpenID,
			"scope": cmp.Or(u.Scope, "snsapi_login"), "unionid": u.UnionID}
		switch {
		case u.Snapshot: // a virtual openid, nobody's; only here is it marked
			u = standInUser{OpenID: "o_virtual_" + q.Get("code"), Scope: "snsapi_base"}
			resp = map[string]any{"access_token": tok, "expires_in": 7200, "refresh_token": "rt", "openid": u.OpenID,
				"scope": "snsapi_base", "is_snapshotuser": 1}
		case u.Scope == "snsapi_base":
			delete(resp, "unionid")
		}
		s.tokens[tok] = u
		out(resp)
	case "/sns/userinfo":
		u, ok := s.tokens[q.Get("access_token")]
		if !ok || u.OpenID != q.Get("openid") {
			fail(40001, "invalid credential")
			return
		}
		if u.Scope == "snsapi_base" {
			fail(48001, "api unauthorized")
			return
		}
		out(map[string]any{"openid": u.OpenID, "unionid": u.UnionID, "nickname": u.Nickname, "sex": "1", "headimgurl": "https://example.com/h.png", "privilege": []string{}})
	case "/cgi-bin/stable_token":
		out(map[string]any{"access_token": "server-token", "expires_in": 7200})
	case "/wxa/business/getuserphonenumber":
		var body struct {
			Code string `json:"code"`
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body)
		number, ok := s.phones[body.Code]
		delete(s.phones, body.Code)
		if q.Get("access_token") != "server-token" || !ok {
			fail(40029, "invalid code")
			return
		}
		out(map[string]any{"errcode": 0, "errmsg": "ok", "phone_info": map[string]any{
			"phoneNumber": "+86" + number, "purePhoneNumber": number, "countryCode": "86",
			"watermark": map[string]any{"timestamp": time.Now().Unix(), "appid": standInMiniAppID}}})
	default:
		if !s.serveOA(w, r, fail, out) {
			fail(-1, "system error")
		}
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the service binaries once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "wxlogin-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir, "../gateway", "../identity", "../session", "../webhooks").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binDir
}

// procStack runs gateway, identity and session as separate processes on one
// NATS server and a fresh database, configured only by the environment.
type procStack struct {
	t        *testing.T
	bin      string
	env      []string
	base     string
	dsn      string
	nats     *server.Server
	natsPort int    // the server's port (-1 until started): a restart comes back on it
	natsDir  string // the server's JetStream store, for a restart
	wx       *standIn
	procs    map[string]*exec.Cmd
	logs     *logtest.Buffer
	// metrics is the gateway's ops address (WXLOGIN_METRICS_ADDR).
	metrics string
	// codes counts the WeChat codes login has minted.
	codes int
}

// The project's own NATS config: the processes run against it.
const natsConf = "../../deploy/nats/nats.conf"

var (
	confPasswordsOnce sync.Once
	confPasswordsSet  map[string]string
)

// confPasswords sets the four password variables nats.conf reads, once for
// the test binary (the parser reads them from the environment), and
// returns them by user. The service processes get only their own.
func confPasswords() map[string]string {
	confPasswordsOnce.Do(func() {
		confPasswordsSet = natsauth.RandomPasswords()
		for u, pw := range confPasswordsSet {
			os.Setenv(natsauth.PasswordVar(u), pw)
		}
	})
	return confPasswordsSet
}

// startConfNATS runs deploy/nats/nats.conf in-process, as
// `nats-server -c nats.conf -p port -sd dir` would, on loopback with
// monitoring off: port -1 picks one; a restart passes the old port and
// dir again.
func startConfNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	confPasswords()
	opts, err := server.ProcessConfigFile(natsConf)
	if err != nil {
		t.Fatalf("%s: %v", natsConf, err)
	}
	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", port, dir
	opts.HTTPPort = 0
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server did not become ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// connectAs connects to the stack's NATS as user, closed when the test ends.
func (p *procStack) connectAs(user string) *nats.Conn {
	p.t.Helper()
	nc, err := nats.Connect(p.nats.ClientURL(), nats.UserInfo(user, confPasswords()[user]), nats.CustomInboxPrefix(natsconn.InboxPrefix(user)))
	if err != nil {
		p.t.Fatalf("connect to NATS as %s: %v", user, err)
	}
	p.t.Cleanup(nc.Close)
	return nc
}

func startProcs(t *testing.T, extraEnv ...string) *procStack {
	t.Helper()
	wx, wxURL := newStandIn(t)
	addr := freeaddr.Addr(t)
	p := &procStack{
		t: t, bin: binaries(t), base: "http://" + addr, dsn: pgtest.NewDatabase(t, nil),
		natsPort: -1, natsDir: t.TempDir(), wx: wx, procs: map[string]*exec.Cmd{}, logs: &logtest.Buffer{}, metrics: freeaddr.Addr(t),
	}
	p.startNATS()
	// No process sees another user's password (nor the server's variables).
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "WXLOGIN_NATS_") {
			p.env = append(p.env, kv)
		}
	}
	p.env = append(p.env,
		"WXLOGIN_NATS_URL="+p.nats.ClientURL(),
		"WXLOGIN_DATABASE_URL="+p.dsn,
		"WXLOGIN_HTTP_ADDR="+addr,
		"WXLOGIN_PUBLIC_URL="+p.base,
		"WXLOGIN_WECHAT_API_BASE="+wxURL,
		"WXLOGIN_WECHAT_OPEN_BASE="+wxURL,
		"WXLOGIN_MINIPROGRAM_APPID="+standInMiniAppID,
		"WXLOGIN_MINIPROGRAM_SECRET="+standInMiniSecret,
		"WXLOGIN_WEB_APPID="+standInWebAppID,
		"WXLOGIN_WEB_SECRET="+standInWebSecret,
		"WXLOGIN_OA_APPID="+standInOAAppID,
		"WXLOGIN_OA_SECRET="+standInOASecret,
		"WXLOGIN_OA_TOKEN="+standInOAToken,
		"WXLOGIN_APP_APPID="+standInAppAppID,
		"WXLOGIN_APP_SECRET="+standInAppSecret,
		"WXLOGIN_REDIRECT_URIS="+standInSite,
		"WXLOGIN_LOG_LEVEL=debug",
	)
	p.env = append(p.env, extraEnv...)
	for _, name := range []string{"identity", "session", "gateway"} {
		p.start(name)
	}
	if err := waitReady(context.Background(), p.base+"/readyz", 30*time.Second); err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, p.logs.String())
	}
	return p
}

// startNATS runs the NATS server from deploy/nats/nats.conf and pins the
// port it got, so that a restart comes back where the services reconnect to.
func (p *procStack) startNATS() {
	p.t.Helper()
	p.nats = startConfNATS(p.t, p.natsPort, p.natsDir)
	p.natsPort = p.nats.Addr().(*net.TCPAddr).Port
}

// restartNATS stops the NATS server and starts it again on the same port
// and store directory: streams and KV buckets survive, connections do not.
func (p *procStack) restartNATS() {
	p.t.Helper()
	p.stopNATS()
	p.startNATS()
}

// stopNATS shuts the NATS server down; startNATS brings it back.
func (p *procStack) stopNATS() {
	p.nats.Shutdown()
	p.nats.WaitForShutdown()
}

// start runs a service as its own NATS user (the user is named as the service).
func (p *procStack) start(name string) {
	p.t.Helper()
	cmd := p.command(name)
	if name == "gateway" {
		cmd.Env = append(cmd.Env, "WXLOGIN_METRICS_ADDR="+p.metrics)
	}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", name, err)
	}
	p.procs[name] = cmd
	p.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// command is a service binary (or one of its subcommands, args) with the
// stack's environment, as its own NATS user (the user is named as the service).
func (p *procStack) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Env = append(slices.Clip(p.env), "WXLOGIN_NATS_USER="+name, "WXLOGIN_NATS_PASSWORD="+confPasswords()[name])
	return cmd
}

// terminate asks a service to stop (SIGTERM) and waits until it has.
func (p *procStack) terminate(name string) {
	cmd := p.procs[name]
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		p.t.Errorf("%s after SIGTERM: %v", name, err)
	}
}

// kill stops a service the hard way (SIGKILL): no graceful shutdown.
func (p *procStack) kill(name string) {
	cmd := p.procs[name]
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func (p *procStack) url(path string) string { return p.base + path }

// login logs the WeChat user openID in through the mini-program route with
// a fresh code, and fails the test unless it answers 200.
func (p *procStack) login(openID string) response {
	p.t.Helper()
	p.codes++
	code := fmt.Sprintf("login-%s-%d", openID, p.codes)
	p.wx.mint(code, standInUser{OpenID: openID})
	r := postJSON(p.t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": code})
	if r.status != http.StatusOK {
		p.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return r
}

// grantAdmin makes the user with this username an administrator, through
// identity's grant-admin command, as an operator would.
func (p *procStack) grantAdmin(username string) {
	p.t.Helper()
	grant := exec.Command(filepath.Join(p.bin, "identity"), "grant-admin", username)
	grant.Env = p.env
	if out, err := grant.CombinedOutput(); err != nil {
		p.t.Fatalf("identity grant-admin %s: %v %s", username, err, out)
	}
}

// until retries f every 50 ms until it returns true or the deadline passes.
func until(t *testing.T, limit time.Duration, what string, f func() bool) {
	t.Helper()
	polling.Until(t, limit, what, f)
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func str(r response, key string) string {
	s, _ := r.body[key].(string)
	return s
}
