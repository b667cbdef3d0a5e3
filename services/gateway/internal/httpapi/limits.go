package httpapi

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/shared/api"
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
		ok, wait := l.Allow(clientKey(c.ClientIP()))
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

// clientKey is the rate-limit key of a client address: the IPv4 address,
// or the /64 of an IPv6 one, since a single host commonly holds a whole /64.
func clientKey(ip string) string {
	if !strings.Contains(ip, ":") {
		return ip // IPv4: as is, without parsing on every request
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
