package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/shared/api"
)

// me returns the caller's user with its identities.
func (s *server) me(c *gin.Context) {
	s.answerUser(c, callTimeout, func(ctx context.Context) (api.User, error) {
		return s.identity.GetUser(ctx, middleware.ClaimsOf(c).Subject)
	})
}

// answerUser runs call with a deadline and answers its user, uncacheable,
// or the problem for its error.
func (s *server) answerUser(c *gin.Context, timeout time.Duration, call func(context.Context) (api.User, error)) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
	u, err := call(ctx)
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, u)
}
