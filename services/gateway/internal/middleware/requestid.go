// Package middleware holds the gateway's cross-cutting HTTP handlers: request
// ids, panic recovery, CORS, the access log and Bearer authentication.
package middleware

import (
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// maxRequestIDLength bounds an incoming request id; a uuid is 36.
const maxRequestIDLength = 64

// RequestID gives every request an id: the caller's X-Request-ID when it is
// sane, else a fresh uuid. The id is set on the response before anything else
// runs, so every answer carries it (404s, panics, preflights), and it rides in
// the request context so natsrpc sends it on to the services.
func RequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(api.HeaderRequestID)
		if !ValidRequestID(id) {
			id = uuid.NewString()
		}
		c.Header(api.HeaderRequestID, id)
		c.Request = c.Request.WithContext(natsrpc.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
}

// ValidRequestID reports whether id may be reused as is: 1 to 64 characters of
// [A-Za-z0-9._-], so it can go into a log line or a header unescaped.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// RequestIDOf returns the id RequestID gave c.
func RequestIDOf(c *gin.Context) string {
	return natsrpc.RequestID(c.Request.Context())
}
