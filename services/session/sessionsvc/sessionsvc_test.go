package sessionsvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natstest"

	"github.com/wxlogin/wxlogin/services/session/sessionsvc"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const testSecret = "an-hs256-test-secret-of-40-bytes-length!"

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func config(s *server.Server) sessionsvc.Config {
	cfg := sessionsvc.DefaultConfig()
	cfg.NATSURL = s.ClientURL()
	return cfg
}

// start runs a replica until the test ends and waits until it answers.
func start(t *testing.T, cfg sessionsvc.Config, nc *nats.Conn) {
	t.Helper()
	startWithLog(t, cfg, nc, testLog(t))
}

// startWithLog is start with the replica logging to log.
func startWithLog(t *testing.T, cfg sessionsvc.Config, nc *nats.Conn, log *slog.Logger) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sessionsvc.Run(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	client := session.NewClient(nc)
	poll.UntilNil(t, 10*time.Second, "the service to answer", func() error {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := client.JWKS(ctx)
		return err
	})
}

func call(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func header(t *testing.T, token string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Header, tok.Claims.(jwt.MapClaims)
}

func TestIssueVerifiesWithJWKSFromNATS(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	start(t, config(s), nc)
	client := session.NewClient(nc)

	before := time.Now().Truncate(time.Second)
	tok, err := client.Issue(call(t), session.IssueRequest{UserID: "3f1c0a4e-9d7b-4b8e-a2f1-0c6d5e4b3a21", Kind: api.KindMiniProgram, AppID: "wx1111111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := client.JWKS(call(t))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.NewEdDSA(jwks, jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok.AccessToken)
	if err != nil {
		t.Fatalf("token does not verify with the published JWKS: %v", err)
	}

	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s (%v)", jwks, err)
	}
	jwk := set.Keys[0]
	h, claims := header(t, tok.AccessToken)
	checks := []struct {
		name      string
		got, want any
	}{
		{"jwk kty", jwk["kty"], "OKP"},
		{"jwk crv", jwk["crv"], "Ed25519"},
		{"jwk alg", jwk["alg"], "EdDSA"},
		{"jwk use", jwk["use"], "sig"},
		{"jwk has no private part", jwk["d"], ""},
		{"header alg", h["alg"], "EdDSA"},
		{"header typ", h["typ"], "at+jwt"},
		{"header kid", h["kid"], jwk["kid"]},
		{"iss", claims["iss"], "wxlogin"},
		{"aud is one string", claims["aud"], "wxlogin"},
		{"sub", claims["sub"], "3f1c0a4e-9d7b-4b8e-a2f1-0c6d5e4b3a21"},
		{"client_id", claims["client_id"], "wx1111111111111111"},
		{"kind", claims["kind"], api.KindMiniProgram},
		{"exp - iat", claims["exp"].(float64) - claims["iat"].(float64), float64(2 * 60 * 60)},
		{"nbf", claims["nbf"], claims["iat"]},
		{"sid is the refresh family", c.SessionID, strings.Split(tok.RefreshToken, ".")[1]},
		{"token_type", tok.TokenType, "Bearer"},
		{"expires_in", tok.ExpiresIn, int64(7200)},
		{"refresh_expires_in", tok.RefreshExpiresIn, int64(720 * 3600)},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if !reflect.DeepEqual(ch.got, ch.want) {
				t.Errorf("got %#v, want %#v", ch.got, ch.want)
			}
		})
	}
	if _, err := uuid.Parse(c.ID); err != nil {
		t.Errorf("jti %q is not a UUID", c.ID)
	}
	if c.IssuedAt.Before(before) || c.IssuedAt.After(time.Now()) {
		t.Errorf("iat %s is not now", c.IssuedAt)
	}

	// Refresh token: "<user>.<family>.<generation>.<base64url(nonce ‖ tag)>",
	// stored only hashed under "<user>.<family>".
	parts := strings.Split(tok.RefreshToken, ".")
	if len(parts) != 4 || parts[0] != c.Subject || parts[2] != "0" {
		t.Fatal("refresh token: want <user>.<family>.0.<secret>")
	}
	secret := parts[3]
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) < 32 {
		t.Fatal("refresh token: want a secret of base64url of ≥32 bytes")
	}
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(call(t), session.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(call(t), parts[0]+"."+parts[1])
	if err != nil {
		t.Fatalf("family not stored: %v", err)
	}
	if strings.Contains(string(e.Value()), secret) || strings.Contains(string(e.Value()), tok.RefreshToken) {
		t.Fatalf("KV holds the refresh token in clear: %s", e.Value())
	}

	// Bad requests travel back as contract codes.
	_, err = client.Issue(call(t), session.IssueRequest{Kind: api.KindWeb})
	if api.CodeOf(err) != api.CodeInvalidRequest {
		t.Fatalf("issue without user_id: %v", err)
	}
}

