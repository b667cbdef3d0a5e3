// Package accounts holds identity's use cases: the logins, binding,
// registration, profiles, the admin's actions and the official account's
// pushes, each run from its NATS micro endpoint. It calls the parts (app
// lookup, WeChat exchange, password check, store) and translates store
// sentinels into contract codes, once.
package accounts

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/metrics"
	"github.com/wxlogin/wxlogin/services/identity/internal/oapushes"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/services/identity/internal/wxauth"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// Version is the micro service version `nats micro ls` shows.
const Version = "0.1.0"

// Notifier is told that a commit wrote events (the outbox relay).
type Notifier interface{ Notify() }

// Publisher publishes an event without the outbox, at most once (outbox.Direct).
type Publisher interface {
	Publish(id, subject string, payload []byte)
}

// LoginCounter counts a login of a kind and writes the counts
// (store.LoginCounter).
type LoginCounter interface {
	Add(kind string)
	Flush(ctx context.Context) error
}

// Passwords hashes and verifies passwords (password.Hasher; tests wrap it
// to count verifications).
type Passwords interface {
	Hash(ctx context.Context, password string) (string, error)
	Verify(ctx context.Context, phc, password string) (bool, error)
}

// Deps are what the API works with.
type Deps struct {
	Store      *store.Store
	Apps       *apps.Registry
	WeChat     *wxauth.Exchanger
	BindTokens *bindtoken.Store
	Passwords  Passwords
	// Failures counts password attempts per (username, client address)
	// and per username, across replicas.
	Failures *faillimit.Limiter
	Events   Notifier
	Direct   Publisher
	// Logins counts the logins Direct publishes, for the admin dashboard
	// (the relay counts the outbox's); nil counts nothing.
	Logins  LoginCounter
	Metrics *metrics.Metrics // nil: not measured
	// AutoRegister: unknown WeChat users get an account on first login;
	// otherwise they get a bind token (WXLOGIN_AUTO_REGISTER).
	AutoRegister bool
	// Pushes remembers the official accounts' pushes, so that WeChat's
	// retries are handled once.
	Pushes *oapushes.Store
	// WechatMPBase is where WeChat serves a parametric code's image
	// (WXLOGIN_WECHAT_MP_BASE); OALoginReply, when set, is the text message
	// a follow-to-log-in answers the user with (WXLOGIN_OA_LOGIN_REPLY).
	WechatMPBase string
	OALoginReply string
	Now          func() time.Time // nil: time.Now
}

// API serves identity's subjects.
type API struct {
	Deps
	log *slog.Logger
}

// New returns the API over its dependencies.
func New(d Deps, log *slog.Logger) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &API{Deps: d, log: log}
}

// AddService registers the identity micro service on nc, its handlers
// running on pool. The caller stops it (svc.Stop) and then waits for pool.
func (a *API) AddService(nc *nats.Conn, pool *natsrpc.Pool) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        identity.Service,
		Version:     Version,
		Description: "wxlogin identity: users, WeChat identities, passwords, events",
		QueueGroup:  identity.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("micro service: %w", err)
	}
	for _, ep := range []struct {
		name, subject string
		handler       micro.Handler
	}{
		{"miniprogram-login", identity.SubjectMiniProgramLogin, endpoint(a, pool, identity.SubjectMiniProgramLogin, a.MiniProgramLogin)},
		{"web-resolve", identity.SubjectWebResolve, endpoint(a, pool, identity.SubjectWebResolve, a.WebResolve)},
		{"oa-resolve", identity.SubjectOAResolve, endpoint(a, pool, identity.SubjectOAResolve, a.OAResolve)},
		{"app-login", identity.SubjectAppLogin, endpoint(a, pool, identity.SubjectAppLogin, a.AppLogin)},
		{"password-login", identity.SubjectPasswordLogin, endpoint(a, pool, identity.SubjectPasswordLogin, a.PasswordLogin)},
		{"register", identity.SubjectRegister, endpoint(a, pool, identity.SubjectRegister, a.Register)},
		{"bind", identity.SubjectBind, endpoint(a, pool, identity.SubjectBind, a.Bind)},
		{"user-get", identity.SubjectUserGet, endpoint(a, pool, identity.SubjectUserGet, a.GetUser)},
		{"user-update", identity.SubjectUserUpdate, endpoint(a, pool, identity.SubjectUserUpdate, a.UpdateUser)},
		{"user-phone", identity.SubjectUserPhone, endpoint(a, pool, identity.SubjectUserPhone, a.SetPhone)},
		{"identity-delete", identity.SubjectIdentityDelete, endpoint(a, pool, identity.SubjectIdentityDelete, a.DeleteIdentity)},
		{"admin-users-search", identity.SubjectAdminUsersSearch, endpoint(a, pool, identity.SubjectAdminUsersSearch, a.AdminSearch)},
		{"admin-users-get", identity.SubjectAdminUserGet, endpoint(a, pool, identity.SubjectAdminUserGet, a.AdminGetUser)},
		{"admin-users-disabled", identity.SubjectAdminUserDisabled, endpoint(a, pool, identity.SubjectAdminUserDisabled, a.AdminSetDisabled)},
		{"admin-users-admin", identity.SubjectAdminUserAdmin, endpoint(a, pool, identity.SubjectAdminUserAdmin, a.AdminSetAdmin)},
		{"admin-stats", identity.SubjectAdminStats, endpoint(a, pool, identity.SubjectAdminStats, a.AdminStats)},
		{"admin-audit-list", identity.SubjectAdminAuditList, endpoint(a, pool, identity.SubjectAdminAuditList, a.AdminAuditList)},
		{"admin-audit-record", identity.SubjectAdminAuditRecord, endpoint(a, pool, identity.SubjectAdminAuditRecord, a.AdminAuditRecord)},
		{"oa-qr-create", identity.SubjectOAQRCreate, endpoint(a, pool, identity.SubjectOAQRCreate, a.OAQRCreate)},
		{"oa-verify", identity.SubjectOAVerify, endpoint(a, pool, identity.SubjectOAVerify, a.OAVerify)},
		{"oa-push", identity.SubjectOAPush, endpoint(a, pool, identity.SubjectOAPush, a.OAPush)},
	} {
		if err := svc.AddEndpoint(ep.name, ep.handler, micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("endpoint %s: %w", ep.subject, err)
		}
	}
	return svc, nil
}

