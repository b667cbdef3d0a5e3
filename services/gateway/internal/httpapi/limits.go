package httpapi

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/clientip"
)

// newIPLimit returns the middleware of the login-like routes (logins,
// register, bind, refresh, QR create): one token bucket per client address
// across all of them, 429 rate_limited with Retry-After when it is empty.
// A nil limiter limits nothing.
func newIPLimit(l *ratelimit.Limiter) gin.HandlerFunc {
	if l == nil || l.Spec().Off() {
		return func(c *gin.Context) { c.Next() }
	}
	return func(c *gin.Context) {
		ok, wait := l.Allow(clientip.Key(c.ClientIP()))
		if ok {
			c.Next()
			return
		}
		p, _ := problem.For(ipRateLimited(wait), middleware.RequestIDOf(c))
		problem.Write(c, p)
	}
}

// ipRateLimited is the answer of a client address over its limit.
func ipRateLimited(wait time.Duration) *api.Error {
	return &api.Error{
		Code:    api.CodeRateLimited,
		Message: "too many requests from your address; retry after the number of seconds in Retry-After",
		Data:    map[string]string{"retry_after": strconv.Itoa(ratelimit.RetryAfterSeconds(wait))},
	}
}

// chargeIP takes a token from the client address's general bucket, for an
// answer that costs it (a failed guess); when the bucket is spent it answers
// 429 and returns false.
func (s *server) chargeIP(c *gin.Context) bool {
	if s.ipLimiter == nil {
		return true
	}
	ok, wait := s.ipLimiter.Allow(clientip.Key(c.ClientIP()))
	if !ok {
		s.fail(c, ipRateLimited(wait))
	}
	return ok
}