func TestReplicasShareGeneratedKey(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { start(t, config(s), nc) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// start returns once any replica answers; a replica registers with micro
	// only after its keys are loaded, so wait until both are registered.
	poll.UntilNil(t, 10*time.Second, "both replicas to register", func() error {
		if n := len(instances(t, nc)); n != 2 {
			return fmt.Errorf("%d replicas registered, want 2", n)
		}
		return nil
	})

	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(call(t), session.BucketKeys)
	if err != nil {
		t.Fatal(err)
	}
	names, err := kv.Keys(call(t))
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, n := range names {
		if strings.HasPrefix(n, "key.") {
			stored = append(stored, strings.TrimPrefix(n, "key."))
		}
	}
	if len(stored) != 1 {
		t.Fatalf("keys bucket holds %v, want exactly one key", stored)
	}
	// Requests are spread over both replicas by the queue group; all sign alike.
	client := session.NewClient(nc)
	for i := range 20 {
		tok, err := client.Issue(call(t), session.IssueRequest{UserID: fmt.Sprint("u", i), Kind: api.KindPassword})
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := header(t, tok.AccessToken); h["kid"] != stored[0] {
			t.Fatalf("token %d signed with %v, want %s", i, h["kid"], stored[0])
		}
	}
}

// instances returns the ids of the session micro instances answering a ping.
func instances(t *testing.T, nc *nats.Conn) map[string]bool {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SRV.PING."+session.Service, inbox, nil); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for {
		msg, err := sub.NextMsg(200 * time.Millisecond) // replies arrive together; the gap ends the gathering
		if err != nil {
			return ids
		}
		var ping struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(msg.Data, &ping) == nil && ping.ID != "" {
			ids[ping.ID] = true
		}
	}
}

func TestHS256(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	cfg := config(s)
	cfg.JWTAlg = "HS256"
	cfg.JWTSecret = testSecret
	cfg.JWTIssuer = "https://login.example.com"
	cfg.JWTAudience = "example-api"
	start(t, cfg, nc)
	client := session.NewClient(nc)

	tok, err := client.Issue(call(t), session.IssueRequest{UserID: "u1", Kind: api.KindPassword})
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.NewHS256([]byte(testSecret), jwtverify.Options{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok.AccessToken)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.ClientID != "wxlogin" || c.Kind != api.KindPassword {
		t.Errorf("claims %+v", c)
	}
	if h, _ := header(t, tok.AccessToken); h["alg"] != "HS256" || h["kid"] != jwtverify.HS256KeyID([]byte(testSecret)) {
		t.Errorf("header %v", h)
	}
	jwks, err := client.JWKS(call(t))
	if err != nil || string(jwks) != `{"keys":[]}` {
		t.Fatalf("JWKS = %s, %v; want no published keys", jwks, err)
	}
}

func writeKeyFile(t *testing.T) (string, string) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, jwtverify.Ed25519KeyID(pub)
}

func TestKeyFile(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	cfg := config(s)
	path, kid := writeKeyFile(t)
	cfg.JWTKeyFile = path
	start(t, cfg, nc)
	client := session.NewClient(nc)
	tok, err := client.Issue(call(t), session.IssueRequest{UserID: "u1", Kind: api.KindWeb, AppID: "wx2222222222222222"})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := header(t, tok.AccessToken); h["kid"] != kid {
		t.Fatalf("kid %v, want the file key's thumbprint %s", h["kid"], kid)
	}
	jwks, _ := client.JWKS(call(t))
	v, err := jwtverify.NewEdDSA(jwks, jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	// With a key file nothing is generated into KV.
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(call(t), session.BucketKeys)
	if err != nil {
		t.Fatal(err)
	}
	if names, err := kv.Keys(call(t)); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatalf("keys bucket holds %v (%v), want nothing", names, err)
	}
	// rotate-key refuses: the file is the source of keys.
	if _, err := sessionsvc.RotateKey(call(t), cfg, testLog(t), 0); err == nil || !strings.Contains(err.Error(), "WXLOGIN_JWT_KEY_FILE") {
		t.Fatalf("RotateKey with a key file: %v", err)
	}
}

