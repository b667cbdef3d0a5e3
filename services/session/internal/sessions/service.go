// Package sessions holds the session service's use cases: it issues,
// refreshes, lists and revokes sessions and their tokens, runs QR login
// tickets and publishes the verification keys, each from its NATS micro
// endpoint.
package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/metrics"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// refreshAttempts bounds how often Refresh re-reads a family after losing a
// compare-and-set: each loss is a rotation (then the token is reuse) or a
// revocation mark (then it is revoked), so the second read decides.
const refreshAttempts = 4

// maxAppIDLength bounds the appids we store or sign, so a request cannot
// bloat tokens.
const maxAppIDLength = 64

// kinds are the login kinds a token may carry.
var kinds = map[string]bool{api.KindMiniProgram: true, api.KindWeb: true, api.KindOfficialAccount: true, api.KindApp: true, api.KindPassword: true}

// Deps are what the handlers work with.
type Deps struct {
	Keys        *tokens.Keyring
	Minter      *tokens.Minter
	Families    *kvstate.Families
	Revocations *kvstate.Revocations
	// UserRevocations is the local view of the user revocation keys.
	UserRevocations *kvstate.UserRevocations
	Tickets         *kvstate.Tickets
	OAStates        *kvstate.OAStates // the in-WeChat login (oa.go)
	OACodes         *kvstate.OACodes
	Apps            *apps.Registry
	RefreshTTL      time.Duration
	QRTTL           time.Duration
	Log             *slog.Logger
	Metrics         *metrics.Metrics // nil: not measured
	Now             func() time.Time // nil: time.Now
	// MaxFamilies bounds one user's refresh families (sessions): past it
	// the oldest go (0: DefaultMaxFamilies). TrimEvery: a copy checks a
	// user once per that many of its logins (0: MaxFamilies/6, between 1
	// and MaxTrimEvery), so the check (a listing) stays off most logins
	// while a user exceeds the cap by at most a sixth between checks.
	MaxFamilies, TrimEvery int
}

// The default of Deps.MaxFamilies, and the most logins of a user between
// two checks when Deps.TrimEvery is derived.
const (
	DefaultMaxFamilies = 100
	MaxTrimEvery       = 16
)

// Service implements the session endpoints.
type Service struct {
	Deps
	issued issueCounts
}

// New returns the session endpoints over deps.
func New(deps Deps) *Service {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.MaxFamilies <= 0 {
		deps.MaxFamilies = DefaultMaxFamilies
	}
	if deps.TrimEvery <= 0 {
		deps.TrimEvery = min(max(deps.MaxFamilies/6, 1), MaxTrimEvery)
	}
	return &Service{Deps: deps, issued: issueCounts{n: map[string]int{}}}
}

// issueCounts counts this copy's logins per user, for Trim. It forgets
// everything when it holds maxCountedUsers: a user then starts from zero,
// which only delays a trim.
type issueCounts struct {
	mu sync.Mutex
	n  map[string]int
}

const maxCountedUsers = 10000

// due counts a login of user and reports whether it is the every-th.
func (c *issueCounts) due(user string, every int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.n) >= maxCountedUsers {
		clear(c.n)
	}
	c.n[user]++
	return c.n[user]%every == 0
}

// AddEndpoints registers the endpoints on svc, running them on pool, each
// counted and timed by subject. (A body that is not JSON is refused by
// natsrpc before the handler, so it is not counted.)
func (s *Service) AddEndpoints(svc micro.Service, pool *natsrpc.Pool) error {
	m := s.Metrics
	endpoints := []struct {
		name, subject string
		h             micro.Handler
	}{
		{"issue", session.SubjectIssue, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectIssue, s.Issue))},
		{"refresh", session.SubjectRefresh, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectRefresh, s.Refresh))},
		{"revoke", session.SubjectRevoke, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectRevoke, s.Revoke))},
		{"list", session.SubjectList, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectList, s.List))},
		{"jwks", session.SubjectJWKS, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectJWKS, s.JWKS))},
		{"qr-create", session.SubjectQRCreate, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectQRCreate, s.QRCreate))},
		{"qr-complete", session.SubjectQRComplete, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectQRComplete, s.QRComplete))},
		{"qr-consume", session.SubjectQRConsume, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectQRConsume, s.QRConsume))},
		{"oa-start", session.SubjectOAStart, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectOAStart, s.OAStart))},
		{"oa-take", session.SubjectOATake, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectOATake, s.OATake))},
		{"oa-code", session.SubjectOACode, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectOACode, s.OACode))},
		{"oa-exchange", session.SubjectOAExchange, natsrpc.Endpoint(pool, metrics.Instrument(m, session.SubjectOAExchange, s.OAExchange))},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, e.h, micro.WithEndpointSubject(e.subject)); err != nil {
			return fmt.Errorf("add endpoint %s: %w", e.name, err)
		}
	}
	return nil
}

