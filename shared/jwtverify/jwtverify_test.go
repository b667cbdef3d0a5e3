package jwtverify_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
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
	set := struct {
		Keys []jwtverify.JWK `json:"keys"`
	}{Keys: []jwtverify.JWK{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwtverify.Ed25519JWK(k.Public().(ed25519.PublicKey)))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func claims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       "wxlogin",
		"aud":       "wxlogin",
		"sub":       "user-1",
		"jti":       "jti-1",
		"sid":       "family-1",
		"client_id": "wx1111111111111111",
		"kind":      api.KindMiniProgram,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(2 * time.Hour).Unix(),
	}
}

// sign signs c with method and key, with the standard header edited by hdr.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims, hdr func(map[string]any)) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = kid
	if hdr != nil {
		hdr(tok.Header)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts(at time.Time) jwtverify.Options {
	return jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin", Now: func() time.Time { return at }}
}

func TestVerifyEdDSA(t *testing.T) {
	key := newKey(t)
	other := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	kid := jwtverify.Ed25519KeyID(pub)
	valid := sign(t, jwt.SigningMethodEdDSA, key, kid, claims(), nil)

	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := claims()
		edit(c)
		return c
	}
	unsigned := func(hdr map[string]any, c jwt.MapClaims) string {
		h, _ := json.Marshal(hdr)
		p, _ := json.Marshal(c)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		c := claims()
		c["sub"] = "admin"
		p, _ := json.Marshal(c)
		parts[1] = base64.RawURLEncoding.EncodeToString(p)
		return strings.Join(parts, ".")
	}

	tests := []struct {
		name  string
		token string
		at    time.Time
		want  api.Code // "" = valid
	}{
		{"valid", valid, now, ""},
		{"valid within leeway after exp", valid, now.Add(2*time.Hour + 4*time.Second), ""},
		{"typ application/at+jwt", sign(t, jwt.SigningMethodEdDSA, key, kid, claims(), func(h map[string]any) { h["typ"] = "application/AT+JWT" }), now, ""},
		{"aud as array", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["aud"] = []string{"other", "wxlogin"} }), nil), now, ""},
		{"expired", valid, now.Add(2*time.Hour + 6*time.Second), api.CodeTokenExpired},
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, claims()), now, api.CodeTokenInvalid},
		{"tampered payload", tamper(valid), now, api.CodeTokenInvalid},
		{"HS256 with the public key bytes", sign(t, jwt.SigningMethodHS256, []byte(pub), kid, claims(), nil), now, api.CodeTokenInvalid},
		{"HS256 with the x string", sign(t, jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(pub)), kid, claims(), nil), now, api.CodeTokenInvalid},
		{"signed by another key under our kid", sign(t, jwt.SigningMethodEdDSA, other, kid, claims(), nil), now, api.CodeTokenInvalid},
		{"wrong typ", sign(t, jwt.SigningMethodEdDSA, key, kid, claims(), func(h map[string]any) { h["typ"] = "JWT" }), now, api.CodeTokenInvalid},
		{"missing typ", sign(t, jwt.SigningMethodEdDSA, key, kid, claims(), func(h map[string]any) { delete(h, "typ") }), now, api.CodeTokenInvalid},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, other, jwtverify.Ed25519KeyID(other.Public().(ed25519.PublicKey)), claims(), nil), now, api.CodeTokenInvalid},
		{"missing kid", sign(t, jwt.SigningMethodEdDSA, key, kid, claims(), func(h map[string]any) { delete(h, "kid") }), now, api.CodeTokenInvalid},
		{"wrong iss", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["iss"] = "evil" }), nil), now, api.CodeTokenInvalid},
		{"missing iss", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { delete(c, "iss") }), nil), now, api.CodeTokenInvalid},
		{"wrong aud", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["aud"] = "other" }), nil), now, api.CodeTokenInvalid},
		{"missing aud", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { delete(c, "aud") }), nil), now, api.CodeTokenInvalid},
		{"missing exp", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { delete(c, "exp") }), nil), now, api.CodeTokenInvalid},
		{"missing iat", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { delete(c, "iat") }), nil), now, api.CodeTokenInvalid},
		{"missing sub", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { delete(c, "sub") }), nil), now, api.CodeTokenInvalid},
		{"missing jti", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { delete(c, "jti") }), nil), now, api.CodeTokenInvalid},
		{"iat in the future beyond leeway", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }), nil), now, api.CodeTokenInvalid},
		{"iat in the future within leeway", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["iat"] = now.Add(4 * time.Second).Unix() }), nil), now, ""},
		{"nbf in the future", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), nil), now, api.CodeTokenInvalid},
		{"expired and wrong iss is invalid, not expired", sign(t, jwt.SigningMethodEdDSA, key, kid, with(func(c jwt.MapClaims) { c["iss"] = "evil" }), nil), now.Add(3 * time.Hour), api.CodeTokenInvalid},
		{"expired and forged is invalid", sign(t, jwt.SigningMethodEdDSA, other, kid, claims(), nil), now.Add(3 * time.Hour), api.CodeTokenInvalid},
		{"empty", "", now, api.CodeTokenInvalid},
		{"garbage", "not-a-jwt", now, api.CodeTokenInvalid},
		{"oversize", valid + strings.Repeat("A", jwtverify.MaxTokenLength), now, api.CodeTokenInvalid},
		{"padded base64", strings.Replace(valid, ".", "=.", 1), now, api.CodeTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jwtverify.NewEdDSA(jwks(t, key), opts(tc.at))
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(tc.token)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject != "user-1" || c.ID != "jti-1" || c.SessionID != "family-1" || c.ClientID != "wx1111111111111111" ||
					c.Kind != api.KindMiniProgram || c.Issuer != "wxlogin" || c.IssuedAt.Before(now) || !c.ExpiresAt.Equal(now.Add(2*time.Hour)) {
					t.Errorf("claims = %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token, want %s", tc.want)
			}
			var ae *api.Error
			if !asAPIError(err, &ae) || ae.Code != tc.want {
				t.Fatalf("Verify error = %v, want code %s", err, tc.want)
			}
		})
	}
}

