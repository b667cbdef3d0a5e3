package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// maxAuthorizationLength bounds the Authorization header; our tokens are
// well under 1 KiB.
const maxAuthorizationLength = 8 << 10

// ProblemTypeBase prefixes the code to form the problem "type" URI, as the
// gateway's answers do.
const ProblemTypeBase = "https://wxlogin.dev/errors/"

type claimsKey struct{}

// WithClaims returns ctx carrying c (what Middleware does).
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the claims Middleware verified, or nil.
func ClaimsFromContext(ctx context.Context) *Claims {
	c, _ := ctx.Value(claimsKey{}).(*Claims)
	return c
}

// Middleware requires "Authorization: Bearer <access token>" that v
// verifies, puts the claims into the request context (ClaimsFromContext)
// and calls next; otherwise it answers 401 with a problem+json body whose
// code is token_invalid or token_expired, and an RFC 6750 challenge.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, err := Request(v, r)
			if err != nil {
				WriteError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
		})
	}
}

// Request verifies the Bearer token of r. Errors are *Error.
func Request(v *Verifier, r *http.Request) (*Claims, error) {
	token, ok := BearerToken(r.Header)
	if !ok {
		return nil, invalid("missing or malformed Bearer token")
	}
	return v.Verify(token)
}

// BearerToken extracts the token of RFC 6750 section 2.1; the scheme is
// case-insensitive, and there must be exactly one Authorization header.
func BearerToken(h http.Header) (string, bool) {
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

// Problem is the RFC 9457 body of a refused token.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// Challenge is the RFC 6750 WWW-Authenticate value for a refused token of code.
func Challenge(code string) string {
	challenge := `Bearer error="invalid_token"`
	switch code {
	case CodeTokenExpired:
		challenge += `, error_description="The access token expired"`
	case CodeTokenRevoked:
		challenge += `, error_description="The access token has been revoked"`
	}
	return challenge
}

// WriteError answers a refused token: 401, the challenge, problem+json.
// An error that is not an *Error is answered as token_invalid.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = invalid("invalid token")
	}
	title := "Token invalid"
	if e.Code == CodeTokenExpired {
		title = "Token expired"
	}
	w.Header().Set("WWW-Authenticate", Challenge(e.Code))
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(Problem{
		Type: ProblemTypeBase + e.Code, Title: title, Status: http.StatusUnauthorized, Detail: e.Message, Code: e.Code,
	})
}
