package accounts

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/password"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

var errCredentials = api.Errorf(api.CodeInvalidCredentials, "wrong username or password")

// Register creates a username/password account, with the WeChat identity
// of a bind token or a mini-program code attached when one is given.
func (a *API) Register(ctx context.Context, req identity.RegisterRequest) (identity.LoginResult, error) {
	username, err := normalizeUsername(req.Username)
	if err != nil {
		return identity.LoginResult{}, err
	}
	if err := checkNewPassword(req.Password); err != nil {
		return identity.LoginResult{}, err
	}
	if req.BindToken != "" && req.Code != "" {
		return identity.LoginResult{}, invalid("send either bind_token or code, not both")
	}
	// A taken name is refused before a WeChat code is spent on it (the
	// insert below still decides a race).
	taken, err := a.Store.UsernameExists(ctx, username)
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	if taken {
		return identity.LoginResult{}, a.storeError(ctx, store.ErrUsernameTaken)
	}
	var proven *store.WechatLogin
	var spend func(context.Context) error
	if req.BindToken != "" || req.Code != "" {
		in, sp, err := a.prove(ctx, req.WeChatProof)
		if err != nil {
			return identity.LoginResult{}, err
		}
		proven, spend = &in, sp
	}
	hash, err := a.Passwords.Hash(ctx, req.Password)
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	u, err := a.Store.CreateAccount(ctx, store.NewAccount{Username: username, PasswordHash: hash, Identity: proven, BeforeCommit: spend})
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	attrs := []any{"request_id", natsrpc.RequestID(ctx), "user_id", u.ID}
	if proven != nil {
		attrs = append(attrs, "appid", proven.AppID, "kind", proven.Kind)
	}
	a.log.Info("account registered", attrs...)
	return identity.LoginResult{User: u.Public(), IsNewUser: true, Kind: api.KindPassword}, nil
}

// PasswordLogin checks a username and password.
func (a *API) PasswordLogin(ctx context.Context, req identity.PasswordLoginRequest) (identity.LoginResult, error) {
	creds, err := a.checkPassword(ctx, req.Username, req.Password, req.ClientIP)
	if err != nil {
		return identity.LoginResult{}, err
	}
	u, err := a.Store.RecordPasswordLogin(ctx, creds.UserID)
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Debug("password login", "request_id", natsrpc.RequestID(ctx), "user_id", u.ID)
	return identity.LoginResult{User: u.Public(), Kind: api.KindPassword}, nil
}

// Bind attaches the WeChat identity of a bind token or a mini-program code
// to the account whose password is given (and logs it in).
func (a *API) Bind(ctx context.Context, req identity.BindRequest) (identity.LoginResult, error) {
	if req.BindToken == "" && req.Code == "" {
		return identity.LoginResult{}, invalid("bind_token or code is required")
	}
	if req.BindToken != "" && req.Code != "" {
		return identity.LoginResult{}, invalid("send either bind_token or code, not both")
	}
	// The password first: a wrong one spends neither the code nor the token.
	creds, err := a.checkPassword(ctx, req.Username, req.Password, req.ClientIP)
	if err != nil {
		return identity.LoginResult{}, err
	}
	in, spend, err := a.prove(ctx, req.WeChatProof)
	if err != nil {
		return identity.LoginResult{}, err
	}
	res, err := a.Store.BindIdentity(ctx, creds.UserID, in, spend)
	if err != nil {
		return identity.LoginResult{}, a.storeError(ctx, err)
	}
	a.Events.Notify()
	a.log.Info("wechat identity bound", "request_id", natsrpc.RequestID(ctx), "user_id", res.User.ID,
		"appid", in.AppID, "kind", in.Kind, "new", res.Bound)
	return identity.LoginResult{User: res.User.Public(), Kind: api.KindPassword}, nil
}

