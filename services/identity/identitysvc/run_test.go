package identitysvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/freeaddr"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
	"github.com/wxlogin/wxlogin/shared/poll"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// service is a running identity service with real parts around it.
type service struct {
	*env
	client *identity.Client
	nc     *nats.Conn
	logs   *logtest.Buffer
	cfg    identitysvc.Config
	stop   func() // stops this instance (also at the end of the test)
}

// env is what identity instances share: NATS, Postgres, the fake WeChat.
type env struct {
	ns    *server.Server
	fake  *fakewechat.Server
	calls *callCounter
	wxURL string
	dsn   string
	db    *sqlx.DB
}

// callCounter counts the requests the fake WeChat gets, by path.
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.Handler
}

func (c *callCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.counts[r.URL.Path]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *callCounter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[path]
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := natstest.Start(t)
	fake := fakewechat.New(fakewechat.Options{})
	calls := &callCounter{counts: map[string]int{}, next: fake}
	hs := httptest.NewServer(calls)
	t.Cleanup(hs.Close)
	dsn := pgtest.NewDatabase(t, nil)
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{ns: ns, fake: fake, calls: calls, wxURL: hs.URL, dsn: dsn, db: db}
}

// start runs identitysvc.Run against an embedded NATS, a fresh database
// (which Run migrates) and the fake WeChat; it stops when the test ends.
func start(t *testing.T, edit func(*identitysvc.Config)) *service {
	t.Helper()
	return newEnv(t).start(t, edit)
}

// start runs one more identity instance in e.
func (e *env) start(t *testing.T, edit func(*identitysvc.Config)) *service {
	t.Helper()
	cfg := identitysvc.DefaultConfig()
	cfg.NATSURL = e.ns.ClientURL()
	cfg.DatabaseURL = e.dsn
	cfg.WechatAPIBase = e.wxURL
	cfg.MiniProgramAppID, cfg.MiniProgramSecret = fakewechat.DevMiniProgramAppID, fakewechat.DevMiniProgramSecret
	cfg.WebAppID, cfg.WebSecret = fakewechat.DevWebAppID, fakewechat.DevWebSecret
	if edit != nil {
		edit(&cfg)
	}
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- identitysvc.Run(ctx, cfg, log) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)

	nc := natstest.Connect(t, e.ns)
	s := &service{env: e, client: identity.NewClient(nc), nc: nc, logs: logs, cfg: cfg, stop: stop}

	// Ready once user.get answers (not_found for a random id).
	poll.UntilNil(t, 20*time.Second, "identity to answer", func() error {
		_, err := s.client.GetUser(context.Background(), "00000000-0000-0000-0000-000000000000")
		if api.CodeOf(err) == api.CodeNotFound {
			return nil
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		return fmt.Errorf("identity not ready: %w", err)
	})
	return s
}

func (s *service) mint(t *testing.T, u fakewechat.User) (string, fakewechat.User) {
	t.Helper()
	code, user, err := s.fake.MintCode(fakewechat.DevMiniProgramAppID, u)
	if err != nil {
		t.Fatal(err)
	}
	return code, user
}

// loginRaw sends a login request and returns the raw reply, to check what
// goes over the wire.
func (s *service) loginRaw(t *testing.T, req identity.MiniProgramLoginRequest) (identity.LoginResult, []byte) {
	t.Helper()
	data, _ := json.Marshal(req)
	msg, err := s.nc.Request(identity.SubjectMiniProgramLogin, data, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		t.Fatalf("login failed: %s %s", code, msg.Header.Get("Nats-Service-Error"))
	}
	var res identity.LoginResult
	if err := json.Unmarshal(msg.Data, &res); err != nil {
		t.Fatal(err)
	}
	return res, msg.Data
}

func ptr[T any](v T) *T { return &v }