// TestOneSessionPerUserOverNATS: WXLOGIN_MAX_SESSIONS_PER_USER=1 is one
// device at a time: a login ends the user's previous session.
func TestOneSessionPerUserOverNATS(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	cfg := config(s)
	cfg.MaxSessionsPerUser = 1
	start(t, cfg, nc)
	client := session.NewClient(nc)
	issue := func(user string) session.Tokens {
		t.Helper()
		tok, err := client.Issue(call(t), session.IssueRequest{UserID: user, Kind: api.KindPassword})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first, other, second := issue("u1"), issue("u2"), issue("u1")
	if _, err := client.Refresh(call(t), first.RefreshToken); api.CodeOf(err) != api.CodeTokenInvalid {
		t.Fatalf("the earlier session's refresh: %v, want token_invalid", err)
	}
	for name, tok := range map[string]session.Tokens{"the newest session": second, "another user's session": other} {
		if _, err := client.Refresh(call(t), tok.RefreshToken); err != nil {
			t.Errorf("%s: refresh: %v", name, err)
		}
	}
}

func TestRefreshRevokeOverNATS(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	start(t, config(s), nc)
	client := session.NewClient(nc)
	jwks, _ := client.JWKS(call(t))
	v, err := jwtverify.NewEdDSA(jwks, jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin"})
	if err != nil {
		t.Fatal(err)
	}

	first, err := client.Issue(call(t), session.IssueRequest{UserID: "u1", Kind: api.KindMiniProgram, AppID: "wx1111111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := client.Refresh(call(t), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(second.AccessToken); err != nil {
		t.Fatalf("refreshed access token: %v", err)
	}
	steps := []struct {
		name  string
		token string
		want  api.Code
	}{
		{"access token is no refresh token", second.AccessToken, api.CodeTokenInvalid},
		{"spent token", first.RefreshToken, api.CodeRefreshTokenReused},
		{"newer token dead after reuse", second.RefreshToken, api.CodeTokenRevoked},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, err := client.Refresh(call(t), st.token)
			if got := api.CodeOf(err); got != st.want {
				t.Fatalf("Refresh error %v, want %s", err, st.want)
			}
		})
	}

	t.Run("8 concurrent refreshes, one winner", func(t *testing.T) {
		tok, err := client.Issue(call(t), session.IssueRequest{UserID: "u2", Kind: api.KindPassword})
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
			errs []error
		)
		gate := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-gate
				_, err := client.Refresh(call(t), tok.RefreshToken)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins++
					return
				}
				errs = append(errs, err)
			})
		}
		close(gate)
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d winners, want 1; errors %v", wins, errs)
		}
		for _, err := range errs {
			if c := api.CodeOf(err); c != api.CodeRefreshTokenReused && c != api.CodeTokenInvalid {
				t.Errorf("loser error %v", err)
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		tok, err := client.Issue(call(t), session.IssueRequest{UserID: "u3", Kind: api.KindWeb, AppID: "wx2222222222222222"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		req := session.RevokeRequest{JTI: c.ID, ExpiresAt: c.ExpiresAt.Unix(), SessionID: c.SessionID}
		for range 2 {
			if err := client.Revoke(call(t), req); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
		}
		js, _ := jetstream.New(nc)
		kv, err := js.KeyValue(call(t), session.BucketRevoked)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{session.RevokedJTIKey(c.ID), session.RevokedSIDKey(c.SessionID)} {
			if _, err := kv.Get(call(t), key); err != nil {
				t.Fatalf("%s not written: %v", key, err)
			}
		}
		if _, err := client.Refresh(call(t), tok.RefreshToken); api.CodeOf(err) != api.CodeTokenRevoked {
			t.Fatalf("refresh after revoke: %v", err)
		}
		if err := client.Revoke(call(t), session.RevokeRequest{}); api.CodeOf(err) != api.CodeInvalidRequest {
			t.Fatalf("empty revoke: %v", err)
		}
	})
}

func TestRotateKeyWithoutRestart(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	cfg := config(s)
	start(t, cfg, nc)
	client := session.NewClient(nc)
	issue := func() string {
		tok, err := client.Issue(call(t), session.IssueRequest{UserID: "u1", Kind: api.KindPassword})
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	old := issue()
	oldHeader, _ := header(t, old)

	kid, err := sessionsvc.RotateKey(call(t), cfg, testLog(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if kid == oldHeader["kid"] {
		t.Fatal("rotation kept the kid")
	}
	var fresh string
	poll.Until(t, 10*time.Second, "the running replica to sign with the rotated key", func() bool {
		fresh = issue()
		h, _ := header(t, fresh)
		return h["kid"] == kid
	})
	jwks, err := client.JWKS(call(t))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.NewEdDSA(jwks, jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"token of the old key": old, "token of the new key": fresh} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s does not verify after rotation: %v", name, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	vars := []string{
		"WXLOGIN_NATS_URL", "WXLOGIN_JWT_ALG", "WXLOGIN_JWT_KEY_FILE", "WXLOGIN_JWT_SECRET", "WXLOGIN_JWT_ISSUER",
		"WXLOGIN_JWT_AUDIENCE", "WXLOGIN_ACCESS_TTL", "WXLOGIN_REFRESH_TTL", "WXLOGIN_QR_TTL", "WXLOGIN_LOG_LEVEL",
		"WXLOGIN_NATS_REPLICAS", "WXLOGIN_METRICS_ADDR", "WXLOGIN_MAX_SESSIONS_PER_USER",
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // the variable the error must name; "" = valid
	}{
		{"defaults", nil, ""},
		{"HS256", map[string]string{"WXLOGIN_JWT_ALG": "HS256", "WXLOGIN_JWT_SECRET": testSecret}, ""},
		{"bad alg", map[string]string{"WXLOGIN_JWT_ALG": "RS256"}, "WXLOGIN_JWT_ALG"},
		{"HS256 without secret", map[string]string{"WXLOGIN_JWT_ALG": "HS256"}, "WXLOGIN_JWT_SECRET"},
		{"HS256 short secret", map[string]string{"WXLOGIN_JWT_ALG": "HS256", "WXLOGIN_JWT_SECRET": "short"}, "WXLOGIN_JWT_SECRET"},
		{"HS256 with key file", map[string]string{"WXLOGIN_JWT_ALG": "HS256", "WXLOGIN_JWT_SECRET": testSecret, "WXLOGIN_JWT_KEY_FILE": "/k.pem"}, "WXLOGIN_JWT_KEY_FILE"},
		{"secret with EdDSA", map[string]string{"WXLOGIN_JWT_SECRET": testSecret}, "WXLOGIN_JWT_SECRET"},
		{"unparsable access TTL", map[string]string{"WXLOGIN_ACCESS_TTL": "2 hours"}, "WXLOGIN_ACCESS_TTL"},
		{"tiny access TTL", map[string]string{"WXLOGIN_ACCESS_TTL": "500ms"}, "WXLOGIN_ACCESS_TTL"},
		{"refresh shorter than access", map[string]string{"WXLOGIN_REFRESH_TTL": "1h"}, "WXLOGIN_REFRESH_TTL"},
		{"unparsable refresh TTL", map[string]string{"WXLOGIN_REFRESH_TTL": "30d"}, "WXLOGIN_REFRESH_TTL"},
		{"QR TTL too long", map[string]string{"WXLOGIN_QR_TTL": "48h"}, "WXLOGIN_QR_TTL"},
		{"bad log level", map[string]string{"WXLOGIN_LOG_LEVEL": "loud"}, "WXLOGIN_LOG_LEVEL"},
		{"3 replicas", map[string]string{"WXLOGIN_NATS_REPLICAS": "3"}, ""},
		{"5 replicas", map[string]string{"WXLOGIN_NATS_REPLICAS": "5"}, ""},
		{"0 replicas", map[string]string{"WXLOGIN_NATS_REPLICAS": "0"}, "WXLOGIN_NATS_REPLICAS"},
		{"6 replicas", map[string]string{"WXLOGIN_NATS_REPLICAS": "6"}, "WXLOGIN_NATS_REPLICAS"},
		{"negative replicas", map[string]string{"WXLOGIN_NATS_REPLICAS": "-1"}, "WXLOGIN_NATS_REPLICAS"},
		{"unparsable replicas", map[string]string{"WXLOGIN_NATS_REPLICAS": "three"}, "WXLOGIN_NATS_REPLICAS"},
		{"one session per user", map[string]string{"WXLOGIN_MAX_SESSIONS_PER_USER": "1"}, ""},
		{"no session per user", map[string]string{"WXLOGIN_MAX_SESSIONS_PER_USER": "0"}, "WXLOGIN_MAX_SESSIONS_PER_USER"},
		{"too many sessions per user", map[string]string{"WXLOGIN_MAX_SESSIONS_PER_USER": "10001"}, "WXLOGIN_MAX_SESSIONS_PER_USER"},
		{"unparsable sessions per user", map[string]string{"WXLOGIN_MAX_SESSIONS_PER_USER": "many"}, "WXLOGIN_MAX_SESSIONS_PER_USER"},
		{"metrics port", map[string]string{"WXLOGIN_METRICS_ADDR": ":9100"}, ""},
		{"metrics host and port", map[string]string{"WXLOGIN_METRICS_ADDR": "127.0.0.1:9100"}, ""},
		{"metrics port without colon", map[string]string{"WXLOGIN_METRICS_ADDR": "9100"}, "WXLOGIN_METRICS_ADDR"},
		{"metrics host without port", map[string]string{"WXLOGIN_METRICS_ADDR": "localhost:"}, "WXLOGIN_METRICS_ADDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range vars {
				t.Setenv(v, tc.env[v]) // empty means the default
			}
			cfg, err := sessionsvc.ConfigFromEnv()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %v: %+v", tc.env, cfg)
			}
			if !strings.HasPrefix(err.Error(), tc.wantErr+":") {
				t.Fatalf("error %q does not start with %s", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("error shows the secret: %q", err)
			}
		})
	}
}

func TestDefaultConfigAndMasking(t *testing.T) {
	cfg := sessionsvc.DefaultConfig()
	want := sessionsvc.Config{
		NATSURL: "nats://127.0.0.1:4222", JWTAlg: "EdDSA", JWTIssuer: "wxlogin", JWTAudience: "wxlogin",
		AccessTTL: 2 * time.Hour, RefreshTTL: 720 * time.Hour, QRTTL: 5 * time.Minute, LogLevel: slog.LevelInfo,
		NATSReplicas: 1, MaxSessionsPerUser: 100,
	}
	if cfg != want {
		t.Fatalf("DefaultConfig = %+v, want %+v", cfg, want)
	}
	cfg.JWTAlg = "HS256"
	cfg.JWTSecret = testSecret
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", cfg)
	for name, out := range map[string]string{"slog": logged.String(), "%v": fmt.Sprint(cfg), "%+v": fmt.Sprintf("%+v", cfg)} {
		if strings.Contains(out, testSecret) {
			t.Errorf("%s output shows the secret: %s", name, out)
		}
	}
}

func TestRunStartupErrors(t *testing.T) {
	badFile := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(badFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name    string
		edit    func(*sessionsvc.Config)
		wantVar string
	}{
		{"missing key file", func(c *sessionsvc.Config) { c.JWTKeyFile = filepath.Join(t.TempDir(), "missing.pem") }, "WXLOGIN_JWT_KEY_FILE"},
		{"key file without a key", func(c *sessionsvc.Config) { c.JWTKeyFile = badFile }, "WXLOGIN_JWT_KEY_FILE"},
		{"zero config", func(c *sessionsvc.Config) { *c = sessionsvc.Config{} }, "WXLOGIN_"},
		{"missing apps file", func(c *sessionsvc.Config) { c.AppsFile = filepath.Join(t.TempDir(), "apps.yaml") }, "WXLOGIN_APPS_FILE"},
		{"apps file that is no list", func(c *sessionsvc.Config) { c.AppsFile = badFile }, "WXLOGIN_APPS_FILE"},
		{"metrics port in use", func(c *sessionsvc.Config) { c.MetricsAddr = busy.Addr().String() }, "WXLOGIN_METRICS_ADDR"},
		{"replicas out of range", func(c *sessionsvc.Config) { c.NATSReplicas = 7 }, "WXLOGIN_NATS_REPLICAS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sessionsvc.DefaultConfig()
			cfg.NATSURL = "nats://127.0.0.1:1" // never reached: startup fails first
			tc.edit(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := sessionsvc.Run(ctx, cfg, testLog(t))
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantVar) {
				t.Fatalf("Run error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
}
