package gatewaysvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const (
	testAppID  = "wx1111111111111111"
	testUserID = "0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11"
	testIssuer = "wxlogin"
)

// env is one test's world: an embedded NATS, stub identity and session
// services on it, and gateways under test.
type env struct {
	t    *testing.T
	ns   *server.Server
	nc   *nats.Conn
	logs *logtest.Buffer
	log  *slog.Logger
	id   *identityStub
	se   *sessionStub
	// ops is the base URL of the latest gateway's ops listener (/metrics).
	ops string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := natstest.Start(t)
	e := &env{t: t, ns: ns, nc: natstest.Connect(t, ns), logs: &logtest.Buffer{}}
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.id = &identityStub{}
	e.se = newSessionStub(t)
	return e
}

// endpoint adapts a stub to a micro handler with the wire format of
// natsrpc.Endpoint (JSON bodies, contract codes in the micro error headers,
// the request id header into ctx). It answers in micro's own goroutine:
// natsrpc.Pool answers from another one, which races with micro's stats
// bookkeeping under -race.
func endpoint[Req, Resp any](fn func(ctx context.Context, req Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		ctx := natsrpc.WithRequestID(context.Background(), r.Headers().Get(api.HeaderRequestID))
		var req Req
		if err := json.Unmarshal(r.Data(), &req); err != nil {
			_ = r.Error(string(api.CodeInvalidRequest), "malformed request", nil)
			return
		}
		resp, err := fn(ctx, req)
		if err != nil {
			e := &api.Error{Code: api.CodeInternal, Message: "internal error"}
			errors.As(err, &e)
			var data []byte
			if len(e.Data) > 0 {
				data, _ = json.Marshal(e.Data)
			}
			_ = r.Error(string(e.Code), e.Message, data)
			return
		}
		_ = r.RespondJSON(resp)
	})
}

// startIdentity runs the identity stub as a micro service; stop removes it
// from NATS (no responders from then on).
func (e *env) startIdentity() (stop func()) {
	e.t.Helper()
	svc, err := micro.AddService(e.nc, micro.Config{Name: identity.Service, Version: "0.0.1", QueueGroup: identity.Service})
	if err != nil {
		e.t.Fatal(err)
	}
	must(e.t, svc.AddEndpoint("miniprogram_login", endpoint(e.id.login), micro.WithEndpointSubject(identity.SubjectMiniProgramLogin)))
	must(e.t, svc.AddEndpoint("user_get", endpoint(e.id.getUser), micro.WithEndpointSubject(identity.SubjectUserGet)))
	return e.stopper(svc)
}

func (e *env) startSession() (stop func()) {
	e.t.Helper()
	e.ensureBuckets() // the KV buckets session creates at start (accounts_harness_test.go)
	svc, err := micro.AddService(e.nc, micro.Config{Name: session.Service, Version: "0.0.1", QueueGroup: session.Service})
	if err != nil {
		e.t.Fatal(err)
	}
	must(e.t, svc.AddEndpoint("issue", endpoint(e.se.issue), micro.WithEndpointSubject(session.SubjectIssue)))
	must(e.t, svc.AddEndpoint("jwks", endpoint(e.se.jwks), micro.WithEndpointSubject(session.SubjectJWKS)))
	return e.stopper(svc)
}

// stopper makes sure the server has the stub's subscriptions before the test
// goes on (a flush round-trips after them), and returns the stop function,
// which flushes the unsubscriptions the same way.
func (e *env) stopper(svc micro.Service) func() {
	must(e.t, e.nc.Flush())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := svc.Stop(); err != nil {
				e.t.Errorf("stop stub: %v", err)
			}
			if err := e.nc.Flush(); err != nil && !e.nc.IsClosed() {
				e.t.Errorf("flush: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// gateway runs gatewaysvc.Serve on a free port and returns its base URL. It
// is stopped when the test ends, and Serve must then return nil.
func (e *env) gateway(mutate func(*gatewaysvc.Config)) string {
	e.t.Helper()
	cfg := gatewaysvc.Config{NATSURL: e.ns.ClientURL()}
	if mutate != nil {
		mutate(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	if cfg.MetricsListener == nil && cfg.MetricsAddr == "" {
		if cfg.MetricsListener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			e.t.Fatal(err)
		}
	}
	if cfg.MetricsListener != nil {
		e.ops = "http://" + cfg.MetricsListener.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gatewaysvc.Serve(ctx, cfg, e.log, ln) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(15 * time.Second):
			e.t.Error("Serve did not return after cancel")
		}
	})
	return "http://" + ln.Addr().String()
}

// up starts both stubs and a gateway and waits until it is ready.
func (e *env) up(mutate func(*gatewaysvc.Config)) string {
	e.t.Helper()
	e.startIdentity()
	e.startSession()
	base := e.gateway(mutate)
	poll.Until(e.t, 10*time.Second, "gateway ready", func() bool {
		return get(e.t, base+"/readyz", nil).status == http.StatusOK
	})
	return base
}

// identityStub answers identity requests; tests set its user, its error and
// read what it received.
type identityStub struct {
	mu         sync.Mutex
	fail       *api.Error
	disabled   bool   // every user it answers is disabled
	answerID   string // if set, the id of every user it answers (a buggy identity)
	logins     []identity.MiniProgramLoginRequest
	userGets   []string
	requestIDs []string
}

func (s *identityStub) setFail(err *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *identityStub) setDisabled(disabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disabled = disabled
}

func (s *identityStub) lastLogin(t *testing.T) identity.MiniProgramLoginRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logins) == 0 {
		t.Fatal("identity stub received no login")
	}
	return s.logins[len(s.logins)-1]
}

