package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

type testStack struct {
	*Stack
	dsn  string
	logs *logtest.Buffer
}

// startStack runs the whole devstack in-process on random ports against a
// fresh database; it stops when the test ends.
func startStack(t *testing.T) *testStack {
	t.Helper()
	dsn := pgtest.NewDatabase(t, nil) // identity migrates it on start, as in production
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	st, err := Start(ctx, Options{
		DatabaseURL: dsn,
		HTTPAddr:    "127.0.0.1:0",
		FakeAddr:    "127.0.0.1:0",
		NATSPort:    -1,
		DataDir:     t.TempDir(),
	}, log)
	if err != nil {
		cancel()
		t.Fatalf("start devstack: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := st.Wait(); err != nil && err != context.Canceled {
			t.Errorf("devstack stopped with: %v", err)
		}
	})
	return &testStack{Stack: st, dsn: dsn, logs: logs}
}

func (s *testStack) mint(t *testing.T, u fakewechat.User) string {
	t.Helper()
	code, _, err := s.Fake.MintCode(devMiniProgramAppID, u)
	if err != nil {
		t.Fatalf("mint code: %v", err)
	}
	return code
}

type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func do(t *testing.T, method, url, contentType, body string, header map[string]string) response {
	t.Helper()
	return doWith(t, http.DefaultClient, method, url, contentType, body, header)
}

// doWith is do with a client of the caller's (one with a cookie jar, say).
func doWith(t *testing.T, client *http.Client, method, url, contentType, body string, header map[string]string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	r.body = decodeJSON(r.raw)
	return r
}

// decodeJSON returns the object in raw, or nil when it is not one.
func decodeJSON(raw string) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(raw), &m)
	return m
}

func postJSON(t *testing.T, url string, v any) response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.MethodPost, url, "application/json", string(b), nil)
}

// postJSON2 posts v as JSON with extra headers.
func postJSON2(t *testing.T, url string, v any, header map[string]string) response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.MethodPost, url, "application/json", string(b), header)
}

// wantProblem checks a problem+json answer with the given status and code.
func wantProblem(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.body["code"] != code {
		t.Fatalf("got %d %v, want %d %s; body %s", r.status, r.body["code"], status, code, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	if r.body["request_id"] == "" || r.header.Get("X-Request-ID") == "" {
		t.Errorf("problem without request id: %s", r.raw)
	}
}

func userID(t *testing.T, r response) string {
	t.Helper()
	u, _ := r.body["user"].(map[string]any)
	id, _ := u["id"].(string)
	if id == "" {
		t.Fatalf("no user id in %s", r.raw)
	}
	return id
}
