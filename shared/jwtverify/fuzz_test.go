package jwtverify_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// FuzzVerify: any string handed to an EdDSA or HS256 verifier fails with an
// *api.Error token_invalid or token_expired, or verifies; and whatever is
// accepted, or called expired, checks out by hand: signed by the key over
// its exact text with canonical encodings, alg and typ as configured, issuer
// and audience ours. A verified token's claims re-sign into the same claims.
func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	secret := []byte("0123456789abcdef0123456789abcdef")
	edKID, hsKID := jwtverify.Ed25519KeyID(pub), jwtverify.HS256KeyID(secret)
	ed, err := jwtverify.NewEdDSA(jwks(f, priv), opts(now))
	if err != nil {
		f.Fatal(err)
	}
	hs, err := jwtverify.NewHS256(secret, opts(now))
	if err != nil {
		f.Fatal(err)
	}

	expired := claims()
	expired["exp"] = now.Add(-time.Hour).Unix()
	audList := claims()
	audList["aud"] = []string{"other", "wxlogin"}
	noJTI := claims()
	delete(noJTI, "jti")
	valid := sign(f, jwt.SigningMethodEdDSA, priv, edKID, claims(), nil)
	for _, s := range []string{
		valid,
		sign(f, jwt.SigningMethodHS256, secret, hsKID, claims(), nil),
		sign(f, jwt.SigningMethodEdDSA, priv, edKID, expired, nil),
		sign(f, jwt.SigningMethodEdDSA, priv, edKID, audList, nil),
		sign(f, jwt.SigningMethodEdDSA, priv, edKID, noJTI, nil),
		sign(f, jwt.SigningMethodEdDSA, priv, edKID, claims(), func(h map[string]any) { h["typ"] = "JWT" }),
		sign(f, jwt.SigningMethodEdDSA, priv, edKID, claims(), func(h map[string]any) { h["typ"] = "application/AT+JWT" }),
		sign(f, jwt.SigningMethodEdDSA, priv, "", claims(), nil),
		// alg confusion: the public key as an HMAC secret
		sign(f, jwt.SigningMethodHS256, []byte(pub), edKID, claims(), nil),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, edKID, claims(), nil),
		valid + "=",
		strings.Replace(valid, ".", "..", 1),
		valid[:len(valid)-1] + "B",
		"",
		"a.b.c",
		strings.Repeat("A", jwtverify.MaxTokenLength+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range []struct {
			name     string
			verifier *jwtverify.Verifier
			alg, kid string
			check    func(input, sig []byte) bool
		}{
			{"EdDSA", ed, jwtverify.AlgEdDSA, edKID, func(in, sig []byte) bool { return ed25519.Verify(pub, in, sig) }},
			{"HS256", hs, jwtverify.AlgHS256, hsKID, func(in, sig []byte) bool {
				m := hmac.New(sha256.New, secret)
				m.Write(in)
				return hmac.Equal(m.Sum(nil), sig)
			}},
		} {
			c, err := v.verifier.Verify(token)
			if err != nil {
				var e *api.Error
				if !errors.As(err, &e) || (e.Code != api.CodeTokenInvalid && e.Code != api.CodeTokenExpired) {
					t.Fatalf("%s: error %v, want an *api.Error token_invalid or token_expired", v.name, err)
				}
				if c != nil {
					t.Fatalf("%s: claims with an error", v.name)
				}
				if e.Code == api.CodeTokenExpired {
					checkByHand(t, v.name, token, v.alg, v.kid, v.check)
				}
				continue
			}
			if len(token) > jwtverify.MaxTokenLength {
				t.Fatalf("%s: token of %d bytes accepted", v.name, len(token))
			}
			checkByHand(t, v.name, token, v.alg, v.kid, v.check)
			if c.Subject == "" || c.ID == "" || c.Issuer != "wxlogin" || !c.ExpiresAt.After(now.Add(-jwtverify.DefaultLeeway)) {
				t.Fatalf("%s: accepted claims %+v", v.name, c)
			}
			resigned := jwt.MapClaims{"iss": c.Issuer, "aud": c.Audience, "sub": c.Subject, "jti": c.ID, "sid": c.SessionID,
				"client_id": c.ClientID, "kind": c.Kind, "iat": c.IssuedAt.Unix(), "exp": c.ExpiresAt.Unix()}
			var again string
			if v.alg == jwtverify.AlgEdDSA {
				again = sign(t, jwt.SigningMethodEdDSA, priv, edKID, resigned, nil)
			} else {
				again = sign(t, jwt.SigningMethodHS256, secret, hsKID, resigned, nil)
			}
			c2, err := v.verifier.Verify(again)
			if err != nil || !reflect.DeepEqual(c2, c) {
				t.Fatalf("%s: re-signed claims verify as %+v, %v; want %+v", v.name, c2, err, c)
			}
		}
	})
}

// checkByHand verifies token without the JWT library: three canonical
// base64url segments, the header's alg, typ and kid as configured, the
// signature over the first two segments, our issuer and audience.
func checkByHand(t *testing.T, name, token, alg, kid string, verify func(input, sig []byte) bool) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%s: accepted %q without three segments", name, token)
	}
	var seg [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil {
			t.Fatalf("%s: accepted segment %d %q: %v", name, i, p, err)
		}
		seg[i] = b
	}
	var h struct{ Alg, Typ, Kid string }
	if err := json.Unmarshal(seg[0], &h); err != nil || h.Alg != alg || h.Kid != kid ||
		(!strings.EqualFold(h.Typ, jwtverify.TokenType) && !strings.EqualFold(h.Typ, "application/"+jwtverify.TokenType)) {
		t.Fatalf("%s: accepted header %s", name, seg[0])
	}
	if !verify([]byte(parts[0]+"."+parts[1]), seg[2]) {
		t.Fatalf("%s: accepted a bad signature on %q", name, token)
	}
	var c struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(seg[1], &c); err != nil || c.Iss != "wxlogin" {
		t.Fatalf("%s: accepted claims %s", name, seg[1])
	}
	var one string
	var many []string
	if json.Unmarshal(c.Aud, &one) == nil {
		many = []string{one}
	} else if json.Unmarshal(c.Aud, &many) != nil {
		t.Fatalf("%s: accepted aud %s", name, c.Aud)
	}
	found := false
	for _, a := range many {
		found = found || a == "wxlogin"
	}
	if !found {
		t.Fatalf("%s: accepted aud %s", name, c.Aud)
	}
}
