package tokens

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

func TestRefreshTokenFormat(t *testing.T) {
	fam := NewFamilyID()
	tok, err := NewRefreshToken(fam)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewRefreshToken(fam)
	if tok == other {
		t.Fatal("two refresh tokens are equal")
	}
	famPart, secret, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw)*8 < 256 || famPart != fam {
		t.Fatalf("token %q: family %q, %d secret bits (%v)", tok, famPart, len(raw)*8, err)
	}

	secret32 := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"fresh", tok, true},
		{"zero secret still well-formed", fam + "." + secret32, true},
		{"empty", "", false},
		{"no dot", fam, false},
		{"a JWT", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", false},
		{"three parts", fam + "." + secret32 + ".x", false},
		{"short secret", fam + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 16)), false},
		{"padded secret", fam + "." + base64.URLEncoding.EncodeToString(make([]byte, 32)), false},
		{"std base64 secret", fam + "." + strings.Repeat("+", 43), false},
		{"braced uuid", "{" + fam + "}." + secret32, false},
		{"upper-case uuid", strings.ToUpper(fam) + "." + secret32, false},
		{"urn uuid", "urn:uuid:" + fam + "." + secret32, false},
		{"not a uuid", "family." + secret32, false},
		{"wildcard family", "*." + secret32, false},
		{"oversize", fam + "." + strings.Repeat("A", 200), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRefreshToken(tc.token)
			if tc.ok {
				if err != nil || got != fam {
					t.Fatalf("ParseRefreshToken = %q, %v; want %q", got, err, fam)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRefreshToken accepted %q", tc.token)
			}
		})
	}
}

func TestHashRefreshToken(t *testing.T) {
	tok, _ := NewRefreshToken(NewFamilyID())
	h := HashRefreshToken(tok)
	if len(h) != 64 || strings.Contains(h, tok) || h != HashRefreshToken(tok) {
		t.Fatalf("hash %q", h)
	}
	if !HashesEqual(h, HashRefreshToken(tok)) || HashesEqual(h, HashRefreshToken(tok+"x")) {
		t.Fatal("HashesEqual is wrong")
	}
}

func pemKey(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func edKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func kidOf(k ed25519.PrivateKey) string {
	return jwtverify.Ed25519KeyID(k.Public().(ed25519.PublicKey))
}

func jwksKids(t *testing.T, b []byte) []string {
	t.Helper()
	var set struct {
		Keys []jwtverify.JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	kids := []string{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" || k.X == "" {
			t.Errorf("bad JWK %+v", k)
		}
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestNewPEMKeyring(t *testing.T) {
	k1, k2 := edKey(t), edKey(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	tests := []struct {
		name      string
		data      []byte
		wantErr   bool
		wantKID   string
		wantPublk []string
	}{
		{"one key", pemKey(t, k1), false, kidOf(k1), []string{kidOf(k1)}},
		{"new key then old key", append(pemKey(t, k2), pemKey(t, k1)...), false, kidOf(k2), []string{kidOf(k2), kidOf(k1)}},
		{"same key twice", append(pemKey(t, k1), pemKey(t, k1)...), false, kidOf(k1), []string{kidOf(k1)}},
		{"empty", nil, true, "", nil},
		{"not PEM", []byte("hello"), true, "", nil},
		{"ECDSA PKCS#8", pemKey(t, ec), true, "", nil},
		{"SEC1 block", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), true, "", nil},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), true, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewPEMKeyring(tc.data)
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted a bad key file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := k.SigningKeyID(time.Now()); got != tc.wantKID {
				t.Errorf("kid = %q, want %q", got, tc.wantKID)
			}
			b, err := k.JWKS(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got := jwksKids(t, b); strings.Join(got, ",") != strings.Join(tc.wantPublk, ",") {
				t.Errorf("published %v, want %v", got, tc.wantPublk)
			}
			if strings.Contains(string(b), `"d"`) {
				t.Error("JWKS contains private key material")
			}
		})
	}
}

func TestMint(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	edRing, err := NewPEMKeyring(pemKey(t, edKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(strings.Repeat("s", 32))
	hsRing, err := NewSecretKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	opts := jwtverify.Options{Issuer: "iss-x", Audience: "aud-x", Now: func() time.Time { return now }}
	edJWKS, _ := edRing.JWKS(now)
	edVerifier, err := jwtverify.NewEdDSA(edJWKS, opts)
	if err != nil {
		t.Fatal(err)
	}
	hsVerifier, err := jwtverify.NewHS256(secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		ring     *Keyring
		verifier *jwtverify.Verifier
		alg      string
	}{
		{"EdDSA", edRing, edVerifier, "EdDSA"},
		{"HS256", hsRing, hsVerifier, "HS256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMinter(tc.ring, "iss-x", "aud-x", time.Hour)
			tok, err := m.Mint(now, AccessClaims{UserID: "u1", ClientID: "wx1", SessionID: "s1", Kind: api.KindWeb})
			if err != nil {
				t.Fatal(err)
			}
			c, err := tc.verifier.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "u1" || c.ClientID != "wx1" || c.SessionID != "s1" || c.Kind != api.KindWeb ||
				!c.ExpiresAt.Equal(now.Add(time.Hour)) || !c.IssuedAt.Equal(now) || c.ID == "" {
				t.Errorf("claims %+v", c)
			}
			parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Header["alg"] != tc.alg || parsed.Header["typ"] != "at+jwt" || parsed.Header["kid"] != tc.ring.SigningKeyID(now) {
				t.Errorf("header %v", parsed.Header)
			}
			if aud, ok := parsed.Claims.(jwt.MapClaims)["aud"].(string); !ok || aud != "aud-x" {
				t.Errorf("aud = %#v, want the single string", parsed.Claims.(jwt.MapClaims)["aud"])
			}
			again, _ := m.Mint(now, AccessClaims{UserID: "u1"})
			c2, _ := tc.verifier.Verify(again)
			if c2 == nil || c2.ID == c.ID {
				t.Error("jti repeats")
			}
		})
	}
}

func TestSecretKeyring(t *testing.T) {
	if _, err := NewSecretKeyring([]byte("short")); err == nil {
		t.Fatal("accepted a short secret")
	}
	secret := []byte(strings.Repeat("k", 40))
	k, err := NewSecretKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.SigningKeyID(time.Now()), jwtverify.HS256KeyID(secret); got != want {
		t.Errorf("kid %q, want %q", got, want)
	}
	b, _ := k.JWKS(time.Now())
	if string(b) != `{"keys":[]}` {
		t.Errorf("JWKS = %s", b)
	}
}
