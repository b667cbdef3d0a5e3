package middleware

import (
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"
)

// probeRoutes are the health probes, logged at DEBUG while they succeed.
var probeRoutes = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true}

// AccessLog writes one line per request. It logs the route template, never
// the URL: query strings and bodies can hold codes, states and tokens.
func AccessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		route := c.FullPath()
		if route == "" {
			route = "(unmatched)"
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
			slog.String("request_id", RequestIDOf(c)),
		}
		if id := userIDOf(c); id != "" {
			attrs = append(attrs, slog.String("user_id", id))
		}
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelWarn
		case probeRoutes[route] && status < 400:
			// An orchestrator probes every few seconds: a healthy answer is
			// noise at INFO. A failing probe stays visible.
			level = slog.LevelDebug
		}
		log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
	}
}
