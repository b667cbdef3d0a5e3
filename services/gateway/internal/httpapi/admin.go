package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Admin search paging.
const (
	defaultPageSize = 20
	maxPageSize     = 100
	// maxPage keeps the offset (page × size) far from overflowing anything.
	maxPage       = 1_000_000
	maxQueryRunes = 128
)

// The admin routes need a valid token; identity decides whether its subject
// is an admin (403 forbidden otherwise), so revoking admin rights takes
// effect at once rather than when a token expires.
func (s *server) registerAdmin(v1 *gin.RouterGroup) {
	admin := v1.Group("/admin", s.liveToken)
	admin.GET("/users", s.adminSearch)
	admin.GET("/users/:id", s.adminGetUser)
	admin.POST("/users/:id/disable", s.adminDisable)
	admin.POST("/users/:id/enable", s.adminEnable)
}

// userPage is one page of an admin search.
type userPage struct {
	Items []api.User `json:"items"`
	Total int        `json:"total"`
}

func (s *server) adminSearch(c *gin.Context) {
	req, err := parseAdminSearch(c.Request.URL.Query())
	if err != nil {
		s.fail(c, err)
		return
	}
	req.ActorID = middleware.ClaimsOf(c).Subject
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	res, err := s.identity.AdminSearch(ctx, req)
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	page := userPage{Items: res.Items, Total: res.Total}
	if page.Items == nil {
		page.Items = []api.User{}
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, page)
}

// parseAdminSearch validates q, page (from 1) and page_size (1-100,
// default 20).
func parseAdminSearch(q map[string][]string) (identity.AdminSearchRequest, error) {
	req := identity.AdminSearchRequest{Page: 1, PageSize: defaultPageSize}
	get := func(name string) string {
		if v := q[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	qs, err := text("q", get("q"), maxQueryRunes)
	if err != nil {
		return req, err
	}
	if qs != nil {
		req.Q = *qs
	}
	if v := get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return req, invalidField("page", fmt.Sprintf("must be an integer from 1 to %d", maxPage))
		}
		req.Page = n
	}
	if v := get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return req, invalidField("page_size", fmt.Sprintf("must be an integer from 1 to %d", maxPageSize))
		}
		req.PageSize = n
	}
	return req, nil
}

func (s *server) adminGetUser(c *gin.Context) {
	id, err := pathUUID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	req := identity.AdminUserRequest{ActorID: middleware.ClaimsOf(c).Subject, UserID: id}
	s.answerUser(c, callTimeout, func(ctx context.Context) (api.User, error) { return s.identity.AdminGetUser(ctx, req) })
}

func (s *server) adminDisable(c *gin.Context) { s.adminSetDisabled(c, true) }
func (s *server) adminEnable(c *gin.Context)  { s.adminSetDisabled(c, false) }

// adminSetDisabled disables or enables a user. Disabling then revokes the
// user's sessions, so its tokens and refresh families die at once rather
// than at expiry. Both steps are idempotent: if the revoke fails the admin
// gets the error and simply retries.
func (s *server) adminSetDisabled(c *gin.Context, disabled bool) {
	id, err := pathUUID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	actor := middleware.ClaimsOf(c).Subject
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	u, err := s.identity.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: actor, UserID: id, Disabled: disabled})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	if disabled {
		ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
		err := s.session.Revoke(ctx, session.RevokeRequest{UserID: id})
		cancel()
		if err != nil {
			s.log.LogAttrs(c.Request.Context(), slog.LevelWarn, "user disabled but its sessions not revoked yet",
				slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", id), slog.Any("error", err))
			s.fail(c, err)
			return
		}
	}
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "user disabled state changed",
		slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", id),
		slog.String("actor_id", actor), slog.Bool("disabled", disabled))
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, u)
}
