package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// JWK is one public key of a JWK set (RFC 7517, RFC 8037 for OKP).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// Ed25519 decodes the public key of an OKP Ed25519 JWK.
func (k JWK) Ed25519() (ed25519.PublicKey, error) {
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("verify: bad Ed25519 x")
	}
	return ed25519.PublicKey(x), nil
}

// Ed25519JWK is the published form of an Ed25519 verification key, with its
// RFC 7638 thumbprint as kid.
func Ed25519JWK(pub ed25519.PublicKey) JWK {
	return JWK{
		Kty: "OKP",
		Crv: "Ed25519",
		X:   base64.RawURLEncoding.EncodeToString(pub),
		Kid: Ed25519KeyID(pub),
		Alg: AlgEdDSA,
		Use: "sig",
	}
}

// Ed25519KeyID is the RFC 7638 JWK thumbprint of pub: base64url(SHA-256) of
// the required members in lexicographic order, without whitespace.
func Ed25519KeyID(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// HS256KeyID names a shared secret without revealing it: "hs256-" and the
// first 8 hex digits of its SHA-256.
func HS256KeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return "hs256-" + hex.EncodeToString(sum[:4])
}
