package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/verify"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func jwks(t testing.TB, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	set := verify.JWKSet{Keys: []verify.JWK{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, verify.Ed25519JWK(k.Public().(ed25519.PublicKey)))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token is an access token as the session service issues it, signed by key.
func token(t testing.TB, key ed25519.PrivateKey, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": "wxlogin", "aud": "wxlogin", "sub": "user-1", "jti": "jti-1", "sid": "family-1",
		"client_id": "wx1111111111111111", "kind": "miniprogram", "iat": now.Unix(), "exp": exp.Unix(),
	})
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = verify.Ed25519KeyID(key.Public().(ed25519.PublicKey))
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts() verify.Options {
	return verify.Options{Issuer: "wxlogin", Audience: "wxlogin", Now: func() time.Time { return now }}
}

func codeOf(err error) string {
	var e *verify.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// jwksServer serves a JWK set that the test swaps, counting requests.
type jwksServer struct {
	mu    sync.Mutex
	set   []byte
	hits  atomic.Int64
	srv   *httptest.Server
	fails atomic.Bool
}

func newJWKSServer(t *testing.T, set []byte) *jwksServer {
	s := &jwksServer{set: set}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.fails.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.set)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) serve(set []byte) {
	s.mu.Lock()
	s.set = set
	s.mu.Unlock()
}

// eventually polls f every 10 ms until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

func TestRemoteRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	t1, t2 := token(t, k1, now.Add(time.Hour)), token(t, k2, now.Add(time.Hour))
	srv := newJWKSServer(t, jwks(t, k1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := verify.NewRemote(ctx, srv.srv.URL, opts(), verify.RemoteOptions{
		RefreshInterval: 50 * time.Millisecond, UnknownKIDInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t1); err != nil {
		t.Fatalf("token of the served key: %v", err)
	}
	if _, err := v.Verify(t2); codeOf(err) != verify.CodeTokenInvalid {
		t.Fatalf("token of an unpublished key: %v", err)
	}

	// Rotation: both keys published, then the old one retired.
	srv.serve(jwks(t, k1, k2))
	eventually(t, 5*time.Second, "the rotated-in key", func() bool { _, err := v.Verify(t2); return err == nil })
	if _, err := v.Verify(t1); err != nil {
		t.Fatalf("old key still published, its token refused: %v", err)
	}
	// The JWKS URL down: the cached keys go on verifying.
	srv.fails.Store(true)
	before := srv.hits.Load()
	eventually(t, 5*time.Second, "a failed refresh", func() bool { return srv.hits.Load() > before })
	if _, err := v.Verify(t1); err != nil {
		t.Fatalf("after a failed refresh: %v", err)
	}
	srv.fails.Store(false)
	srv.serve(jwks(t, k2))
	eventually(t, 5*time.Second, "the retired key gone", func() bool { _, err := v.Verify(t1); return codeOf(err) == verify.CodeTokenInvalid })
	if _, err := v.Verify(t2); err != nil {
		t.Fatalf("current key: %v", err)
	}
}

func TestRemoteUnknownKIDRefreshIsRateLimited(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	srv := newJWKSServer(t, jwks(t, k1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := verify.NewRemote(ctx, srv.srv.URL, opts(), verify.RemoteOptions{RefreshInterval: time.Hour, UnknownKIDInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	initial := srv.hits.Load()
	// A key rotated in before the next refresh: one extra read finds it.
	srv.serve(jwks(t, k1, k2))
	if _, err := v.Verify(token(t, k2, now.Add(time.Hour))); err != nil {
		t.Fatalf("rotated-in key: %v", err)
	}
	if got := srv.hits.Load() - initial; got != 1 {
		t.Fatalf("unknown kid caused %d reads, want 1", got)
	}
	// Forged kids: refused at once, no more reads within the interval.
	stranger := newKey(t)
	began := time.Now()
	for range 20 {
		if _, err := v.Verify(token(t, stranger, now.Add(time.Hour))); codeOf(err) != verify.CodeTokenInvalid {
			t.Fatalf("stranger's token: %v", err)
		}
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("20 unknown kids took %s: requests wait for the limiter", took)
	}
	if got := srv.hits.Load() - initial; got != 1 {
		t.Fatalf("forged kids caused %d reads in all, want 1", got)
	}
}

func TestRemoteFirstFetchFails(t *testing.T) {
	k1 := newKey(t)
	srv := newJWKSServer(t, jwks(t, k1))
	srv.fails.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := verify.NewRemote(ctx, srv.srv.URL, opts(), verify.RemoteOptions{RefreshInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewRemote with the URL down: %v", err)
	}
	tok := token(t, k1, now.Add(time.Hour))
	if _, err := v.Verify(tok); codeOf(err) != verify.CodeTokenInvalid {
		t.Fatalf("no keys yet: %v", err)
	}
	srv.fails.Store(false)
	eventually(t, 5*time.Second, "keys after the URL is back", func() bool { _, err := v.Verify(tok); return err == nil })
}

func TestMiddleware(t *testing.T) {
	key := newKey(t)
	v, err := verify.NewEdDSA(jwks(t, key), opts())
	if err != nil {
		t.Fatal(err)
	}
	h := verify.Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := verify.ClaimsFromContext(r.Context())
		_, _ = w.Write([]byte(c.Subject + " " + c.SessionID + " " + c.Kind))
	}))
	tests := []struct {
		name       string
		auth       []string
		wantStatus int
		wantCode   string
	}{
		{"valid", []string{"Bearer " + token(t, key, now.Add(time.Hour))}, 200, ""},
		{"scheme is case-insensitive", []string{"bearer " + token(t, key, now.Add(time.Hour))}, 200, ""},
		{"expired", []string{"Bearer " + token(t, key, now.Add(-time.Minute))}, 401, verify.CodeTokenExpired},
		{"foreign key", []string{"Bearer " + token(t, newKey(t), now.Add(time.Hour))}, 401, verify.CodeTokenInvalid},
		{"no header", nil, 401, verify.CodeTokenInvalid},
		{"two headers", []string{"Bearer a", "Bearer b"}, 401, verify.CodeTokenInvalid},
		{"basic", []string{"Basic dXNlcjpwdw=="}, 401, verify.CodeTokenInvalid},
		{"garbage", []string{"Bearer not a token"}, 401, verify.CodeTokenInvalid},
		{"oversize", []string{"Bearer " + strings.Repeat("A", 9000)}, 401, verify.CodeTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, a := range tc.auth {
				r.Header.Add("Authorization", a)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantCode == "" {
				if got := w.Body.String(); got != "user-1 family-1 miniprogram" {
					t.Fatalf("claims in context: %q", got)
				}
				return
			}
			var p verify.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Code != tc.wantCode || p.Status != 401 {
				t.Fatalf("body %s (%v), want code %s", w.Body, err, tc.wantCode)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if ch := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", ch)
			}
		})
	}
}

// TestModuleGraph: the module an adopter imports pulls in neither NATS nor
// a database driver nor gin, checked on its own go.mod (GOWORK=off).
func TestModuleGraph(t *testing.T) {
	forbidden := []string{"nats-io/", "lib/pq", "jackc/", "jmoiron/sqlx", "gin-gonic/", "wxlogin/wxlogin/shared"}
	for _, args := range [][]string{{"mod", "graph"}, {"list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}}{{end}}", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if len(out) == 0 {
			t.Fatalf("go %s printed nothing", strings.Join(args, " "))
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, f := range forbidden {
				if strings.Contains(line, f) {
					t.Errorf("go %s: %q depends on %s", strings.Join(args, " "), line, f)
				}
			}
		}
	}
}