func asAPIError(err error, target **api.Error) bool { return errors.As(err, target) }

func TestVerifyHS256(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	kid := jwtverify.HS256KeyID(secret)
	if !strings.HasPrefix(kid, "hs256-") || len(kid) != len("hs256-")+8 {
		t.Fatalf("kid = %q", kid)
	}
	edKey := newKey(t)
	tests := []struct {
		name  string
		token string
		want  api.Code
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, secret, kid, claims(), nil), ""},
		{"HS512", sign(t, jwt.SigningMethodHS512, secret, kid, claims(), nil), api.CodeTokenInvalid},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes!"), kid, claims(), nil), api.CodeTokenInvalid},
		{"wrong kid", sign(t, jwt.SigningMethodHS256, secret, "hs256-00000000", claims(), nil), api.CodeTokenInvalid},
		{"EdDSA token", sign(t, jwt.SigningMethodEdDSA, edKey, kid, claims(), nil), api.CodeTokenInvalid},
		{"wrong typ", sign(t, jwt.SigningMethodHS256, secret, kid, claims(), func(h map[string]any) { h["typ"] = "JWT" }), api.CodeTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jwtverify.NewHS256(secret, opts(now))
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(tc.token)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("Verify error = %v, want %q", err, tc.want)
			}
		})
	}
}

func codeOf(err error) api.Code {
	if err == nil {
		return ""
	}
	return api.CodeOf(err)
}

func TestConstructorErrors(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name string
		new  func() error
	}{
		{"short secret", func() error { _, err := jwtverify.NewHS256([]byte("short"), opts(now)); return err }},
		{"no issuer", func() error {
			_, err := jwtverify.NewEdDSA(jwks(t, key), jwtverify.Options{Audience: "wxlogin"})
			return err
		}},
		{"no audience", func() error {
			_, err := jwtverify.NewEdDSA(jwks(t, key), jwtverify.Options{Issuer: "wxlogin"})
			return err
		}},
		{"leeway too large", func() error {
			_, err := jwtverify.NewEdDSA(jwks(t, key), jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin", Leeway: 2 * time.Minute})
			return err
		}},
		{"bad JSON", func() error { _, err := jwtverify.NewEdDSA([]byte(`{"keys":`), opts(now)); return err }},
		{"bad x", func() error {
			_, err := jwtverify.NewEdDSA([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k"}]}`), opts(now))
			return err
		}},
		{"no kid", func() error {
			j := jwtverify.Ed25519JWK(key.Public().(ed25519.PublicKey))
			j.Kid = ""
			b, _ := json.Marshal(map[string]any{"keys": []any{j}})
			_, err := jwtverify.NewEdDSA(b, opts(now))
			return err
		}},
		{"duplicate kid", func() error { _, err := jwtverify.NewEdDSA(jwks(t, key, key), opts(now)); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.new(); err == nil {
				t.Fatal("constructor accepted bad input")
			}
		})
	}
}

func TestSetJWKS(t *testing.T) {
	oldKey, newKeyPair := newKey(t), newKey(t)
	kidOf := func(k ed25519.PrivateKey) string { return jwtverify.Ed25519KeyID(k.Public().(ed25519.PublicKey)) }
	oldTok := sign(t, jwt.SigningMethodEdDSA, oldKey, kidOf(oldKey), claims(), nil)
	newTok := sign(t, jwt.SigningMethodEdDSA, newKeyPair, kidOf(newKeyPair), claims(), nil)

	v, err := jwtverify.NewEdDSA(jwks(t, oldKey), opts(now))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name         string
		set          []byte
		wantOld      bool
		wantNew      bool
		wantSetError bool
	}{
		{"initial", nil, true, false, false},
		{"both during rotation", jwks(t, oldKey, newKeyPair), true, true, false},
		{"old retired", jwks(t, newKeyPair), false, true, false},
		{"bad set keeps the old one", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"!!","kid":"x"}]}`), false, true, true},
		{"foreign key types are skipped", []byte(`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}`), false, false, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.set != nil {
				err := v.SetJWKS(s.set)
				if (err != nil) != s.wantSetError {
					t.Fatalf("SetJWKS error = %v, want error %v", err, s.wantSetError)
				}
			}
			if _, err := v.Verify(oldTok); (err == nil) != s.wantOld {
				t.Errorf("old token: err = %v, want valid %v", err, s.wantOld)
			}
			if _, err := v.Verify(newTok); (err == nil) != s.wantNew {
				t.Errorf("new token: err = %v, want valid %v", err, s.wantNew)
			}
		})
	}

	// SetJWKS races Verify without a data race (run with -race).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 50 {
				if i%2 == 0 {
					_ = v.SetJWKS(jwks(t, oldKey, newKeyPair))
				} else {
					_, _ = v.Verify(newTok)
				}
			}
		})
	}
	wg.Wait()
}

func TestEd25519KeyIDIsRFC7638(t *testing.T) {
	// RFC 8037 appendix A.3: the thumbprint of its example public key.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jwtverify.Ed25519KeyID(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("kid = %q, want %q", got, want)
	}
}
