package middleware

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/verify"
)

// Verifier checks an access token. Errors are *api.Error: token_invalid,
// token_expired, or service_unavailable while no keys are loaded.
type Verifier interface {
	Verify(token string) (*jwtverify.Claims, error)
}

// Revocations is the local view of revoked access tokens.
type Revocations interface {
	// Check returns nil for a token still in force, else an *api.Error:
	// token_revoked, or service_unavailable while it cannot tell.
	Check(claims *jwtverify.Claims) error
}

type claimsKey struct{}

// errNoRevocations answers every token on a live-token route of a gateway
// built without a revocation view: fail closed, never unchecked.
var errNoRevocations = &api.Error{Code: api.CodeServiceUnavailable, Message: "the revocation list is not available; try again shortly"}

// RequireLiveToken is the Bearer middleware of every route that acts on a
// token: a valid "Authorization: Bearer <token>" that r does not know as
// revoked (401 token_revoked; 503 while r cannot tell, or when r is nil).
// The token's claims go into the context (ClaimsOf).
func RequireLiveToken(v Verifier, r Revocations, log *slog.Logger) gin.HandlerFunc {
	check := func(*jwtverify.Claims) error { return errNoRevocations }
	if r != nil {
		check = r.Check
	}
	return bearer(v, check, log)
}

// RequireSignedToken checks the signature (and expiry) only: a revoked token
// passes. Only for a route that must accept a token already revoked, each
// use saying why (logout: logging out twice is not an error).
func RequireSignedToken(v Verifier, log *slog.Logger) gin.HandlerFunc {
	return bearer(v, nil, log)
}

// bearer requires a token v verifies and, when check is set, check accepts.
func bearer(v Verifier, check func(*jwtverify.Claims) error, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := verify.BearerToken(c.Request.Header)
		if !ok {
			unauthorized(c, problem.New(api.CodeTokenInvalid, "missing or malformed Bearer token", RequestIDOf(c)))
			return
		}
		claims, err := v.Verify(token)
		if err == nil && check != nil {
			err = check(claims)
		}
		if err != nil {
			p, unexpected := problem.For(err, RequestIDOf(c))
			if unexpected {
				log.LogAttrs(c.Request.Context(), slog.LevelError, "token verification failed",
					slog.String("request_id", RequestIDOf(c)), slog.Any("error", err))
			}
			unauthorized(c, p)
			return
		}
		c.Set(claimsKey{}, claims)
		c.Next()
	}
}

// ClaimsOf returns the claims Bearer verified, or nil on a route without it.
func ClaimsOf(c *gin.Context) *jwtverify.Claims {
	v, ok := c.Get(claimsKey{})
	if !ok {
		return nil
	}
	claims, _ := v.(*jwtverify.Claims)
	return claims
}

// unauthorized writes p, adding the RFC 6750 challenge to 401s.
func unauthorized(c *gin.Context, p problem.Problem) {
	if p.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", verify.Challenge(string(p.Code)))
	}
	problem.Write(c, p)
}

type userIDKey struct{}

// SetUserID records who the request acted for, for the access log, on
// routes that learn it without a Bearer token (logins).
func SetUserID(c *gin.Context, id string) {
	c.Set(userIDKey{}, id)
}

func userIDOf(c *gin.Context) string {
	if claims := ClaimsOf(c); claims != nil {
		return claims.Subject
	}
	v, _ := c.Get(userIDKey{})
	id, _ := v.(string)
	return id
}
