package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// standIn is a WeChat stand-in written independently of shared/wechat/fakewechat,
// so this test shows the services need nothing of our fake but its base URL.
type standIn struct {
	mu    sync.Mutex
	codes map[string]string // code -> openid
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain") // as the real one sometimes does
	q := r.URL.Query()
	if r.URL.Path != "/sns/jscode2session" || q.Get("appid") != "wxstandin000000001" || q.Get("secret") != "standin-secret" {
		fmt.Fprint(w, `{"errcode":40013,"errmsg":"invalid appid rid: 1"}`)
		return
	}
	s.mu.Lock()
	openid, ok := s.codes[q.Get("js_code")]
	delete(s.codes, q.Get("js_code"))
	s.mu.Unlock()
	if !ok {
		fmt.Fprint(w, `{"errcode":40029,"errmsg":"invalid code, rid: 2"}`)
		return
	}
	fmt.Fprintf(w, `{"session_key":"c3RhbmRpbi1rZXktMTIzNA==","openid":%q}`, openid)
}

func (s *standIn) mint(code, openid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = openid
}

// TestServicesAsSeparateProcesses builds the gateway, identity and session
// binaries and runs each as its own process, configured only by the
// DESIGN.md environment, on one NATS server and a Postgres database.
func TestServicesAsSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "../gateway", "../identity", "../session")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ns := natstest.Start(t)
	dsn := pgtest.NewDatabase(t, nil)
	wx := &standIn{codes: map[string]string{}}
	wxSrv := httptest.NewServer(wx)
	t.Cleanup(wxSrv.Close)
	addr := freeAddr(t)
	base := "http://" + addr
	env := append(os.Environ(),
		"WXLOGIN_NATS_URL="+ns.ClientURL(),
		"WXLOGIN_DATABASE_URL="+dsn,
		"WXLOGIN_HTTP_ADDR="+addr,
		"WXLOGIN_PUBLIC_URL="+base,
		"WXLOGIN_WECHAT_API_BASE="+wxSrv.URL,
		"WXLOGIN_MINIPROGRAM_APPID=wxstandin000000001",
		"WXLOGIN_MINIPROGRAM_SECRET=standin-secret",
	)
	procs := map[string]*exec.Cmd{}
	start := func(name string) {
		cmd := exec.Command(filepath.Join(bin, name))
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		procs[name] = cmd
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	for _, name := range []string{"identity", "session", "gateway"} {
		start(name)
	}
	if err := waitReady(context.Background(), base+"/readyz", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	login := base + "/api/v1/auth/miniprogram/login"
	wx.mint("code-1", "o_standin_user")
	r := postJSON(t, login, map[string]any{"code": "code-1"})
	if r.status != http.StatusOK || r.body["is_new_user"] != true {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	first := userID(t, r)
	wx.mint("code-2", "o_standin_user")
	r = postJSON(t, login, map[string]any{"code": "code-2"})
	if r.status != http.StatusOK || userID(t, r) != first || r.body["is_new_user"] != false {
		t.Fatalf("second login: %d %s", r.status, r.raw)
	}
	wantProblem(t, postJSON(t, login, map[string]any{"code": "code-2"}), http.StatusUnauthorized, "wechat_code_invalid")

	// The JWKS alone verifies the token (checked in depth in shared/jwtverify).
	jwks := do(t, http.MethodGet, base+"/.well-known/jwks.json", "", "", nil)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks.raw), &set); jwks.status != 200 || err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %d %s", jwks.status, jwks.raw)
	}

	// Identity dies: logins get 503 service_unavailable quickly, not a hang.
	id := procs["identity"]
	_ = id.Process.Kill()
	_ = id.Wait()
	wx.mint("code-3", "o_standin_user")
	began := time.Now()
	wantProblem(t, postJSON(t, login, map[string]any{"code": "code-3"}), http.StatusServiceUnavailable, "service_unavailable")
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("503 took %s with identity down, want a few seconds at most", took)
	}
	// Back again: the same code now works, no restart of the others needed.
	start("identity")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = postJSON(t, login, map[string]any{"code": "code-3"})
		if r.status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("while identity restarts: %d %s", r.status, r.raw)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline, not synchronising
	}
	if r.status != http.StatusOK || userID(t, r) != first {
		t.Fatalf("after identity restart: %d %s", r.status, r.raw)
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
