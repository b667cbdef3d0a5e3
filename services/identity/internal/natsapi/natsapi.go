// Package natsapi is identity's NATS face: the micro service and its
// endpoints. It runs each use case (app lookup, WeChat exchange, store) and
// translates store sentinels into contract codes, once.
package natsapi

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

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

// API serves identity's subjects.
type API struct {
	store  *store.Store
	apps   *apps.Registry
	wx     *wxauth.Exchanger
	events Notifier
	log    *slog.Logger
}

// New returns the API over its dependencies.
func New(st *store.Store, reg *apps.Registry, wx *wxauth.Exchanger, events Notifier, log *slog.Logger) *API {
	return &API{store: st, apps: reg, wx: wx, events: events, log: log}
}

// AddService registers the identity micro service on nc, its handlers
// running on pool. The caller stops it (svc.Stop) and then waits for pool.
func (a *API) AddService(nc *nats.Conn, pool *natsrpc.Pool) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        identity.Service,
		Version:     Version,
		Description: "wxlogin identity: users, WeChat identities, events",
		QueueGroup:  identity.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("micro service: %w", err)
	}
	for _, ep := range []struct {
		name, subject string
		handler       micro.Handler
	}{
		{"miniprogram-login", identity.SubjectMiniProgramLogin, natsrpc.Endpoint(pool, a.MiniProgramLogin)},
		{"user-get", identity.SubjectUserGet, natsrpc.Endpoint(pool, a.GetUser)},
	} {
		if err := svc.AddEndpoint(ep.name, ep.handler, micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("endpoint %s: %w", ep.subject, err)
		}
	}
	return svc, nil
}

// MiniProgramLogin exchanges a wx.login code and resolves it to a committed user.
func (a *API) MiniProgramLogin(ctx context.Context, req identity.MiniProgramLoginRequest) (identity.LoginResult, error) {
	app, err := a.lookupApp(req.App, api.KindMiniProgram)
	if err != nil {
		return identity.LoginResult{}, err
	}
	if err := checkProfile(req.Profile); err != nil {
		return identity.LoginResult{}, err
	}
	sess, err := a.wx.Code2Session(ctx, app, req.Code)
	if err != nil {
		return identity.LoginResult{}, err
	}
	res, err := a.store.LoginWechat(ctx, store.WechatLogin{
		Kind: api.KindMiniProgram, AppID: app.AppID, OpenID: sess.OpenID, UnionID: sess.UnionID,
		SessionKey: sess.SessionKey, Profile: req.Profile,
	})
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	a.events.Notify()
	a.log.Debug("mini-program login", "request_id", natsrpc.RequestID(ctx), "user_id", res.User.ID,
		"appid", app.AppID, "is_new_user", res.IsNewUser)
	return identity.LoginResult{User: res.User.Public(), IsNewUser: res.IsNewUser, Kind: api.KindMiniProgram, AppID: app.AppID}, nil
}

// lookupApp finds the named app of kind ("" is the kind's default).
func (a *API) lookupApp(name, kind string) (apps.App, error) {
	app, ok := a.apps.Lookup(name, kind)
	switch {
	case ok:
		return app, nil
	case name == "":
		return apps.App{}, api.Errorf(api.CodeInvalidRequest, "no %s app is configured", kind)
	default:
		return apps.App{}, api.Errorf(api.CodeInvalidRequest, "unknown app")
	}
}

// GetUser returns a user with its identities.
func (a *API) GetUser(ctx context.Context, req identity.UserGetRequest) (api.User, error) {
	u, err := a.store.GetUser(ctx, req.UserID)
	if err != nil {
		return api.User{}, a.storeError(ctx, err)
	}
	return u.Public(), nil
}

// storeError maps store errors to contract codes. Anything unexpected goes
// back as is: natsrpc logs it once and answers internal_error.
func (a *API) storeError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "user not found")
	case errors.Is(err, store.ErrUserDisabled):
		return api.Errorf(api.CodeUserDisabled, "this account is disabled")
	case storageUnavailable(err):
		a.log.Warn("storage unavailable", "request_id", natsrpc.RequestID(ctx), "error", err)
		return api.Errorf(api.CodeServiceUnavailable, "storage is unavailable; try again shortly")
	}
	return err
}

// storageUnavailable reports errors of an absent or overloaded Postgres (or
// a request that ran out of time), which a retry later can cure.
func storageUnavailable(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code.Class() == "08" || pe.Code == "57P01" || pe.Code == "57P03" || pe.Code == "53300"
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &ne)
}

// Profile limits: generous for real WeChat data, small enough to keep rows small.
const (
	maxNickname = 64   // runes
	maxURL      = 1024 // bytes
	maxShort    = 64   // runes: language, city, province, country
)

func checkProfile(p *identity.Profile) error {
	if p == nil {
		return nil
	}
	if p.Gender != nil && (*p.Gender < 0 || *p.Gender > 2) {
		return api.Errorf(api.CodeInvalidRequest, "gender must be 0, 1 or 2")
	}
	for _, f := range []struct {
		name  string
		value *string
		limit int
		bytes bool
	}{
		{"nickname", p.Nickname, maxNickname, false},
		{"avatar_url", p.AvatarURL, maxURL, true},
		{"language", p.Language, maxShort, false},
		{"city", p.City, maxShort, false},
		{"province", p.Province, maxShort, false},
		{"country", p.Country, maxShort, false},
	} {
		if f.value == nil {
			continue
		}
		v := *f.value
		n := utf8.RuneCountInString(v)
		if f.bytes {
			n = len(v)
		}
		if n > f.limit {
			return api.Errorf(api.CodeInvalidRequest, "%s is longer than %d characters", f.name, f.limit)
		}
		// Postgres text holds neither invalid UTF-8 nor NUL.
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return api.Errorf(api.CodeInvalidRequest, "%s is not valid text", f.name)
		}
	}
	return nil
}
