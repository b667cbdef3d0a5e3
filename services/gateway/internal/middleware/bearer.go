package middleware

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// maxAuthorizationLength bounds the Authorization header; our tokens are
// well under 1 KiB.
const maxAuthorizationLength = 8 << 10

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
		token, ok := bearerToken(c.Request.Header)
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

// bearerToken extracts the token of RFC 6750 section 2.1; the scheme is
// case-insensitive, and there must be exactly one Authorization header.
func bearerToken(h http.Header) (string, bool) {
	values := h.Values("Authorization")
	if len(values) != 1 || len(values[0]) > maxAuthorizationLength {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || !isB64Token(token) {
		return "", false
	}
	return token, true
}

// isB64Token matches RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch b := body[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '-', b == '.', b == '_', b == '~', b == '+', b == '/':
		default:
			return false
		}
	}
	return true
}

// unauthorized writes p, adding the RFC 6750 challenge to 401s.
func unauthorized(c *gin.Context, p problem.Problem) {
	if p.Status == http.StatusUnauthorized {
		challenge := `Bearer error="invalid_token"`
		switch p.Code {
		case api.CodeTokenExpired:
			challenge += `, error_description="The access token expired"`
		case api.CodeTokenRevoked:
			challenge += `, error_description="The access token has been revoked"`
		}
		c.Header("WWW-Authenticate", challenge)
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