func TestMiniProgramLogin(t *testing.T) {
	s := start(t, nil)
	code, wxUser := s.mint(t, fakewechat.User{})

	first, raw1 := s.loginRaw(t, identity.MiniProgramLoginRequest{Code: code, Profile: &identity.Profile{
		Nickname: ptr("小明"), AvatarURL: ptr("https://thirdwx.qlogo.cn/a.png"), Gender: ptr(1), Language: ptr("zh_CN"),
		City: ptr("Guangzhou"), Province: ptr("Guangdong"), Country: ptr("China"),
	}})
	if !first.IsNewUser || first.Kind != api.KindMiniProgram || first.AppID != fakewechat.DevMiniProgramAppID {
		t.Errorf("first login = %+v", first)
	}
	u := first.User
	if want := store.GeneratedUsername(fakewechat.DevMiniProgramAppID, wxUser.OpenID, 12); u.Username != want {
		t.Errorf("username = %q, want %q", u.Username, want)
	}
	if u.Nickname != "小明" || u.Gender != 1 || u.City != "Guangzhou" || u.Country != "China" || u.ID == "" || u.CreatedAt.IsZero() {
		t.Errorf("user = %+v", u)
	}

	code, _ = s.mint(t, fakewechat.User{OpenID: wxUser.OpenID})
	second, raw2 := s.loginRaw(t, identity.MiniProgramLoginRequest{Code: code, Profile: &identity.Profile{Nickname: ptr("小明2")}})
	if second.IsNewUser || second.User.ID != u.ID {
		t.Errorf("second login = %+v, want user %s, not new", second, u.ID)
	}
	if second.User.Nickname != "小明2" || second.User.City != "Guangzhou" || second.User.AvatarURL != "https://thirdwx.qlogo.cn/a.png" {
		t.Errorf("second login did not update only the sent fields: %+v", second.User)
	}

	// The session_key stays in identities.session_key.
	var sessionKey string
	if err := s.db.Get(&sessionKey, `SELECT session_key FROM identities WHERE openid = $1`, wxUser.OpenID); err != nil || sessionKey == "" {
		t.Fatalf("session_key = %q, %v", sessionKey, err)
	}
	for name, text := range map[string]string{"first reply": string(raw1), "second reply": string(raw2), "logs": s.logs.String()} {
		if strings.Contains(text, sessionKey) || strings.Contains(text, "session_key") {
			t.Errorf("%s mentions the session_key:\n%s", name, text)
		}
		if strings.Contains(text, code) {
			t.Errorf("%s holds the login code", name)
		}
		if strings.Contains(text, fakewechat.DevMiniProgramSecret) {
			t.Errorf("%s holds the app secret", name)
		}
	}
	if !strings.Contains(s.logs.String(), `"msg":"wechat login"`) {
		t.Error("no login was logged: the log checks above prove nothing")
	}

	// user.get returns the user with its identity.
	got, err := s.client.GetUser(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.Nickname != "小明2" || len(got.Identities) != 1 || got.Identities[0].Kind != api.KindMiniProgram ||
		got.Identities[0].AppID != fakewechat.DevMiniProgramAppID || got.Identities[0].Provider != "wechat" {
		t.Errorf("user.get = %+v", got)
	}

	// Events: created once, logged_in per login, Nats-Msg-Id = event id.
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	var events []*jetstream.RawStreamMsg
	poll.Until(t, 15*time.Second, "3 events on the stream", func() bool {
		events = streamMessages(t, js)
		return len(events) >= 3
	})
	var subjects []string
	for _, m := range events {
		subjects = append(subjects, m.Subject)
		var e identity.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.ID == "" || m.Header.Get(jetstream.MsgIDHeader) != e.ID || e.User.ID != u.ID || e.Identity == nil || e.Identity.OpenID != wxUser.OpenID {
			t.Errorf("event %s: %s", m.Subject, m.Data)
		}
		if strings.Contains(string(m.Data), sessionKey) {
			t.Errorf("event holds the session_key: %s", m.Data)
		}
	}
	// A returning login's logged_in is published at once, not through the
	// outbox: it may reach the stream before the relay's user.created.
	slices.Sort(subjects)
	if want := []string{identity.SubjectUserCreated, identity.SubjectUserLoggedIn, identity.SubjectUserLoggedIn}; strings.Join(subjects, ",") != strings.Join(want, ",") {
		t.Errorf("events = %v, want %v", subjects, want)
	}
}

func streamMessages(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, identity.EventStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestMiniProgramLoginConcurrentFirstLogins(t *testing.T) {
	s := start(t, nil)
	_, wxUser := s.mint(t, fakewechat.User{UnionID: "o6_bmasdasdsad6_2sgVt7hMZOPfL"})
	const n = 50
	codes := make([]string, n)
	for i := range codes {
		codes[i], _ = s.mint(t, fakewechat.User{OpenID: wxUser.OpenID})
	}
	results := make([]identity.LoginResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			results[i], errs[i] = s.client.MiniProgramLogin(ctx, identity.MiniProgramLoginRequest{Code: codes[i]})
		})
	}
	wg.Wait()
	newUsers := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("login %d: %v", i, errs[i])
		}
		if results[i].User.ID != results[0].User.ID {
			t.Errorf("login %d: user %s, login 0: %s", i, results[i].User.ID, results[0].User.ID)
		}
		if results[i].IsNewUser {
			newUsers++
		}
	}
	if newUsers != 1 {
		t.Errorf("is_new_user in %d replies, want 1", newUsers)
	}
	for table, want := range map[string]int{"users": 1, "identities": 1} {
		var got int
		if err := s.db.Get(&got, `SELECT count(*) FROM `+table); err != nil || got != want {
			t.Errorf("%s rows = %d (%v), want %d", table, got, err, want)
		}
	}
}

