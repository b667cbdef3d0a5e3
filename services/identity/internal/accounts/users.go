package accounts

import (
	"context"
	"errors"
	"strings"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// GetUser returns a user with its identities.
func (a *API) GetUser(ctx context.Context, req identity.UserGetRequest) (api.User, error) {
	u, err := a.Store.GetUser(ctx, req.UserID)
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	return u.Public(), nil
}

// UpdateUser changes the caller's own profile; every field is checked here
// again, whatever the gateway checked.
func (a *API) UpdateUser(ctx context.Context, req identity.UserUpdateRequest) (api.User, error) {
	if err := identity.CheckUpdate(req, a.Now()); err != nil {
		return api.User{}, err
	}
	u, err := a.Store.UpdateUser(ctx, req.UserID, store.ProfileUpdate{
		Profile: req.Profile, Email: req.Email, DateOfBirth: req.DateOfBirth, Description: req.Description,
	})
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Debug("user updated", "request_id", natsrpc.RequestID(ctx), "user_id", u.ID)
	return u.Public(), nil
}

// SetPhone stores the phone number behind a mini-program getPhoneNumber code.
func (a *API) SetPhone(ctx context.Context, req identity.UserPhoneRequest) (api.User, error) {
	app, err := a.lookupApp(req.App, api.KindMiniProgram)
	if err != nil {
		return api.User{}, err
	}
	if req.Code == "" {
		return api.User{}, api.Errorf(api.CodeCodeMissing, "code is required")
	}
	// The code works once: do not spend it for a user who cannot have it.
	if err := a.Store.ActiveUser(ctx, req.UserID); err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	phone, err := a.WeChat.PhoneNumber(ctx, app, req.Code)
	if err != nil {
		return api.User{}, err
	}
	if err := textField("phone_number", &phone, maxPhone, true); err != nil || strings.TrimSpace(phone) == "" {
		a.log.Error("wechat returned an unusable phone number", "request_id", natsrpc.RequestID(ctx), "appid", app.AppID)
		return api.User{}, api.Errorf(api.CodeWechatError, "WeChat returned no usable phone number")
	}
	u, err := a.Store.UpdateUser(ctx, req.UserID, store.ProfileUpdate{PhoneNumber: &phone})
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Info("phone number set", "request_id", natsrpc.RequestID(ctx), "user_id", u.ID, "appid", app.AppID)
	return u.Public(), nil
}

// DeleteIdentity unbinds one of the caller's identities.
func (a *API) DeleteIdentity(ctx context.Context, req identity.IdentityDeleteRequest) (identity.Empty, error) {
	err := a.Store.DeleteIdentity(ctx, req.UserID, req.IdentityID)
	if errors.Is(err, store.ErrNotFound) {
		return identity.Empty{}, api.Errorf(api.CodeNotFound, "identity not found")
	}
	if err != nil {
		return identity.Empty{}, a.storeError(ctx, err)
	}
	a.log.Info("wechat identity unbound", "request_id", natsrpc.RequestID(ctx), "user_id", req.UserID, "identity_id", req.IdentityID)
	return identity.Empty{}, nil
}
