package accounts

import (
	"context"
	"encoding/json"
	"strings"
	"unicode"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// Paging of the admin search.
const (
	defaultPageSize = 20
	maxPageSize     = 100
	// maxOffset keeps OFFSET scans bounded; nobody pages this far by hand.
	maxOffset = 100_000
)

// requireAdmin answers forbidden unless actorID is an enabled admin. It is
// checked on every request, so revoke-admin takes effect at once.
func (a *API) requireAdmin(ctx context.Context, actorID string) error {
	ok, err := a.Store.IsActiveAdmin(ctx, actorID)
	if err != nil {
		return a.storeError(ctx, err)
	}
	if !ok {
		a.log.Warn("admin request refused", "request_id", natsrpc.RequestID(ctx), "user_id", actorID)
		return api.Errorf(api.CodeForbidden, "administrators only")
	}
	return nil
}

// AdminSearch searches users; q "" lists everybody, newest first.
func (a *API) AdminSearch(ctx context.Context, req identity.AdminSearchRequest) (identity.AdminSearchResult, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return identity.AdminSearchResult{}, err
	}
	q := strings.TrimSpace(req.Q)
	if err := textField("q", &q, maxSearchQuery, true); err != nil {
		return identity.AdminSearchResult{}, err
	}
	// The search texts join fields with a control character (store): none
	// may be searched for.
	if strings.IndexFunc(q, unicode.IsControl) >= 0 {
		return identity.AdminSearchResult{}, invalid("q must not contain control characters")
	}
	if req.Sort != "" && !store.ValidSort(req.Sort) {
		return identity.AdminSearchResult{}, invalid("sort must be one of -created_at, created_at, -last_login_at, last_login_at")
	}
	limit, offset, err := paging(req.Page, req.PageSize)
	if err != nil {
		return identity.AdminSearchResult{}, err
	}
	users, total, capped, err := a.Store.SearchUsers(ctx, store.Search{Q: q, Sort: req.Sort, Limit: limit, Offset: offset})
	if err != nil {
		return identity.AdminSearchResult{}, a.storeError(ctx, err)
	}
	res := identity.AdminSearchResult{Items: make([]api.User, len(users)), Total: total, TotalCapped: capped}
	for i, u := range users {
		res.Items[i] = u.ForAdmin()
	}
	return res, nil
}

// AdminGetUser returns any user with its identities.
func (a *API) AdminGetUser(ctx context.Context, req identity.AdminUserRequest) (api.User, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return api.User{}, err
	}
	u, err := a.Store.GetUser(ctx, req.UserID)
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	return u.ForAdmin(), nil
}

// AdminSetDisabled disables or re-enables a user. Logins of a disabled user
// answer user_disabled; the gateway revokes its sessions.
func (a *API) AdminSetDisabled(ctx context.Context, req identity.AdminDisableRequest) (api.User, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return api.User{}, err
	}
	if req.Disabled && req.UserID == req.ActorID {
		return api.User{}, invalid("administrators cannot disable their own account")
	}
	u, err := a.Store.SetDisabled(ctx, req.ActorID, req.UserID, req.Disabled)
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Info("user disabled state set", "request_id", natsrpc.RequestID(ctx), "user_id", u.ID,
		"actor_id", req.ActorID, "disabled", req.Disabled)
	return u.ForAdmin(), nil
}

// paging turns page (from 1, 0 = 1) and page size (0 = default) into a
// limit and an offset.
func paging(page, size int) (limit, offset int, err error) {
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = defaultPageSize
	}
	if page < 1 {
		return 0, 0, invalid("page must be 1 or more")
	}
	if size < 1 || size > maxPageSize {
		return 0, 0, invalid("page_size must be 1 to %d", maxPageSize)
	}
	if page-1 > maxOffset/size {
		return 0, 0, invalid("page is too far; narrow the search")
	}
	return size, (page - 1) * size, nil
}

// loginKinds are the kinds the dashboard always shows, 0 when nobody used one.
var loginKinds = []string{api.KindMiniProgram, api.KindWeb, "officialaccount", "app", api.KindPassword}

