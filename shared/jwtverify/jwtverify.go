// Package jwtverify is the wxlogin services' view of the verification module
// github.com/wxlogin/wxlogin/verify: the same checks (there is one
// verification), with errors as *api.Error so they travel the NATS and HTTP
// contract like every other error. Verification never fetches anything; the
// caller hands in the key set (the gateway gets it over NATS) and replaces
// it when keys rotate.
package jwtverify

import (
	"crypto/ed25519"
	"errors"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/verify"
)

// Limits and names, as in the verify module.
const (
	MaxTokenLength  = verify.MaxTokenLength
	DefaultLeeway   = verify.DefaultLeeway
	MaxLeeway       = verify.MaxLeeway
	AlgEdDSA        = verify.AlgEdDSA
	AlgHS256        = verify.AlgHS256
	TokenType       = verify.TokenType
	MinSecretLength = verify.MinSecretLength
)

type (
	// Claims are the verified claims of an access token.
	Claims = verify.Claims
	// Options are what a token must match.
	Options = verify.Options
	// JWK is one public key of a JWK set.
	JWK = verify.JWK
)

// Verifier verifies access tokens. It is safe for concurrent use.
type Verifier struct{ v *verify.Verifier }

// NewEdDSA returns a verifier of Ed25519-signed tokens whose kid is in jwks.
func NewEdDSA(jwks []byte, opts Options) (*Verifier, error) {
	v, err := verify.NewEdDSA(jwks, opts)
	if err != nil {
		return nil, err
	}
	return &Verifier{v}, nil
}

// NewHS256 returns a verifier of tokens signed with secret under the kid HS256KeyID(secret).
func NewHS256(secret []byte, opts Options) (*Verifier, error) {
	v, err := verify.NewHS256(secret, opts)
	if err != nil {
		return nil, err
	}
	return &Verifier{v}, nil
}

// SetJWKS replaces the key set of an EdDSA verifier; a bad set leaves the old one.
func (v *Verifier) SetJWKS(jwks []byte) error { return v.v.SetJWKS(jwks) }

// Verify checks token and returns its claims. Errors are *api.Error with
// api.CodeTokenExpired or api.CodeTokenInvalid.
func (v *Verifier) Verify(token string) (*Claims, error) {
	c, err := v.v.Verify(token)
	if err != nil {
		var e *verify.Error
		if errors.As(err, &e) {
			return nil, &api.Error{Code: api.Code(e.Code), Message: e.Message}
		}
		return nil, &api.Error{Code: api.CodeTokenInvalid, Message: "access token invalid"}
	}
	return c, nil
}

// Ed25519JWK is the published form of an Ed25519 verification key.
func Ed25519JWK(pub ed25519.PublicKey) JWK { return verify.Ed25519JWK(pub) }

// Ed25519KeyID is the RFC 7638 JWK thumbprint of pub.
func Ed25519KeyID(pub ed25519.PublicKey) string { return verify.Ed25519KeyID(pub) }

// HS256KeyID names a shared secret without revealing it.
func HS256KeyID(secret []byte) string { return verify.HS256KeyID(secret) }
