package sessions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// The in-WeChat login (official-account web authorization): a state bound
// to the browser by a cookie, spent once at the callback; then a one-time
// wxlogin_code for the site, spent once for the tokens.
const (
	// oaStateBytes of randomness in a state, hex-encoded: WeChat takes
	// [a-zA-Z0-9] only in state.
	oaStateBytes        = 16
	oaBrowserTokenBytes = 32
	oaCodeBytes         = 32
	// Sizes of what the gateway hands on (it enforces the same limits on
	// its input, docs/api.md).
	maxRedirectURILength = 2048
	maxSiteStateLength   = 128
)

var (
	errOAStateNotFound = api.Errorf(api.CodeNotFound, "this login was not started here, has expired or has been used")
	errOAWrongBrowser  = api.Errorf(api.CodeForbidden, "this login was started in another browser")
	errLoginCode       = api.Errorf(api.CodeLoginCodeInvalid, "the wxlogin_code is invalid, expired or already used")
	errOAFull          = api.Errorf(api.CodeServiceUnavailable, "too many in-WeChat logins are in progress; try again shortly")
)

// OAStart starts an in-WeChat login: a state for the official account's
// authorization page, and the browser token whose hash it keeps.
func (s *Service) OAStart(ctx context.Context, req session.OAStartRequest) (session.OAStart, error) {
	switch {
	case len(req.App) > maxAppNameLength:
		return session.OAStart{}, api.Errorf(api.CodeInvalidRequest, "app is too long")
	case req.Scope != session.ScopeUserInfo && req.Scope != session.ScopeBase:
		return session.OAStart{}, api.Errorf(api.CodeInvalidRequest, "scope must be %s or %s", session.ScopeUserInfo, session.ScopeBase)
	case req.RedirectURI == "" || len(req.RedirectURI) > maxRedirectURILength:
		return session.OAStart{}, api.Errorf(api.CodeInvalidRequest, "redirect_uri is required and at most %d bytes", maxRedirectURILength)
	case len(req.SiteState) > maxSiteStateLength:
		return session.OAStart{}, api.Errorf(api.CodeInvalidRequest, "state is at most %d bytes", maxSiteStateLength)
	}
	app, err := s.loginApp(req.App, apps.KindOfficialAccount, "official account", "WXLOGIN_OA_APPID or an officialaccount app")
	if err != nil {
		return session.OAStart{}, err
	}
	if err := s.room(ctx, s.OAStates.Room, "OA", errOAFull); err != nil {
		return session.OAStart{}, err
	}
	state, err := randomHex(oaStateBytes)
	if err != nil {
		return session.OAStart{}, fmt.Errorf("oa state randomness: %w", err)
	}
	browser, err := tokens.RandomString(oaBrowserTokenBytes)
	if err != nil {
		return session.OAStart{}, fmt.Errorf("oa browser token randomness: %w", err)
	}
	now := s.Now()
	rec := session.OAStateRecord{
		App: app.Name, AppID: app.AppID, Scope: req.Scope, RedirectURI: req.RedirectURI, SiteState: req.SiteState,
		BrowserTokenHash: tokens.HashToken(browser), CreatedAt: now.UTC(), ExpiresAt: now.Add(session.OAStateTTL).UTC(),
	}
	if err := s.OAStates.Create(ctx, state, rec); err != nil {
		return session.OAStart{}, err // ErrConflict needs a 128-bit collision
	}
	s.Log.Info("oa login started", "request_id", natsrpc.RequestID(ctx), "appid", app.AppID, "scope", req.Scope)
	return session.OAStart{State: state, BrowserToken: browser, AppID: app.AppID,
		ExpiresIn: int64(session.OAStateTTL / time.Second)}, nil
}

// OATake spends a state at the callback: only with its browser token (a
// callback from another browser changes nothing), and once (compare-and-set
// delete: a replayed callback finds nothing).
func (s *Service) OATake(ctx context.Context, req session.OATakeRequest) (session.OATaken, error) {
	if !validHex(req.State, oaStateBytes) {
		return session.OATaken{}, errOAStateNotFound
	}
	rec, rev, err := s.OAStates.Get(ctx, req.State)
	if errors.Is(err, kvstate.ErrNotFound) {
		return session.OATaken{}, errOAStateNotFound
	}
	if err != nil {
		return session.OATaken{}, err
	}
	if !s.Now().Before(rec.ExpiresAt) {
		return session.OATaken{}, errOAStateNotFound
	}
	if !validRandom(req.BrowserToken, oaBrowserTokenBytes) ||
		!tokens.HashesEqual(tokens.HashToken(req.BrowserToken), rec.BrowserTokenHash) {
		s.Log.Info("oa callback from another browser ignored", "request_id", natsrpc.RequestID(ctx), "appid", rec.AppID)
		return session.OATaken{}, errOAWrongBrowser
	}
	err = s.OAStates.Consume(ctx, req.State, rev)
	if errors.Is(err, kvstate.ErrConflict) {
		return session.OATaken{}, errOAStateNotFound // a concurrent callback won
	}
	if err != nil {
		return session.OATaken{}, err
	}
	return session.OATaken{App: rec.App, AppID: rec.AppID, Scope: rec.Scope, RedirectURI: rec.RedirectURI, SiteState: rec.SiteState}, nil
}

