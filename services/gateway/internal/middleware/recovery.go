package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
)

// Recovery turns a panic into a 500 problem. The stack goes to the log, never
// to the client.
func Recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				// net/http's own signal to drop the connection quietly.
				panic(r)
			}
			rid := RequestIDOf(c)
			log.LogAttrs(c.Request.Context(), slog.LevelError, "panic while serving a request",
				slog.String("request_id", rid), slog.String("route", c.FullPath()),
				slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
			if c.Writer.Written() {
				// Too late for a problem body; cut the response short.
				c.Abort()
				return
			}
			problem.Write(c, problem.Internal(rid))
		}()
		c.Next()
	}
}