// AdminStats returns the dashboard figures.
func (a *API) AdminStats(ctx context.Context, req identity.AdminStatsRequest) (identity.AdminStats, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return identity.AdminStats{}, err
	}
	// This copy's counts of direct-published logins first, so one identity
	// answers exactly; other copies' arrive with their next flush (5 s).
	if a.Logins != nil {
		if err := a.Logins.Flush(ctx); err != nil {
			a.log.Warn("login counts not written before stats; kept", "error", err)
		}
	}
	st, err := a.Store.Stats(ctx)
	if err != nil {
		return identity.AdminStats{}, a.storeError(ctx, err)
	}
	for _, k := range loginKinds {
		st.Logins24h[k] += 0
	}
	return identity.AdminStats{UsersTotal: st.UsersTotal, UsersNew24h: st.UsersNew24h, UsersNew7d: st.UsersNew7d,
		UsersDisabled: st.UsersDisabled, Logins24h: st.Logins24h}, nil
}

// AdminSetAdmin grants or revokes admin rights, never leaving no enabled
// administrator.
func (a *API) AdminSetAdmin(ctx context.Context, req identity.AdminSetAdminRequest) (api.User, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return api.User{}, err
	}
	u, err := a.Store.SetUserAdmin(ctx, req.ActorID, req.UserID, req.Admin)
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Info("admin rights set", "request_id", natsrpc.RequestID(ctx), "user_id", u.ID,
		"actor_id", req.ActorID, "admin", req.Admin)
	return u.ForAdmin(), nil
}

// auditRecordable are the actions another service records before doing
// them; the rest identity records itself, in their own transactions.
var auditRecordable = map[string]bool{identity.AuditSessionRevoke: true, identity.AuditSessionsRevokeAll: true}

// maxAuditDetail bounds the detail a caller records.
const maxAuditDetail = 2048

// AdminAuditRecord writes the audit row of an action the caller is about
// to do (a session revocation).
func (a *API) AdminAuditRecord(ctx context.Context, req identity.AdminAuditRecordRequest) (identity.AdminAuditRecordResult, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return identity.AdminAuditRecordResult{}, err
	}
	if !auditRecordable[req.Action] {
		return identity.AdminAuditRecordResult{}, invalid("action must be session.revoke or session.revoke_all")
	}
	var detail any
	if len(req.Detail) > 0 {
		var m map[string]any
		if len(req.Detail) > maxAuditDetail || json.Unmarshal(req.Detail, &m) != nil {
			return identity.AdminAuditRecordResult{}, invalid("detail must be a JSON object of at most %d bytes", maxAuditDetail)
		}
		detail = req.Detail
	}
	if _, err := a.Store.GetUser(ctx, req.TargetID); err != nil {
		return identity.AdminAuditRecordResult{}, a.storeError(ctx, err)
	}
	id, err := a.Store.RecordAudit(ctx, req.ActorID, req.Action, req.TargetID, detail)
	if err != nil {
		return identity.AdminAuditRecordResult{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	return identity.AdminAuditRecordResult{ID: id}, nil
}

// maxAuditAction bounds the action filter.
const maxAuditAction = 64

// AdminAuditList pages through the audit log, newest first.
func (a *API) AdminAuditList(ctx context.Context, req identity.AdminAuditListRequest) (identity.AdminAuditPage, error) {
	if err := a.requireAdmin(ctx, req.ActorID); err != nil {
		return identity.AdminAuditPage{}, err
	}
	if err := textField("action", &req.Action, maxAuditAction, true); err != nil {
		return identity.AdminAuditPage{}, err
	}
	for _, f := range []struct{ name, v string }{{"actor", req.Actor}, {"target", req.Target}} {
		if f.v != "" && !api.ValidID(f.v) {
			return identity.AdminAuditPage{}, invalid("%s must be a user id", f.name)
		}
	}
	limit, offset, err := paging(req.Page, req.PageSize)
	if err != nil {
		return identity.AdminAuditPage{}, err
	}
	rows, total, capped, err := a.Store.ListAudit(ctx, store.AuditFilter{ActorID: req.Actor, TargetID: req.Target, Action: req.Action}, limit, offset)
	if err != nil {
		return identity.AdminAuditPage{}, a.storeError(ctx, err)
	}
	page := identity.AdminAuditPage{Items: make([]identity.AuditEntry, len(rows)), Total: total, TotalCapped: capped}
	for i, r := range rows {
		page.Items[i] = identity.AuditEntry{ID: r.ID, At: r.At, ActorID: r.ActorID, Action: r.Action, TargetID: r.TargetID, Detail: r.Detail}
	}
	return page, nil
}
