package natsapi

import (
	"context"
	"strings"

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
	if len(q) > maxSearchQuery {
		return identity.AdminSearchResult{}, invalid("q is longer than %d characters", maxSearchQuery)
	}
	if err := textField("q", &q, maxSearchQuery, true); err != nil {
		return identity.AdminSearchResult{}, err
	}
	page, size := req.Page, req.PageSize
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = defaultPageSize
	}
	if page < 1 {
		return identity.AdminSearchResult{}, invalid("page must be 1 or more")
	}
	if size < 1 || size > maxPageSize {
		return identity.AdminSearchResult{}, invalid("page_size must be 1 to %d", maxPageSize)
	}
	if page-1 > maxOffset/size {
		return identity.AdminSearchResult{}, invalid("page is too far; narrow the search")
	}
	users, total, err := a.Store.SearchUsers(ctx, q, size, (page-1)*size)
	if err != nil {
		return identity.AdminSearchResult{}, a.storeError(ctx, err)
	}
	res := identity.AdminSearchResult{Items: make([]api.User, len(users)), Total: total}
	for i, u := range users {
		res.Items[i] = u.Public()
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
	return u.Public(), nil
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
	u, err := a.Store.SetDisabled(ctx, req.UserID, req.Disabled)
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Info("user disabled state set", "request_id", natsrpc.RequestID(ctx), "user_id", u.ID,
		"actor_id", req.ActorID, "disabled", req.Disabled)
	return u.Public(), nil
}
