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
	key, err := NewFamilyKey()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewRefreshToken(key, user, fam, 7)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewRefreshToken(key, user, fam, 7)
	if tok == other {
		t.Fatal("two refresh tokens are equal")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != user || parts[1] != fam || parts[2] != "7" {
		t.Fatalf("token %q: want <user>.<family>.<generation>.<secret>", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(raw) != 64 {
		t.Fatalf("token %q: %d secret bytes (%v), want 32 random + 32 tag", tok, len(raw), err)
	}
	if _, err := NewRefreshToken(nil, user, fam, 0); err == nil {
		t.Fatal("a token without a family key")
	}

	secret := base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	long := strings.Repeat("u", 64)
	tests := []struct {
		name     string
		token    string
		wantUser string // "" = malformed
		wantGen  int
	}{
		{"fresh", tok, user, 7},
		{"zero secret still well-formed", user + "." + fam + ".0." + secret, user, 0},
		{"short user id", "u1." + fam + ".3." + secret, "u1", 3},
		{"longest user id, largest generation", long + "." + fam + ".2147483647." + secret, long, 2147483647},
		{"empty", "", "", 0},
		{"no dot", fam, "", 0},
		{"old three-part form", user + "." + fam + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "", 0},
		{"a JWT", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "", 0},
		{"five parts", user + "." + fam + ".0." + secret + ".x", "", 0},
		{"empty user", "." + fam + ".0." + secret, "", 0},
		{"oversize user", long + "u." + fam + ".0." + secret, "", 0},
		{"wildcard user", "*." + fam + ".0." + secret, "", 0},
		{"user with space", "a b." + fam + ".0." + secret, "", 0},
		{"negative generation", user + "." + fam + ".-1." + secret, "", 0},
		{"generation with a sign", user + "." + fam + ".+1." + secret, "", 0},
		{"generation with a leading zero", user + "." + fam + ".01." + secret, "", 0},
		{"generation beyond int32", user + "." + fam + ".2147483648." + secret, "", 0},
		{"empty generation", user + "." + fam + ".." + secret, "", 0},
		{"short secret", user + "." + fam + ".0." + base64.RawURLEncoding.EncodeToString(make([]byte, 48)), "", 0},
		{"padded secret", user + "." + fam + ".0." + base64.URLEncoding.EncodeToString(make([]byte, 64)), "", 0},
		{"std base64 secret", user + "." + fam + ".0." + strings.Repeat("+", 86), "", 0},
		{"braced uuid", user + ".{" + fam + "}.0." + secret, "", 0},
		{"upper-case uuid", user + "." + strings.ToUpper(fam) + ".0." + secret, "", 0},
		{"not a uuid", user + ".family.0." + secret, "", 0},
		{"wildcard family", user + ".*.0." + secret, "", 0},
		{"oversize", user + "." + fam + ".0." + strings.Repeat("A", 200), "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRefreshToken(tc.token)
			if tc.wantUser != "" {
				if err != nil || got.UserID != tc.wantUser || got.FamilyID != fam || got.Generation != tc.wantGen {
					t.Fatalf("ParseRefreshToken = %+v, %v; want %q, %q, %d", got, err, tc.wantUser, fam, tc.wantGen)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRefreshToken accepted %q", tc.token)
			}
		})
	}
}

// TestRefreshTokenAuthentic: only the family's key makes a token that
// passes, and changing any part of it (the generation above all) breaks it.
func TestRefreshTokenAuthentic(t *testing.T) {
	fam := NewFamilyID()
	key, _ := NewFamilyKey()
	otherKey, _ := NewFamilyKey()
	tok, _ := NewRefreshToken(key, "u1", fam, 5)
	rt, err := ParseRefreshToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Authentic(key) {
		t.Fatal("the family's own token is not authentic")
	}
	if rt.Authentic(otherKey) || rt.Authentic(nil) || rt.Authentic([]byte{}) {
		t.Fatal("authentic under another or no key")
	}
	zeroTag := "u1." + fam + ".5." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	lowered := strings.Replace(tok, ".5.", ".4.", 1)
	otherUser := "u2" + strings.TrimPrefix(tok, "u1")
	for name, forged := range map[string]string{"zero tag": zeroTag, "generation changed": lowered, "user changed": otherUser} {
		t.Run(name, func(t *testing.T) {
			rt, err := ParseRefreshToken(forged)
			if err != nil {
				t.Fatal(err)
			}
			if rt.Authentic(key) {
				t.Fatalf("%q is authentic", forged)
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
	key, _ := NewFamilyKey()
	tok, _ := NewRefreshToken(key, "u1", NewFamilyID(), 0)
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