// prove returns the WeChat identity a proof stands for and, for a bind
// token, the function that spends it (run as the last step of the
// transaction using it, so a failed register leaves the token usable).
func (a *API) prove(ctx context.Context, p identity.WeChatProof) (store.WechatLogin, func(context.Context) error, error) {
	if p.BindToken != "" {
		id, rev, err := a.BindTokens.Lookup(ctx, p.BindToken)
		if err != nil {
			return store.WechatLogin{}, nil, a.storeError(ctx, err)
		}
		spend := func(ctx context.Context) error { return a.BindTokens.Spend(ctx, p.BindToken, rev) }
		return store.WechatLogin{Kind: id.Kind, AppID: id.AppID, OpenID: id.OpenID, UnionID: id.UnionID,
			SessionKey: id.SessionKey, Profile: id.Profile}, spend, nil
	}
	app, err := a.lookupApp(p.App, api.KindMiniProgram)
	if err != nil {
		return store.WechatLogin{}, nil, err
	}
	sess, err := a.WeChat.Code2Session(ctx, app, p.Code)
	if err != nil {
		return store.WechatLogin{}, nil, err
	}
	return store.WechatLogin{Kind: api.KindMiniProgram, AppID: app.AppID, OpenID: sess.OpenID, UnionID: sess.UnionID,
		SessionKey: sess.SessionKey}, nil, nil
}

// checkPassword verifies a username and password. Every failure is
// invalid_credentials and costs the same (unknown users are checked against
// a dummy hash); a disabled account is told only to whoever knows its
// password. Each check first takes attempt slots (faillimit: per username
// and client address, and per username): when one refuses, rate_limited
// without checking; if the slots cannot be counted, service_unavailable.
func (a *API) checkPassword(ctx context.Context, rawUsername, pw, clientIP string) (store.Credentials, error) {
	username := loginUsername(rawUsername)
	attempt, err := a.Failures.Take(ctx, username, clientIP)
	if err != nil {
		return store.Credentials{}, a.limitError(ctx, err, clientIP)
	}
	var creds store.Credentials
	// A name no account can have (too long, not text: Postgres would
	// refuse a NUL) is checked against the dummy hash like an unknown one.
	if username != "" && len(username) <= maxUsername*4 && len(pw) <= maxPassword && textField("username", &username, maxUsername*4, true) == nil {
		creds, err = a.Store.Credentials(ctx, username)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.releaseAttempt(ctx, attempt)
			return store.Credentials{}, a.storeError(ctx, err)
		}
	}
	ok, err := a.Passwords.Verify(ctx, creds.PasswordHash, pw)
	switch {
	case errors.Is(err, password.ErrMalformed):
		a.log.Error("stored password hash is malformed", "request_id", natsrpc.RequestID(ctx), "user_id", creds.UserID)
	case err != nil:
		a.releaseAttempt(ctx, attempt)
		return store.Credentials{}, a.storeError(ctx, err) // no hashing slot in time
	}
	if !ok {
		return store.Credentials{}, errCredentials // the attempt keeps its slot
	}
	if err := attempt.Succeeded(ctx); err != nil {
		// The password was right: only earlier failures stay counted.
		a.log.Warn("could not reset failed password attempts", "request_id", natsrpc.RequestID(ctx), "user_id", creds.UserID, "error", err)
	}
	if creds.Disabled {
		return store.Credentials{}, a.storeError(ctx, store.ErrUserDisabled)
	}
	return creds, nil
}

// limitError translates a refused attempt slot: rate_limited when the
// limits say so, else service_unavailable (fail closed: without the
// counts there is no limit).
func (a *API) limitError(ctx context.Context, err error, clientIP string) error {
	var limited *faillimit.LimitedError
	if errors.As(err, &limited) {
		a.log.Warn("password attempts limited", "request_id", natsrpc.RequestID(ctx), "client_ip", clientIP)
		secs := int(math.Ceil(limited.RetryAfter.Seconds()))
		return &api.Error{Code: api.CodeRateLimited,
			Message: "too many failed attempts; try again later",
			Data:    map[string]string{identity.DataRetryAfter: strconv.Itoa(secs)}}
	}
	a.log.Error("cannot count password attempts", "request_id", natsrpc.RequestID(ctx), "error", err)
	return api.Errorf(api.CodeServiceUnavailable, "password login is not available right now; try again shortly")
}

// releaseAttempt gives back the slot of a password that was not checked,
// even when ctx is what ran out.
func (a *API) releaseAttempt(ctx context.Context, attempt faillimit.Attempt) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := attempt.Release(rctx); err != nil {
		a.log.Warn("could not release a password attempt slot", "request_id", natsrpc.RequestID(ctx), "error", err)
	}
}