// endpoint is natsrpc.Endpoint with the request measured.
func endpoint[Req, Resp any](a *API, pool *natsrpc.Pool, subject string, fn func(context.Context, Req) (Resp, error)) micro.Handler {
	return natsrpc.Endpoint(pool, func(ctx context.Context, req Req) (Resp, error) {
		began := time.Now()
		resp, err := fn(ctx, req)
		a.Metrics.ObserveRequest(subject, time.Since(began), err)
		return resp, err
	})
}

// lookupApp finds the named app of kind ("" is the kind's default). An
// appid is accepted for a name too: a QR record may carry only that.
func (a *API) lookupApp(name, kind string) (apps.App, error) {
	app, ok := a.Apps.Lookup(name, kind)
	if !ok && name != "" {
		app, ok = a.Apps.ByAppID(name)
		ok = ok && app.Kind == kind
	}
	switch {
	case ok:
		return app, nil
	case name == "":
		return apps.App{}, api.Errorf(api.CodeInvalidRequest, "no %s app is configured", kind)
	default:
		return apps.App{}, api.Errorf(api.CodeInvalidRequest, "unknown app")
	}
}

// storeError maps store errors to contract codes. Anything unexpected goes
// back as is: natsrpc logs it once and answers internal_error.
func (a *API) storeError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "user not found")
	case errors.Is(err, store.ErrUserDisabled):
		return api.Errorf(api.CodeUserDisabled, "this account is disabled")
	case errors.Is(err, store.ErrUsernameTaken):
		return api.Errorf(api.CodeUsernameTaken, "this username is taken")
	case errors.Is(err, store.ErrIdentityBound):
		return api.Errorf(api.CodeIdentityBound, "this WeChat account is already bound to another account")
	case errors.Is(err, store.ErrLastAdmin):
		return api.Errorf(api.CodeLastAdmin, "this would leave no enabled administrator; grant another one first")
	case errors.Is(err, store.ErrLastLoginMethod):
		return api.Errorf(api.CodeLastIdentity, "this is the account's only way to log in; set a password or bind another WeChat account first")
	case errors.Is(err, bindtoken.ErrNotFound):
		return errBindToken
	case storageUnavailable(err):
		a.log.Warn("storage unavailable", "request_id", natsrpc.RequestID(ctx), "error", err)
		return api.Errorf(api.CodeServiceUnavailable, "storage is unavailable; try again shortly")
	}
	return err
}

var errBindToken = api.Errorf(api.CodeInvalidRequest, "bind_token is invalid, expired or already used")

// storageUnavailable reports errors of an absent or overloaded Postgres or
// NATS (or a request that ran out of time), which a retry later can cure.
func storageUnavailable(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code.Class() == "08" || pe.Code == "57P01" || pe.Code == "57P03" || pe.Code == "53300"
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &ne) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}