// grant is a signed token pair and the new family that backs it, not yet
// stored: signing can fail, so it happens before anything irreversible.
type grant struct {
	userID, familyID string
	access, refresh  string
	family           kvstate.Family
}

// newGrant signs a token pair of a new refresh family.
func (s *Service) newGrant(userID, kind, appID string, now time.Time) (grant, error) {
	familyID := tokens.NewFamilyID()
	access, err := s.Minter.Mint(now, accessClaims(userID, kind, appID, familyID))
	if err != nil {
		return grant{}, err
	}
	key, err := tokens.NewFamilyKey()
	if err != nil {
		return grant{}, err
	}
	refresh, err := tokens.NewRefreshToken(key, userID, familyID, 0)
	if err != nil {
		return grant{}, err
	}
	return grant{
		userID:   userID,
		familyID: familyID,
		access:   access,
		refresh:  refresh,
		family: kvstate.Family{
			UserID:    userID,
			Kind:      kind,
			AppID:     appID,
			TokenHash: tokens.HashRefreshToken(refresh),
			MACKey:    key,
			CreatedAt: now.UTC(),
			ExpiresAt: now.Add(s.RefreshTTL).UTC(),
		},
	}, nil
}

// store creates the grant's family (every login's, QR logins' too); its
// tokens work from then on.
func (s *Service) store(ctx context.Context, g grant, now time.Time) (session.Tokens, error) {
	if err := s.Families.Create(ctx, g.userID, g.familyID, g.family); err != nil {
		return session.Tokens{}, fmt.Errorf("store refresh family: %w", err)
	}
	s.trim(ctx, g.userID, now)
	return s.tokens(g.access, g.refresh, g.family.ExpiresAt, now), nil
}

// trim keeps the user at MaxFamilies families, checking once per TrimEvery
// of this copy's logins of the user. A trimmed session ends as a logout
// does: its access tokens are revoked by sid, then its family goes. The
// login has its family: a failed trim is only logged (the next check tries
// again).
func (s *Service) trim(ctx context.Context, userID string, now time.Time) {
	if !s.issued.due(userID, s.TrimEvery) {
		return
	}
	n, err := s.Families.Trim(ctx, userID, s.MaxFamilies, func(familyID string) error {
		return s.Revocations.RevokeSID(ctx, familyID, now)
	})
	switch {
	case err != nil:
		s.Log.Warn("trimming the user's oldest sessions failed", "request_id", natsrpc.RequestID(ctx), "user_id", userID, "error", err)
	case n > 0:
		s.Log.Info("the user's oldest sessions trimmed", "request_id", natsrpc.RequestID(ctx), "user_id", userID,
			"trimmed", n, "kept", s.MaxFamilies)
	}
}

// Issue starts a new refresh family for a user who has just logged in.
func (s *Service) Issue(ctx context.Context, req session.IssueRequest) (session.Tokens, error) {
	switch {
	case req.UserID == "":
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "user_id is required")
	case !tokens.ValidUserID(req.UserID):
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "user_id must be 1 to 64 characters of [A-Za-z0-9_-]")
	case !kinds[req.Kind]:
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "kind must be one of miniprogram, web, officialaccount, app, password")
	case len(req.AppID) > maxAppIDLength:
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "appid is too long")
	}
	now := s.Now()
	// A disable that has just happened may have raced this login: identity
	// saw the user enabled, the revoke ran before this family exists. Within
	// a second of the cut-off a new family would look older than it, so none
	// is made.
	if at, ok := s.UserRevocations.Cutoff(req.UserID, now); ok && at >= now.Unix()-1 {
		return session.Tokens{}, api.Errorf(api.CodeTokenRevoked, "the account's sessions were revoked just now; sign in again")
	}
	g, err := s.newGrant(req.UserID, req.Kind, req.AppID, now)
	if err != nil {
		return session.Tokens{}, err
	}
	tok, err := s.store(ctx, g, now)
	if err != nil {
		return session.Tokens{}, err
	}
	s.Metrics.TokensIssued(req.Kind)
	s.Log.Info("tokens issued", "request_id", natsrpc.RequestID(ctx), "user_id", req.UserID, "sid", g.familyID,
		"kind", req.Kind, "appid", req.AppID)
	return tok, nil
}