func (s *identityStub) loginCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logins)
}

func (s *identityStub) userGetCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.userGets)
}

func (s *identityStub) setAnswerID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answerID = id
}

func (s *identityStub) lastRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requestIDs) == 0 {
		return ""
	}
	return s.requestIDs[len(s.requestIDs)-1]
}

func testUser() api.User {
	return api.User{ID: testUserID, Username: "wx_0123456789ab", Nickname: "Alice", Gender: 2,
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (s *identityStub) login(ctx context.Context, req identity.MiniProgramLoginRequest) (identity.LoginResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins = append(s.logins, req)
	s.requestIDs = append(s.requestIDs, natsrpc.RequestID(ctx))
	if s.fail != nil {
		return identity.LoginResult{}, s.fail
	}
	return identity.LoginResult{User: testUser(), IsNewUser: true, Kind: api.KindMiniProgram, AppID: testAppID}, nil
}

func (s *identityStub) getUser(ctx context.Context, req identity.UserGetRequest) (api.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userGets = append(s.userGets, req.UserID)
	s.requestIDs = append(s.requestIDs, natsrpc.RequestID(ctx))
	if s.fail != nil {
		return api.User{}, s.fail
	}
	u := testUser()
	u.ID = req.UserID
	if s.answerID != "" {
		u.ID = s.answerID
	}
	if s.disabled {
		at := time.Now().UTC()
		u.DisabledAt = &at
	}
	u.Identities = []api.Identity{{ID: uuid.NewString(), Provider: "wechat", Kind: api.KindMiniProgram, AppID: testAppID, CreatedAt: u.CreatedAt}}
	return u, nil
}

// sessionStub signs real at+jwt access tokens with its Ed25519 keys and
// publishes them as a JWK set; rotate adds a key and makes it current.
type sessionStub struct {
	t      *testing.T
	mu     sync.Mutex
	keys   []ed25519.PrivateKey
	fail   *api.Error
	issues []session.IssueRequest
}

func newSessionStub(t *testing.T) *sessionStub {
	s := &sessionStub{t: t}
	s.rotate()
	return s
}

func (s *sessionStub) rotate() {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, priv)
}

func (s *sessionStub) setFail(err *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *sessionStub) jwksBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := struct {
		Keys []jwtverify.JWK `json:"keys"`
	}{}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, jwtverify.Ed25519JWK(k.Public().(ed25519.PublicKey)))
	}
	b, err := json.Marshal(set)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

func (s *sessionStub) jwks(context.Context, session.JWKSRequest) (json.RawMessage, error) {
	return s.jwksBytes(), nil
}

// token signs an access token for sub; adjust edits the claims first.
func (s *sessionStub) token(sub string, adjust func(jwt.MapClaims)) string {
	s.mu.Lock()
	key := s.keys[len(s.keys)-1]
	s.mu.Unlock()
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": testIssuer, "aud": "wxlogin", "sub": sub, "jti": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(2 * time.Hour).Unix(),
		"client_id": testAppID, "sid": uuid.NewString(), "kind": api.KindMiniProgram,
	}
	if adjust != nil {
		adjust(claims)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = jwtverify.Ed25519KeyID(key.Public().(ed25519.PublicKey))
	signed, err := tok.SignedString(key)
	if err != nil {
		s.t.Fatal(err)
	}
	return signed
}

func (s *sessionStub) issue(_ context.Context, req session.IssueRequest) (session.Tokens, error) {
	s.mu.Lock()
	s.issues = append(s.issues, req)
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		return session.Tokens{}, fail
	}
	return session.Tokens{
		AccessToken: s.token(req.UserID, nil), TokenType: "Bearer", ExpiresIn: 7200,
		RefreshToken: uuid.NewString() + ".refresh-secret-" + uuid.NewString(), RefreshExpiresIn: 2592000,
	}, nil
}

func (s *sessionStub) lastIssue(t *testing.T) session.IssueRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.issues) == 0 {
		t.Fatal("session stub received no issue request")
	}
	return s.issues[len(s.issues)-1]
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func do(t *testing.T, ctx context.Context, method, url, contentType, body string, header map[string]string) response {
	t.Helper()
	return doWith(t, http.DefaultClient, ctx, method, url, contentType, body, header)
}

// doWith is do with client, e.g. one with a cookie jar (a browser).
func doWith(t *testing.T, client *http.Client, ctx context.Context, method, url, contentType, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func get(t *testing.T, url string, header map[string]string) response {
	t.Helper()
	return do(t, context.Background(), http.MethodGet, url, "", "", header)
}

func postJSON(t *testing.T, url, body string) response {
	t.Helper()
	return do(t, context.Background(), http.MethodPost, url, "application/json", body, nil)
}

// wantProblem checks an RFC 9457 problem answer and returns its body.
func wantProblem(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	b := r.body
	if b["code"] != code || b["status"] != float64(status) || b["type"] != "https://wxlogin.dev/errors/"+code {
		t.Errorf("problem code/status/type wrong, want %s %d: %s", code, status, r.raw)
	}
	if s, _ := b["title"].(string); s == "" {
		t.Errorf("problem without title: %s", r.raw)
	}
	if s, _ := b["detail"].(string); s == "" {
		t.Errorf("problem without detail: %s", r.raw)
	}
	if rid := r.header.Get("X-Request-ID"); rid == "" || b["request_id"] != rid {
		t.Errorf("request_id %v does not match X-Request-ID %q", b["request_id"], rid)
	}
	return b
}

func apiError(code, msg string) api.Error { return api.Error{Code: api.Code(code), Message: msg} }
