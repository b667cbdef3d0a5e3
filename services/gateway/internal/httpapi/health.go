package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
)

// readyTimeout bounds the readiness checks, which ping the services.
const readyTimeout = 1500 * time.Millisecond

// livez is liveness: the process serves HTTP. It never looks at NATS or the
// services, so a probe of it restarts only a gateway that is stuck itself.
func (s *server) livez(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz is readiness: NATS connected, identity and session answering, keys loaded.
func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	down := s.ready(ctx)
	if len(down) > 0 {
		p := problem.New(api.CodeServiceUnavailable, "not ready: "+strings.Join(down, ", "), middleware.RequestIDOf(c))
		p.Down = down
		problem.Write(c, p)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// jwks publishes the verification keys, as the session service gave them.
func (s *server) jwks(c *gin.Context) {
	set, err := s.keys.JWKS()
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=60")
	c.Data(http.StatusOK, "application/json", set)
}