// Refresh spends a refresh token: the family moves to the next generation
// by compare-and-set. Any earlier token of the family, however old, is reuse
// and revokes the family. Of concurrent refreshes with one token exactly one
// wins; each loser then holds an earlier token, so it revokes the family too
// (the winner's new pair with it): a token presented twice may have been
// copied, and only the thief benefits from telling the two apart.
func (s *Service) Refresh(ctx context.Context, req session.RefreshRequest) (session.Tokens, error) {
	rt, err := tokens.ParseRefreshToken(req.RefreshToken)
	if err != nil {
		return session.Tokens{}, errInvalidRefresh
	}
	for range refreshAttempts {
		tok, err := s.refreshOnce(ctx, rt, req.RefreshToken)
		if !errors.Is(err, kvstate.ErrConflict) {
			return tok, err
		}
		// Lost the compare-and-set: re-read the family and decide again.
		s.Log.Info("refresh raced another change of its family", "request_id", natsrpc.RequestID(ctx),
			"user_id", rt.UserID, "sid", rt.FamilyID)
	}
	return session.Tokens{}, fmt.Errorf("refresh: %w after %d attempts", kvstate.ErrConflict, refreshAttempts)
}

// refreshOnce is one read-decide-update round of Refresh; kvstate.ErrConflict
// when the family changed between the read and the update.
func (s *Service) refreshOnce(ctx context.Context, rt tokens.RefreshToken, token string) (session.Tokens, error) {
	userID, familyID := rt.UserID, rt.FamilyID
	fam, rev, err := s.Families.Get(ctx, userID, familyID)
	if errors.Is(err, kvstate.ErrNotFound) {
		return session.Tokens{}, errInvalidRefresh
	}
	if err != nil {
		return session.Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	now := s.Now()
	// Only a token the family made counts: a made-up one, even of a real
	// family, must not be able to revoke it.
	if !rt.Authentic(fam.MACKey) {
		return session.Tokens{}, errInvalidRefresh
	}
	switch {
	case rt.Generation < fam.Generation:
		return session.Tokens{}, s.reused(ctx, userID, familyID, fam, now)
	case rt.Generation > fam.Generation || !tokens.HashesEqual(tokens.HashRefreshToken(token), fam.TokenHash):
		// Forged with the stored key: that key alone must not make a usable token.
		return session.Tokens{}, errInvalidRefresh
	case fam.RevokedAt != nil:
		return session.Tokens{}, errRevoked
	case s.revokedWithUser(ctx, userID, familyID, fam, now):
		return session.Tokens{}, errRevoked
	case !now.Before(fam.ExpiresAt):
		return session.Tokens{}, api.Errorf(api.CodeTokenExpired, "refresh token expired")
	}

	// Sign first: once the family moves on, the old token is gone, so nothing
	// may fail after the update.
	access, err := s.Minter.Mint(now, accessClaims(userID, fam.Kind, fam.AppID, familyID))
	if err != nil {
		return session.Tokens{}, err
	}
	next := fam
	next.Generation = fam.Generation + 1
	refresh, err := tokens.NewRefreshToken(fam.MACKey, userID, familyID, next.Generation)
	if err != nil {
		return session.Tokens{}, err
	}
	next.TokenHash = tokens.HashRefreshToken(refresh)
	used := now.UTC()
	next.LastUsedAt = &used
	if err := s.Families.Update(ctx, userID, familyID, next, rev); err != nil {
		return session.Tokens{}, fmt.Errorf("refresh: %w", err) // ErrConflict: Refresh re-reads
	}
	s.Metrics.TokensIssued(fam.Kind)
	s.Log.Info("tokens refreshed", "request_id", natsrpc.RequestID(ctx), "user_id", userID, "sid", familyID, "generation", next.Generation)
	return s.tokens(access, refresh, fam.ExpiresAt, now), nil
}

var (
	errInvalidRefresh = api.Errorf(api.CodeTokenInvalid, "refresh token invalid")
	errRevoked        = api.Errorf(api.CodeTokenRevoked, "refresh token revoked")
	errReused         = api.Errorf(api.CodeRefreshTokenReused, "refresh token already used; sign in again")
)

// revokedWithUser reports whether the user's tokens were revoked in bulk at
// or after the family began. Revoking a user marks the families it finds, but
// one created while that ran is only caught here; it is marked now, so it
// stays dead after the user key ages out of the revoked bucket.
func (s *Service) revokedWithUser(ctx context.Context, userID, familyID string, fam kvstate.Family, now time.Time) bool {
	at, ok := s.UserRevocations.Cutoff(userID, now)
	if !ok || fam.CreatedAt.Unix() > at {
		return false
	}
	if _, err := s.Families.Revoke(ctx, userID, familyID, time.Unix(at, 0).UTC()); err != nil {
		// The refresh is refused either way; the next attempt retries the mark.
		s.Log.Warn("mark family of revoked user", "request_id", natsrpc.RequestID(ctx), "user_id", userID, "sid", familyID, "error", err)
	}
	return true
}

// reused answers an earlier token of the family: it was copied, so the whole
// family is revoked, and its access tokens with it, so whoever holds the
// newest pair loses it too.
func (s *Service) reused(ctx context.Context, userID, familyID string, fam kvstate.Family, now time.Time) error {
	s.Metrics.RefreshReuse()
	if fam.RevokedAt == nil && now.Before(fam.ExpiresAt) {
		// The sid key first: the family's live access tokens die at once,
		// even if marking the family then fails (a retry marks it).
		if err := s.Revocations.RevokeSID(ctx, familyID, now); err != nil {
			return fmt.Errorf("revoke reused family's access tokens: %w", err)
		}
		if _, err := s.Families.Revoke(ctx, userID, familyID, now.UTC()); err != nil && !errors.Is(err, kvstate.ErrNotFound) {
			return fmt.Errorf("revoke reused family: %w", err)
		}
		s.Log.Warn("refresh token reuse detected; session revoked", "request_id", natsrpc.RequestID(ctx), "user_id", userID, "sid", familyID)
	}
	return errReused
}

// Revoke revokes any subset of one access token, one refresh family (and its
// access tokens) and every family and access token of a user.
func (s *Service) Revoke(ctx context.Context, req session.RevokeRequest) (session.RevokeResponse, error) {
	if err := checkRevoke(req); err != nil {
		return session.RevokeResponse{}, err
	}
	now := s.Now()
	if req.JTI != "" {
		if err := s.Revocations.RevokeJTI(ctx, req.JTI, time.Unix(req.ExpiresAt, 0), now); err != nil {
			return session.RevokeResponse{}, err
		}
	}
	user := req.UserID
	if req.SessionID != "" {
		// The key first: access tokens die at once; then the refresh token.
		if err := s.Revocations.RevokeSID(ctx, req.SessionID, now); err != nil {
			return session.RevokeResponse{}, err
		}
		owner, err := s.revokeFamily(ctx, req.Subject, req.SessionID, now)
		if err != nil {
			return session.RevokeResponse{}, err
		}
		if user == "" {
			user = owner
		}
	}
	families := 0
	if req.UserID != "" {
		if err := s.Revocations.RevokeUser(ctx, req.UserID, now); err != nil {
			return session.RevokeResponse{}, err
		}
		// The cut-off outlives the revoked key (refresh TTL, not access TTL),
		// so a family that escapes the marking below can never be refreshed.
		if err := s.Families.SetUserCutoff(ctx, req.UserID, now); err != nil {
			return session.RevokeResponse{}, err
		}
		s.UserRevocations.Record(req.UserID, now.Unix())
		n, err := s.Families.RevokeUser(ctx, req.UserID, now.UTC())
		if err != nil {
			return session.RevokeResponse{}, fmt.Errorf("revoke families of user: %w", err)
		}
		families = n
	}
	s.Log.Info("revoked", "request_id", natsrpc.RequestID(ctx), "user_id", user, "sid", req.SessionID, "jti", req.JTI,
		"all_of_user", req.UserID != "", "families_revoked", families)
	return session.RevokeResponse{}, nil
}

func checkRevoke(req session.RevokeRequest) error {
	switch {
	case req.JTI == "" && req.SessionID == "" && req.UserID == "":
		return api.Errorf(api.CodeInvalidRequest, "jti, sid or user_id is required")
	// jti and sid are ours and UUIDs; checking the form also keeps them
	// valid KV keys.
	case req.JTI != "" && !api.ValidID(req.JTI):
		return api.Errorf(api.CodeInvalidRequest, "jti is malformed")
	case req.JTI != "" && req.ExpiresAt <= 0:
		return api.Errorf(api.CodeInvalidRequest, "exp is required with jti")
	case req.SessionID != "" && !tokens.ValidFamilyID(req.SessionID):
		return api.Errorf(api.CodeInvalidRequest, "sid is malformed")
	case req.Subject != "" && !tokens.ValidUserID(req.Subject):
		return api.Errorf(api.CodeInvalidRequest, "sub is malformed")
	case req.UserID != "" && !tokens.ValidUserID(req.UserID):
		return api.Errorf(api.CodeInvalidRequest, "user_id is malformed")
	}
	return nil
}

// revokeFamily marks family sid revoked and returns its owner. The caller's
// sub names its key directly; without it (or when it is wrong) the owner is
// found by a scan. An unknown family is not an error: it may have aged out.
func (s *Service) revokeFamily(ctx context.Context, sub, sid string, now time.Time) (owner string, err error) {
	if sub != "" {
		_, err := s.Families.Revoke(ctx, sub, sid, now.UTC())
		if !errors.Is(err, kvstate.ErrNotFound) {
			return sub, err
		}
	}
	owner, err = s.Families.OwnerOf(ctx, sid)
	if errors.Is(err, kvstate.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if _, err := s.Families.Revoke(ctx, owner, sid, now.UTC()); err != nil && !errors.Is(err, kvstate.ErrNotFound) {
		return owner, err
	}
	return owner, nil
}

// List returns the user's live sessions, newest first: not revoked (one by
// one, or with all of the user's), not expired.
func (s *Service) List(ctx context.Context, req session.ListRequest) (session.List, error) {
	if !tokens.ValidUserID(req.UserID) {
		return session.List{}, api.Errorf(api.CodeInvalidRequest, "user_id is malformed")
	}
	fams, err := s.Families.ListUser(ctx, req.UserID)
	if err != nil {
		return session.List{}, fmt.Errorf("list sessions: %w", err)
	}
	now := s.Now()
	cutoff, cut := s.UserRevocations.Cutoff(req.UserID, now)
	list := session.List{Items: []session.Info{}}
	for id, fam := range fams {
		if fam.RevokedAt != nil || !now.Before(fam.ExpiresAt) || (cut && fam.CreatedAt.Unix() <= cutoff) {
			continue
		}
		used := fam.CreatedAt
		if fam.LastUsedAt != nil {
			used = *fam.LastUsedAt
		}
		list.Items = append(list.Items, session.Info{ID: id, Kind: fam.Kind, ClientID: accessClaims(req.UserID, fam.Kind, fam.AppID, id).ClientID,
			CreatedAt: fam.CreatedAt, LastUsedAt: used, ExpiresAt: fam.ExpiresAt})
	}
	slices.SortFunc(list.Items, func(a, b session.Info) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, nil
}

// JWKS returns the public keys verifiers need.
func (s *Service) JWKS(_ context.Context, _ session.JWKSRequest) (json.RawMessage, error) {
	b, err := s.Keys.JWKS(s.Now())
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return json.RawMessage(b), nil
}

func (s *Service) tokens(access, refresh string, refreshExpiresAt, now time.Time) session.Tokens {
	return session.Tokens{
		AccessToken:      access,
		TokenType:        "Bearer",
		ExpiresIn:        int64(s.Minter.TTL() / time.Second),
		RefreshToken:     refresh,
		RefreshExpiresIn: int64(refreshExpiresAt.Sub(now) / time.Second),
	}
}

func accessClaims(userID, kind, appID, familyID string) tokens.AccessClaims {
	clientID := appID
	if clientID == "" {
		clientID = tokens.DefaultClientID
	}
	return tokens.AccessClaims{UserID: userID, ClientID: clientID, SessionID: familyID, Kind: kind}
}
