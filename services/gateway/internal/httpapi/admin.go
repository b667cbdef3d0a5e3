package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

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
	admin.POST("/users/:id/admin", s.adminGrant)
	admin.DELETE("/users/:id/admin", s.adminRevoke)
	admin.GET("/users/:id/sessions", s.adminSessions)
	admin.DELETE("/users/:id/sessions", s.adminRevokeSessions)
	admin.DELETE("/users/:id/sessions/:sid", s.adminRevokeSession)
	admin.GET("/stats", s.adminStats)
	admin.GET("/audit", s.adminAudit)
}

// userPage is one page of an admin search.
type userPage struct {
	Items       []api.User `json:"items"`
	Total       int        `json:"total"`
	TotalCapped bool       `json:"total_capped,omitempty"`
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
	page := userPage{Items: res.Items, Total: res.Total, TotalCapped: res.TotalCapped}
	if page.Items == nil {
		page.Items = []api.User{}
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, page)
}

// searchSorts are the orders of the admin search.
var searchSorts = map[string]bool{"-created_at": true, "created_at": true, "-last_login_at": true, "last_login_at": true}

// parseAdminSearch validates q, sort, page (from 1) and page_size (1-100,
// default 20).
func parseAdminSearch(q url.Values) (identity.AdminSearchRequest, error) {
	req := identity.AdminSearchRequest{}
	qs, err := text("q", q.Get("q"), maxQueryRunes)
	if err != nil {
		return req, err
	}
	if qs != nil {
		req.Q = *qs
	}
	if req.Sort = q.Get("sort"); req.Sort != "" && !searchSorts[req.Sort] {
		return req, invalidField("sort", "must be one of -created_at, created_at, -last_login_at, last_login_at")
	}
	req.Page, req.PageSize, err = parsePaging(q)
	return req, err
}

// parsePaging reads page (from 1, default 1) and page_size (1-100, default 20).
func parsePaging(q url.Values) (page, size int, err error) {
	page, size = 1, defaultPageSize
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return 0, 0, invalidField("page", fmt.Sprintf("must be an integer from 1 to %d", maxPage))
		}
		page = n
	}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return 0, 0, invalidField("page_size", fmt.Sprintf("must be an integer from 1 to %d", maxPageSize))
		}
		size = n
	}
	return page, size, nil
}

func (s *server) adminGetUser(c *gin.Context) {
	s.answerAdminUser(c, func(ctx context.Context, actor, id string) (api.User, error) {
		return s.identity.AdminGetUser(ctx, identity.AdminUserRequest{ActorID: actor, UserID: id})
	})
}

// answerAdminUser answers the user that call returns for the path's {id}.
func (s *server) answerAdminUser(c *gin.Context, call func(ctx context.Context, actor, id string) (api.User, error)) {
	id, err := pathUUID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	actor := middleware.ClaimsOf(c).Subject
	s.answerUser(c, callTimeout, func(ctx context.Context) (api.User, error) { return call(ctx, actor, id) })
}

func (s *server) adminDisable(c *gin.Context) { s.adminSetDisabled(c, true) }
func (s *server) adminEnable(c *gin.Context)  { s.adminSetDisabled(c, false) }

// adminSetDisabled disables or enables a user. Disabling then revokes the
// user's sessions, so its tokens and refresh families die at once rather
// than at expiry: on this gateway before it answers, on the others when
// their watch sees the revocation. Both steps are idempotent: if the revoke
// fails the admin gets the error and simply retries (this gateway refuses
// the user's tokens meanwhile; identity refuses their refresh).
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
		if err := s.revokeUser(c, id); err != nil {
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

func (s *server) adminGrant(c *gin.Context)  { s.adminSetAdmin(c, true) }
func (s *server) adminRevoke(c *gin.Context) { s.adminSetAdmin(c, false) }

// adminSetAdmin grants or revokes admin rights (409 last_admin when it
// would leave no enabled administrator).
func (s *server) adminSetAdmin(c *gin.Context, admin bool) {
	s.answerAdminUser(c, func(ctx context.Context, actor, id string) (api.User, error) {
		return s.identity.AdminSetAdmin(ctx, identity.AdminSetAdminRequest{ActorID: actor, UserID: id, Admin: admin})
	})
}

func (s *server) adminStats(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	st, err := s.identity.AdminStats(ctx, identity.AdminStatsRequest{ActorID: middleware.ClaimsOf(c).Subject})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, st)
}

// maxAuditAction bounds the action filter of the audit log.
const maxAuditAction = 64

