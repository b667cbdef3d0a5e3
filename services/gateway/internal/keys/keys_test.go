package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/poll"
)

var opts = jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin"}

// source is a scripted session service: each fetch takes the next answer,
// the last one repeats.
type source struct {
	mu      sync.Mutex
	answers []func() ([]byte, error)
	calls   int
}

func (s *source) fetch(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	a := s.answers[min(s.calls, len(s.answers))-1]
	return a()
}

func (s *source) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *source) set(answers ...func() ([]byte, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers, s.calls = answers, 0
}

func jwks(t *testing.T, pubs ...ed25519.PublicKey) []byte {
	set := struct {
		Keys []jwtverify.JWK `json:"keys"`
	}{Keys: []jwtverify.JWK{}}
	for _, p := range pubs {
		set.Keys = append(set.Keys, jwtverify.Ed25519JWK(p))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t *testing.T, key ed25519.PrivateKey) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "wxlogin", "aud": "wxlogin", "sub": "u1", "jti": "j1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = jwtverify.Ed25519KeyID(key.Public().(ed25519.PublicKey))
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, k *Keys) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestEdDSA(t *testing.T) {
	pub1, key1, _ := ed25519.GenerateKey(rand.Reader)
	pub2, key2, _ := ed25519.GenerateKey(rand.Reader)
	down := func() ([]byte, error) { return nil, api.Errorf(api.CodeServiceUnavailable, "no responders") }
	set1 := func() ([]byte, error) { return jwks(t, pub1), nil }

	src := &source{}
	src.set(down, down, func() ([]byte, error) { return jwks(t), nil }, set1)
	k := NewEdDSA(src.fetch, opts, 20*time.Millisecond, slog.New(slog.DiscardHandler))

	if _, err := k.Verify(sign(t, key1)); api.CodeOf(err) != api.CodeServiceUnavailable {
		t.Fatalf("before any fetch: %v, want service_unavailable", err)
	}
	if _, err := k.JWKS(); api.CodeOf(err) != api.CodeServiceUnavailable {
		t.Fatalf("JWKS before any fetch: %v", err)
	}
	run(t, k)

	// Two failures and an empty set are retried; the fourth answer loads.
	poll.Until(t, 10*time.Second, "keys loaded", k.Loaded)
	if n := src.callCount(); n < 4 {
		t.Errorf("loaded after %d fetches, want the empty set refused", n)
	}
	if c, err := k.Verify(sign(t, key1)); err != nil || c.Subject != "u1" {
		t.Fatalf("Verify: %v %v", c, err)
	}
	if set, err := k.JWKS(); err != nil || string(set) != string(jwks(t, pub1)) {
		t.Fatalf("JWKS %s %v", set, err)
	}

	// A failing or broken refresh keeps the loaded keys.
	src.set(down, func() ([]byte, error) { return []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"bad"}]}`), nil })
	poll.Until(t, 10*time.Second, "refreshes to fail", func() bool { return src.callCount() >= 3 })
	if _, err := k.Verify(sign(t, key1)); err != nil {
		t.Fatalf("keys lost after failed refreshes: %v", err)
	}

	// Rotation: the next refresh brings the new key.
	src.set(func() ([]byte, error) { return jwks(t, pub1, pub2), nil })
	poll.Until(t, 10*time.Second, "rotated key", func() bool { _, err := k.Verify(sign(t, key2)); return err == nil })
}

func TestHS256(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	k, err := NewHS256(secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	k.Run(context.Background()) // returns at once: nothing to fetch
	if !k.Loaded() {
		t.Error("HS256 keys not loaded")
	}
	if _, err := k.JWKS(); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("JWKS: %v, want not_found", err)
	}
	if _, err := NewHS256([]byte("short"), opts); err == nil {
		t.Error("short secret accepted")
	}
	var e *api.Error
	if _, err := k.Verify("garbage"); !errors.As(err, &e) || e.Code != api.CodeTokenInvalid {
		t.Errorf("Verify garbage: %v", err)
	}
}