func TestMiniProgramLoginErrors(t *testing.T) {
	s := start(t, nil)
	_, disabled := s.mint(t, fakewechat.User{})
	code, _ := s.mint(t, fakewechat.User{OpenID: disabled.OpenID})
	res, err := s.client.MiniProgramLogin(context.Background(), identity.MiniProgramLoginRequest{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`UPDATE users SET disabled_at = now() WHERE id = $1`, res.User.ID); err != nil {
		t.Fatal(err)
	}
	used, _ := s.mint(t, fakewechat.User{})
	if _, err := s.client.MiniProgramLogin(context.Background(), identity.MiniProgramLoginRequest{Code: used}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		errcode int // a WeChat failure to inject, or 0
		req     func() identity.MiniProgramLoginRequest
		want    api.Code
	}{
		{"invalid code 40029", 40029, fresh(s, t), api.CodeWechatCodeInvalid},
		{"unknown code", 0, func() identity.MiniProgramLoginRequest { return identity.MiniProgramLoginRequest{Code: "no-such-code"} }, api.CodeWechatCodeInvalid},
		{"reused code 40163", 0, func() identity.MiniProgramLoginRequest { return identity.MiniProgramLoginRequest{Code: used} }, api.CodeWechatCodeUsed},
		{"minute quota 45011", 45011, fresh(s, t), api.CodeWechatRateLimited},
		{"busy -1", -1, fresh(s, t), api.CodeWechatUnavailable},
		{"high risk user 40226", 40226, fresh(s, t), api.CodeWechatError},
		{"bad credentials 40125", 40125, fresh(s, t), api.CodeWechatError},
		{"empty code", 0, func() identity.MiniProgramLoginRequest { return identity.MiniProgramLoginRequest{} }, api.CodeCodeMissing},
		{"unknown app", 0, func() identity.MiniProgramLoginRequest {
			r := fresh(s, t)()
			r.App = "nope"
			return r
		}, api.CodeInvalidRequest},
		{"web app for a mini-program login", 0, func() identity.MiniProgramLoginRequest {
			r := fresh(s, t)()
			r.App = identitysvc.AppWeb
			return r
		}, api.CodeInvalidRequest},
		{"bad gender", 0, func() identity.MiniProgramLoginRequest {
			r := fresh(s, t)()
			r.Profile = &identity.Profile{Gender: ptr(7)}
			return r
		}, api.CodeInvalidRequest},
		{"nickname too long", 0, func() identity.MiniProgramLoginRequest {
			r := fresh(s, t)()
			r.Profile = &identity.Profile{Nickname: ptr(strings.Repeat("长", 65))}
			return r
		}, api.CodeInvalidRequest},
		{"disabled user", 0, func() identity.MiniProgramLoginRequest {
			c, _ := s.mint(t, fakewechat.User{OpenID: disabled.OpenID})
			return identity.MiniProgramLoginRequest{Code: c}
		}, api.CodeUserDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			if tc.errcode != 0 {
				s.fake.FailNext("/sns/jscode2session", tc.errcode, 1)
			}
			_, err := s.client.MiniProgramLogin(context.Background(), req)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.want {
				t.Fatalf("err = %v, want code %s", err, tc.want)
			}
			if strings.Contains(ae.Message, "rid:") || strings.Contains(strings.ToLower(ae.Message), "errcode") {
				t.Errorf("message passes WeChat's text on: %q", ae.Message)
			}
		})
	}
	if strings.Contains(s.logs.String(), fakewechat.DevMiniProgramSecret) {
		t.Error("logs hold the app secret")
	}
}

// fresh returns a request builder with a new valid code.
func fresh(s *service, t *testing.T) func() identity.MiniProgramLoginRequest {
	return func() identity.MiniProgramLoginRequest {
		c, _ := s.mint(t, fakewechat.User{})
		return identity.MiniProgramLoginRequest{Code: c}
	}
}

func TestMiniProgramLoginWechatUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := start(t, func(c *identitysvc.Config) { c.WechatAPIBase = "http://" + addr })
	code, _ := s.mint(t, fakewechat.User{})
	_, err = s.client.MiniProgramLogin(context.Background(), identity.MiniProgramLoginRequest{Code: code})
	if api.CodeOf(err) != api.CodeWechatUnavailable {
		t.Fatalf("err = %v, want %s", err, api.CodeWechatUnavailable)
	}
	logs := s.logs.String()
	if strings.Contains(logs, code) || strings.Contains(logs, fakewechat.DevMiniProgramSecret) {
		t.Errorf("logs hold the code or the secret:\n%s", logs)
	}
	if !strings.Contains(logs, "wechat unreachable") {
		t.Error("the failure was not logged")
	}
}

// identity started before its NATS server serves as soon as NATS is there.
func TestRunWaitsForNATS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := identitysvc.DefaultConfig()
	cfg.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	cfg.DatabaseURL = pgtest.NewDatabase(t, nil)
	cfg.MetricsAddr = freeaddr.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- identitysvc.Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Up but not serving yet: unhealthy.
	waitReadyz(t, cfg.MetricsAddr, http.StatusServiceUnavailable, "not serving")

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	client := identity.NewClient(natstest.Connect(t, ns))
	poll.Until(t, 15*time.Second, "identity answering", func() bool {
		_, err := client.GetUser(context.Background(), "00000000-0000-0000-0000-000000000000")
		return api.CodeOf(err) == api.CodeNotFound
	})
	waitReadyz(t, cfg.MetricsAddr, http.StatusOK, `{"status":"ok"}`)
}

func TestUserGet(t *testing.T) {
	s := start(t, nil)
	for _, tc := range []struct{ name, id string }{
		{"unknown", "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1"},
		{"malformed", "1; DROP TABLE users"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.client.GetUser(context.Background(), tc.id); api.CodeOf(err) != api.CodeNotFound {
				t.Errorf("err = %v, want %s", err, api.CodeNotFound)
			}
		})
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*identitysvc.Config)
		want string
	}{
		{"api base", func(c *identitysvc.Config) { c.WechatAPIBase = "ftp://x" }, "WXLOGIN_WECHAT_API_BASE"},
		{"secret without appid", func(c *identitysvc.Config) { c.WebSecret = "s" }, "WXLOGIN_WEB_APPID"},
		{"apps file", func(c *identitysvc.Config) { c.AppsFile = "/nonexistent/apps.yaml" }, "WXLOGIN_APPS_FILE"},
		{"replicas", func(c *identitysvc.Config) { c.NATSReplicas = 7 }, "WXLOGIN_NATS_REPLICAS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := identitysvc.DefaultConfig()
			tc.edit(&cfg)
			err := identitysvc.Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	dsn := pgtest.NewDatabase(t, nil)
	for i := range 3 {
		if err := identitysvc.Migrate(context.Background(), dsn); err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	if err := db.Get(&version, `SELECT max(version_id) FROM goose_db_version`); err != nil || version < 1 {
		t.Errorf("schema version = %d, %v", version, err)
	}
}

// Start-up logs name the apps and the NATS server, never an app secret nor
// NATS credentials (a token given as the URL's user included).
func TestStartupLogsHoldNoSecrets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apps.yaml")
	const fileSecret = "apps-file-secret-value"
	if err := os.WriteFile(file, []byte("- {name: shop, kind: miniprogram, appid: wxshop, secret: "+fileSecret+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	const natsUser, natsPass = "nats-user-value", "nats-pass-value"
	s := e.start(t, func(c *identitysvc.Config) {
		c.AppsFile = file
		c.NATSURL = strings.Replace(c.NATSURL, "nats://", "nats://"+natsUser+":"+natsPass+"@", 1)
	})
	s.stop()
	logs := s.logs.String()
	for _, secret := range []string{fileSecret, fakewechat.DevMiniProgramSecret, fakewechat.DevWebSecret, natsUser, natsPass} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs hold %q:\n%s", secret, logs)
		}
	}
	for _, visible := range []string{"wxshop", fakewechat.DevMiniProgramAppID, "identity stopped"} {
		if !strings.Contains(logs, visible) {
			t.Errorf("logs lack %q:\n%s", visible, logs)
		}
	}
}
