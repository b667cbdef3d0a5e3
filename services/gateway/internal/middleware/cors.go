package middleware

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
)

// What a browser may send and read cross-origin.
const (
	corsAllowMethods  = "GET, POST, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, X-Poll-Token, X-Request-ID"
	corsExposeHeaders = "X-Request-ID, Retry-After"
	corsMaxAge        = "600"
)

// CORS lets browsers on origins call the API; "*" allows any origin. With
// "*" no credentials are allowed (Bearer tokens need none); a listed origin is
// echoed back with credentials allowed, for the QR poll cookie.
func CORS(origins []string) gin.HandlerFunc {
	allowAll := false
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		if o == "*" {
			allowAll = true
		}
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return func(c *gin.Context) {
		h := c.Writer.Header()
		if !allowAll {
			// Caches must not hand one origin's answer to another.
			h.Add("Vary", "Origin")
		}
		origin := c.GetHeader("Origin")
		if origin == "" {
			c.Next()
			return
		}
		preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
		if !allowAll && !allowed[strings.ToLower(origin)] {
			if preflight {
				problem.Write(c, problem.New(api.CodeForbidden, "origin not allowed", RequestIDOf(c)))
				return
			}
			// A simple request still runs; without our headers the browser
			// keeps the answer from the page.
			c.Next()
			return
		}
		if allowAll {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if preflight {
			// gin sets Allow when it routes an OPTIONS to its 405 handler;
			// the preflight answer is ours.
			h.Del("Allow")
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		c.Next()
	}
}
