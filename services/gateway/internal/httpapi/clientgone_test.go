package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/gateway/internal/metrics"
	"github.com/wxlogin/wxlogin/services/gateway/internal/qrwatch"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/opshttp"
)

// ctxIdentity and ctxSession answer as the NATS clients do once the
// caller's context is done (an error wrapping ctx.Err()), and succeed
// otherwise. Methods a test does not use panic (nil embedded interface).
type ctxIdentity struct{ Identity }

func (ctxIdentity) MiniProgramLogin(ctx context.Context, _ identity.MiniProgramLoginRequest) (identity.LoginResult, error) {
	return loginOrErr(ctx, api.KindMiniProgram)
}

func (ctxIdentity) PasswordLogin(ctx context.Context, _ identity.PasswordLoginRequest) (identity.LoginResult, error) {
	return loginOrErr(ctx, api.KindPassword)
}

func (ctxIdentity) WebResolve(ctx context.Context, _ identity.WebResolveRequest) (identity.LoginResult, error) {
	return loginOrErr(ctx, api.KindWeb)
}

func (ctxIdentity) GetUser(ctx context.Context, userID string) (api.User, error) {
	if err := ctx.Err(); err != nil {
		return api.User{}, fmt.Errorf("nats: request: %w", err)
	}
	return api.User{ID: userID}, nil
}

func loginOrErr(ctx context.Context, kind string) (identity.LoginResult, error) {
	if err := ctx.Err(); err != nil {
		return identity.LoginResult{}, fmt.Errorf("nats: request: %w", err)
	}
	return identity.LoginResult{User: api.User{ID: "0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11"}, Kind: kind}, nil
}

type ctxSession struct {
	Session
	mu        sync.Mutex
	completes []session.QRCompleteRequest
}

func (s *ctxSession) Issue(ctx context.Context, _ session.IssueRequest) (session.Tokens, error) {
	if err := ctx.Err(); err != nil {
		return session.Tokens{}, fmt.Errorf("nats: request: %w", err)
	}
	return session.Tokens{AccessToken: "a", TokenType: "Bearer", ExpiresIn: 1, RefreshToken: "r", RefreshExpiresIn: 1}, nil
}

func (s *ctxSession) Refresh(ctx context.Context, _ string) (session.Tokens, error) {
	return s.Issue(ctx, session.IssueRequest{})
}

func (s *ctxSession) QRComplete(ctx context.Context, req session.QRCompleteRequest) (session.QRStatus, error) {
	if err := ctx.Err(); err != nil {
		return session.QRStatus{}, fmt.Errorf("nats: request: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completes = append(s.completes, req)
	return session.QRStatus{Status: session.QRConfirmed}, nil
}

// goneRequest is a request whose client has already gone away.
func goneRequest(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	return r.WithContext(ctx)
}

// TestClientGoneIsQuiet: when the client has gone by the time a backend call
// fails, the request ends without an error log, a 5xx in the metrics or a
// failed login.
func TestClientGoneIsQuiet(t *testing.T) {
	cases := []struct{ name, path, body string }{
		{"mini-program login", "/api/v1/auth/miniprogram/login", `{"code":"c"}`},
		{"password login", "/api/v1/auth/password/login", `{"username":"alice","password":"correct horse"}`},
		{"refresh", "/api/v1/auth/refresh", `{"refresh_token":"0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11.t"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := &logtest.Buffer{}
			log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			m := metrics.New()
			h := New(Options{Log: log, Identity: ctxIdentity{}, Session: &ctxSession{}, Metrics: m})
			h.ServeHTTP(httptest.NewRecorder(), goneRequest(http.MethodPost, c.path, c.body))

			out := logs.String()
			if strings.Contains(out, `"level":"ERROR"`) || strings.Contains(out, `"level":"WARN"`) {
				t.Errorf("logged as a failure:\n%s", out)
			}
			if !strings.Contains(out, "client went away") {
				t.Errorf("no debug line about the client leaving:\n%s", out)
			}
			rec := httptest.NewRecorder()
			opshttp.Handler(m.Registry(), nil, log).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if s := regexp.MustCompile(`http_requests_total\{[^}]*status="5\d\d"\}`).FindString(rec.Body.String()); s != "" {
				t.Errorf("counted as a server error: %s", s)
			}
			if s := regexp.MustCompile(`wxlogin_logins_total\{[^}]*\}`).FindString(rec.Body.String()); s != "" {
				t.Errorf("counted as a login attempt: %s", s)
			}
		})
	}
}

// TestCallbackOutlivesItsClient: the callback's outcome is for the browser
// waiting on the ticket, so it is recorded even when whoever opened the
// callback page has gone: the code is spent by then.
func TestCallbackOutlivesItsClient(t *testing.T) {
	ns := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: session.BucketQR, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const ticket, pollToken = "AAAAAAAAAAAAAAAAAAAAAA", "the-creating-browsers-poll-token"
	sum := sha256.Sum256([]byte(pollToken))
	b, _ := json.Marshal(session.QRRecord{Status: session.QRPending, AppID: "wx2222222222222222", PollTokenHash: hex.EncodeToString(sum[:]),
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
	if _, err := kv.Create(ctx, ticket, b); err != nil {
		t.Fatal(err)
	}

	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	se := &ctxSession{}
	h := New(Options{Log: log, Identity: ctxIdentity{}, Session: se,
		Web: WebOptions{PublicURL: "http://gw.example.test", WechatOpenBase: "https://open.example.test", Tickets: qrwatch.New(js, log)}})
	rec := httptest.NewRecorder()
	req := goneRequest(http.MethodGet, callbackPath+"?code=c&state="+ticket, "")
	req.AddCookie(&http.Cookie{Name: ticketCookiePrefix + ticket, Value: pollToken}) // the browser that showed the QR code
	h.ServeHTTP(rec, req)

	se.mu.Lock()
	defer se.mu.Unlock()
	if len(se.completes) != 1 || se.completes[0].User == nil || se.completes[0].Denied {
		t.Fatalf("completions %+v, want the confirmed user (page %d)", se.completes, rec.Code)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("logged as a failure:\n%s", logs.String())
	}
}
