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
	const user = "3f1c0a4e-9d7b-4b8e-a2f1-0c6d5e4b3a21"
	fam := NewFamilyID()
	tok, err := NewRefreshToken(user, fam)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewRefreshToken(user, fam)
	if tok == other {
		t.Fatal("two refresh tokens are equal")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != user || parts[1] != fam {
		t.Fatalf("token %q: want <user>.<family>.<secret>", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(raw)*8 < 256 {
		t.Fatalf("token %q: %d secret bits (%v)", tok, len(raw)*8, err)
	}

	secret32 := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	long := strings.Repeat("u", 64)
	tests := []struct {
		name     string
		token    string
		wantUser string // "" = malformed
	}{
		{"fresh", tok, user},
		{"zero secret still well-formed", user + "." + fam + "." + secret32, user},
		{"short user id", "u1." + fam + "." + secret32, "u1"},
		{"longest user id", long + "." + fam + "." + secret32, long},
		{"empty", "", ""},
		{"no dot", fam, ""},
		{"old two-part form", fam + "." + secret32, ""},
		{"a JWT", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", ""},
		{"four parts", user + "." + fam + "." + secret32 + ".x", ""},
		{"empty user", "." + fam + "." + secret32, ""},
		{"oversize user", long + "u." + fam + "." + secret32, ""},
		{"wildcard user", "*." + fam + "." + secret32, ""},
		{"user with space", "a b." + fam + "." + secret32, ""},
		{"short secret", user + "." + fam + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 16)), ""},
		{"padded secret", user + "." + fam + "." + base64.URLEncoding.EncodeToString(make([]byte, 32)), ""},
		{"std base64 secret", user + "." + fam + "." + strings.Repeat("+", 43), ""},
		{"braced uuid", user + ".{" + fam + "}." + secret32, ""},
		{"upper-case uuid", user + "." + strings.ToUpper(fam) + "." + secret32, ""},
		{"not a uuid", user + ".family." + secret32, ""},
		{"wildcard family", user + ".*." + secret32, ""},
		{"oversize", user + "." + fam + "." + strings.Repeat("A", 200), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotUser, gotFam, err := ParseRefreshToken(tc.token)
			if tc.wantUser != "" {
				if err != nil || gotUser != tc.wantUser || gotFam != fam {
					t.Fatalf("ParseRefreshToken = %q, %q, %v; want %q, %q", gotUser, gotFam, err, tc.wantUser, fam)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRefreshToken accepted %q", tc.token)
			}
		})
	}
}

func TestValidUserID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"3f1c0a4e-9d7b-4b8e-a2f1-0c6d5e4b3a21", true},
		{"u_1-A", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"用户", false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if got := ValidUserID(tc.id); got != tc.ok {
				t.Fatalf("ValidUserID(%q) = %v", tc.id, got)
			}
		})
	}
}

func TestRandomString(t *testing.T) {
	a, err := RandomString(16)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomString(16)
	raw, err := base64.RawURLEncoding.Strict().DecodeString(a)
	if err != nil || len(raw) != 16 || a == b {
		t.Fatalf("RandomString(16) = %q, %q (%v)", a, b, err)
	}
}

func TestHashRefreshToken(t *testing.T) {
	tok, _ := NewRefreshToken("u1", NewFamilyID())
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