func (s *server) adminAudit(c *gin.Context) {
	q := c.Request.URL.Query()
	req := identity.AdminAuditListRequest{ActorID: middleware.ClaimsOf(c).Subject}
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{{"actor", &req.Actor}, {"target", &req.Target}} {
		if v := q.Get(f.name); v != "" {
			if *f.dst, err = uuidField(f.name, v); err != nil {
				s.fail(c, err)
				return
			}
		}
	}
	action, err := text("action", q.Get("action"), maxAuditAction)
	if err != nil {
		s.fail(c, err)
		return
	}
	if action != nil {
		req.Action = *action
	}
	if req.Page, req.PageSize, err = parsePaging(q); err != nil {
		s.fail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	page, err := s.identity.AdminAuditList(ctx, req)
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	if page.Items == nil {
		page.Items = []identity.AuditEntry{}
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, page)
}

// adminSessions lists a user's live sessions. Identity is asked first: only
// an admin may list, and an unknown user is a 404 rather than an empty list.
func (s *server) adminSessions(c *gin.Context) {
	_, list, ok := s.userSessions(c)
	if !ok {
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, list)
}

// userSessions checks the caller is an admin and the path's user exists
// (identity), then lists the user's sessions (session); false when it
// answered an error.
func (s *server) userSessions(c *gin.Context) (string, session.List, bool) {
	id, err := pathUUID(c, "id")
	if err != nil {
		s.fail(c, err)
		return "", session.List{}, false
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	defer cancel()
	list, err := func() (session.List, error) {
		if _, err := s.identity.AdminGetUser(ctx, identity.AdminUserRequest{ActorID: middleware.ClaimsOf(c).Subject, UserID: id}); err != nil {
			return session.List{}, err
		}
		return s.session.List(ctx, session.ListRequest{UserID: id})
	}()
	if err != nil {
		s.fail(c, err)
		return "", session.List{}, false
	}
	if list.Items == nil {
		list.Items = []session.Info{}
	}
	return id, list, true
}

// adminRevokeSession revokes one session of a user: its access tokens fail
// with token_revoked at once, its refresh token is dead, the user's other
// sessions go on. The audit row is written first (identity, which also
// checks the caller is an admin), then session revokes: if the audit write
// fails nothing is revoked; if the revoke fails the admin gets the error,
// the row stays as a record of the attempt, and a retry (revoking twice is
// harmless) writes another.
func (s *server) adminRevokeSession(c *gin.Context) {
	sid, err := pathUUID(c, "sid")
	if err != nil {
		s.fail(c, err)
		return
	}
	id, list, ok := s.userSessions(c)
	if !ok {
		return
	}
	var found *session.Info
	for i := range list.Items {
		if list.Items[i].ID == sid {
			found = &list.Items[i]
		}
	}
	if found == nil {
		s.fail(c, api.Errorf(api.CodeNotFound, "no such live session of this user"))
		return
	}
	detail, _ := json.Marshal(map[string]string{"sid": sid, "kind": found.Kind, "client_id": found.ClientID})
	if !s.auditThenRevoke(c, identity.AuditSessionRevoke, id, detail, session.RevokeRequest{SessionID: sid, Subject: id}) {
		return
	}
	c.Status(http.StatusNoContent)
}

// adminRevokeSessions revokes every session of a user (as disabling does,
// without disabling), audited like adminRevokeSession.
func (s *server) adminRevokeSessions(c *gin.Context) {
	id, list, ok := s.userSessions(c)
	if !ok {
		return
	}
	detail, _ := json.Marshal(map[string]int{"sessions": len(list.Items)})
	if !s.auditThenRevoke(c, identity.AuditSessionsRevokeAll, id, detail, session.RevokeRequest{UserID: id}) {
		return
	}
	c.Status(http.StatusNoContent)
}

// auditThenRevoke records the action, then revokes, at the session service
// and here (revokeHere); false when it answered an error.
func (s *server) auditThenRevoke(c *gin.Context, action, userID string, detail json.RawMessage, rev session.RevokeRequest) bool {
	actor := middleware.ClaimsOf(c).Subject
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	_, err := s.identity.AdminAuditRecord(ctx, identity.AdminAuditRecordRequest{ActorID: actor, Action: action, TargetID: userID, Detail: detail})
	cancel()
	if err != nil {
		s.fail(c, err)
		return false
	}
	began := time.Now()
	ctx, cancel = context.WithTimeout(c.Request.Context(), callTimeout)
	err = s.session.Revoke(ctx, rev)
	cancel()
	if err != nil {
		s.log.LogAttrs(c.Request.Context(), slog.LevelWarn, "admin revoke audited but not done",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", userID),
			slog.String("sid", rev.SessionID), slog.String("actor_id", actor), slog.Any("error", err))
		s.fail(c, err)
		return false
	}
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "admin revoked sessions",
		slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", userID),
		slog.String("sid", rev.SessionID), slog.String("actor_id", actor))
	s.revokeHere(rev, began)
	return true
}
