// Package ginverify is the gin adapter of github.com/wxlogin/wxlogin/verify.
// It is a module of its own so that services on net/http never download
// gin through the verify module.
package ginverify

import (
	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/verify"
)

// Require is verify.Middleware for gin: a valid Bearer access token or a 401
// problem+json (token_invalid, token_expired); the claims go into the
// request context (verify.ClaimsFromContext) and into the gin context (Claims).
func Require(v *verify.Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		claims, err := verify.Request(v, c.Request)
		if err != nil {
			verify.WriteError(c.Writer, err)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(verify.WithClaims(c.Request.Context(), claims))
		c.Next()
	}
}

// Claims returns the claims Require verified, or nil.
func Claims(c *gin.Context) *verify.Claims {
	return verify.ClaimsFromContext(c.Request.Context())
}
