package main

import (
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// Stand-in apps: not the devstack's, so nothing can lean on our fake's defaults.
const (
	standInMiniAppID  = "wxstandin000000001"
	standInMiniSecret = "standin-mini-secret"
	standInWebAppID   = "wxstandin000000002"
	standInWebSecret  = "standin-web-secret"
)

// standInUser is who a stand-in code belongs to.
type standInUser struct {
	OpenID, UnionID, Nickname string
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
	defer s.mu.Unlock()
	s.calls[r.URL.Path]++
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
		if q.Get("appid") != standInWebAppID || q.Get("secret") != standInWebSecret {
			fail(40125, "invalid appsecret")
			return
		}
		u, ok := s.take(s.codes, q.Get("code"))
		if !ok {
			if _, used := s.tokens["at-"+q.Get("code")]; used {
				fail(40163, "code been used") // as WeChat answers a spent code
				return
			}
			fail(40029, "invalid code")
			return
		}
		tok := "at-" + q.Get("code")
		s.tokens[tok] = u
		out(map[string]any{"access_token": tok, "expires_in": 7200, "refresh_token": "rt", "openid": u.OpenID, "scope": "snsapi_login", "unionid": u.UnionID})
	case "/sns/userinfo":
		u, ok := s.tokens[q.Get("access_token")]
		if !ok || u.OpenID != q.Get("openid") {
			fail(40001, "invalid credential")
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
		fail(-1, "system error")
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
		out, err := exec.Command("go", "build", "-o", binDir, "../gateway", "../identity", "../session").CombinedOutput()
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
	t     *testing.T
	bin   string
	env   []string
	base  string
	dsn   string
	nats  *server.Server
	wx    *standIn
	procs map[string]*exec.Cmd
	logs  *logtest.Buffer
}

func startProcs(t *testing.T, extraEnv ...string) *procStack {
	t.Helper()
	ns := natstest.Start(t)
	wx, wxURL := newStandIn(t)
	addr := freeAddr(t)
	p := &procStack{
		t: t, bin: binaries(t), base: "http://" + addr, dsn: pgtest.NewDatabase(t, nil),
		nats: ns, wx: wx, procs: map[string]*exec.Cmd{}, logs: &logtest.Buffer{},
	}
	p.env = append(os.Environ(),
		"WXLOGIN_NATS_URL="+ns.ClientURL(),
		"WXLOGIN_DATABASE_URL="+p.dsn,
		"WXLOGIN_HTTP_ADDR="+addr,
		"WXLOGIN_PUBLIC_URL="+p.base,
		"WXLOGIN_WECHAT_API_BASE="+wxURL,
		"WXLOGIN_WECHAT_OPEN_BASE="+wxURL,
		"WXLOGIN_MINIPROGRAM_APPID="+standInMiniAppID,
		"WXLOGIN_MINIPROGRAM_SECRET="+standInMiniSecret,
		"WXLOGIN_WEB_APPID="+standInWebAppID,
		"WXLOGIN_WEB_SECRET="+standInWebSecret,
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

func (p *procStack) start(name string) {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(p.bin, name))
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", name, err)
	}
	p.procs[name] = cmd
	p.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
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

// until retries f every 50 ms until it returns true or the deadline passes.
func until(t *testing.T, limit time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func str(r response, key string) string {
	s, _ := r.body[key].(string)
	return s
}
