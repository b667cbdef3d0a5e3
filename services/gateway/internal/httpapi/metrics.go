package httpapi

import (
	"github.com/gin-gonic/gin"
)

// registerMetrics serves the Prometheus metrics (the request metrics
// middleware is installed first thing in New).
func (s *server) registerMetrics(r *gin.Engine) {
	h := s.metrics.Handler()
	r.GET("/metrics", func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) })
}