// OACode records a resolved in-WeChat login under a new one-time code.
func (s *Service) OACode(ctx context.Context, req session.OACodeRequest) (session.OACode, error) {
	bind := req.BindToken != ""
	switch {
	case len(req.AppID) == 0 || len(req.AppID) > maxAppIDLength:
		return session.OACode{}, api.Errorf(api.CodeInvalidRequest, "appid is required and at most %d bytes", maxAppIDLength)
	case bind && req.User != nil:
		return session.OACode{}, api.Errorf(api.CodeInvalidRequest, "a not-bound login has a bind token only, no user")
	case bind && len(req.BindToken) > maxBindTokenLength:
		return session.OACode{}, api.Errorf(api.CodeInvalidRequest, "bind_token is too long")
	case !bind && (req.Nickname != "" || req.AvatarURL != ""):
		return session.OACode{}, api.Errorf(api.CodeInvalidRequest, "nickname and avatar_url go with a bind token only")
	case len(req.Nickname) > maxNicknameBytes || len(req.AvatarURL) > maxAvatarURLBytes:
		return session.OACode{}, api.Errorf(api.CodeInvalidRequest, "nickname or avatar_url is too long")
	case !bind && (req.User == nil || !tokens.ValidUserID(req.User.ID)):
		return session.OACode{}, api.Errorf(api.CodeInvalidRequest, "user with an id is required unless not bound")
	}
	code, err := tokens.RandomString(oaCodeBytes)
	if err != nil {
		return session.OACode{}, fmt.Errorf("oa login code randomness: %w", err)
	}
	now := s.Now()
	rec := session.OACodeRecord{
		AppID: req.AppID, User: req.User, IsNewUser: req.IsNewUser,
		BindToken: req.BindToken, Nickname: req.Nickname, AvatarURL: req.AvatarURL,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(session.OACodeTTL).UTC(),
	}
	if err := s.OACodes.Create(ctx, code, rec); err != nil {
		return session.OACode{}, err
	}
	return session.OACode{Code: code, ExpiresIn: int64(session.OACodeTTL / time.Second)}, nil
}

// OAExchange spends a wxlogin_code, once: tokens for a user (kind
// officialaccount), or wechat_not_bound with the bind token.
func (s *Service) OAExchange(ctx context.Context, req session.OAExchangeRequest) (session.QRConsumeResult, error) {
	if !validRandom(req.Code, oaCodeBytes) {
		return session.QRConsumeResult{}, errLoginCode
	}
	rec, rev, err := s.OACodes.Get(ctx, req.Code)
	if errors.Is(err, kvstate.ErrNotFound) {
		return session.QRConsumeResult{}, errLoginCode
	}
	if err != nil {
		return session.QRConsumeResult{}, err
	}
	if !s.Now().Before(rec.ExpiresAt) {
		return session.QRConsumeResult{}, errLoginCode
	}
	consume := func(ctx context.Context) error { return s.OACodes.Consume(ctx, req.Code, rev) }
	if rec.BindToken != "" {
		if err := consume(ctx); errors.Is(err, kvstate.ErrConflict) {
			return session.QRConsumeResult{}, errLoginCode
		} else if err != nil {
			return session.QRConsumeResult{}, err
		}
		data := map[string]string{identity.DataBindToken: rec.BindToken}
		if rec.Nickname != "" {
			data[identity.DataNickname] = rec.Nickname
		}
		if rec.AvatarURL != "" {
			data[identity.DataAvatarURL] = rec.AvatarURL
		}
		return session.QRConsumeResult{}, &api.Error{Code: api.CodeWechatNotBound,
			Message: "this WeChat account is not linked to an account yet: register (/auth/register) or bind (/auth/bind) one with bind_token",
			Data:    data}
	}
	if rec.User == nil || !tokens.ValidUserID(rec.User.ID) {
		return session.QRConsumeResult{}, errors.New("exchange oa login code: record without a valid user")
	}
	tok, err := s.issueOnce(ctx, *rec.User, api.KindOfficialAccount, rec.AppID, rec.CreatedAt, "oa", consume)
	if errors.Is(err, kvstate.ErrConflict) {
		return session.QRConsumeResult{}, errLoginCode // a concurrent exchange won
	}
	if err != nil {
		return session.QRConsumeResult{}, err
	}
	return session.QRConsumeResult{Tokens: tok, User: *rec.User, IsNewUser: rec.IsNewUser}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// validHex reports whether s is lowercase hex of exactly n bytes, the form
// of our states; anything else is never used as a KV key.
func validHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
