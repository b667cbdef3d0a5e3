package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
)

// me returns the caller's user with its identities.
func (s *server) me(c *gin.Context) {
	claims := middleware.ClaimsOf(c)
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	defer cancel()
	u, err := s.identity.GetUser(ctx, claims.Subject)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, u)
}
