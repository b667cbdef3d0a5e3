// Package natsapi is the session service's NATS API: it issues, refreshes
// and revokes tokens and publishes the verification keys, as micro endpoints.
package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natsrpc"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// maxSpent is how many spent refresh token hashes a family remembers for
// reuse detection: a token replayed after more rotations than this is only
// "invalid" (the family stays alive).
const maxSpent = 32

// Limits on identifiers we store or sign, so a request cannot bloat tokens.
const (
	maxUserIDLength = 128
	maxAppIDLength  = 64
)

// kinds are the login kinds a token may carry.
var kinds = map[string]bool{api.KindMiniProgram: true, api.KindWeb: true, api.KindPassword: true}

// Deps are what the handlers work with.
type Deps struct {
	Keys        *tokens.Keyring
	Minter      *tokens.Minter
	Families    *kvstate.Families
	Revocations *kvstate.Revocations
	RefreshTTL  time.Duration
	Log         *slog.Logger
	Now         func() time.Time // nil: time.Now
}

// Service implements the session endpoints.
type Service struct {
	Deps
}

// New returns the session endpoints over deps.
func New(deps Deps) *Service {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{Deps: deps}
}

// AddEndpoints registers the endpoints on svc, running them on pool.
func (s *Service) AddEndpoints(svc micro.Service, pool *natsrpc.Pool) error {
	endpoints := []struct {
		name, subject string
		h             micro.Handler
	}{
		{"issue", session.SubjectIssue, natsrpc.Endpoint(pool, s.Issue)},
		{"refresh", session.SubjectRefresh, natsrpc.Endpoint(pool, s.Refresh)},
		{"revoke", session.SubjectRevoke, natsrpc.Endpoint(pool, s.Revoke)},
		{"jwks", session.SubjectJWKS, natsrpc.Endpoint(pool, s.JWKS)},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, e.h, micro.WithEndpointSubject(e.subject)); err != nil {
			return fmt.Errorf("add endpoint %s: %w", e.name, err)
		}
	}
	return nil
}

// Issue starts a new refresh family for a user who has just logged in.
func (s *Service) Issue(ctx context.Context, req session.IssueRequest) (session.Tokens, error) {
	switch {
	case req.UserID == "":
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "user_id is required")
	case len(req.UserID) > maxUserIDLength:
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "user_id is too long")
	case !kinds[req.Kind]:
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "kind must be one of miniprogram, web, password")
	case len(req.AppID) > maxAppIDLength:
		return session.Tokens{}, api.Errorf(api.CodeInvalidRequest, "appid is too long")
	}
	now := s.Now()
	familyID := tokens.NewFamilyID()
	access, err := s.Minter.Mint(now, accessClaims(req.UserID, req.Kind, req.AppID, familyID))
	if err != nil {
		return session.Tokens{}, err
	}
	refresh, err := tokens.NewRefreshToken(familyID)
	if err != nil {
		return session.Tokens{}, err
	}
	fam := kvstate.Family{
		UserID:    req.UserID,
		Kind:      req.Kind,
		AppID:     req.AppID,
		TokenHash: tokens.HashRefreshToken(refresh),
		CreatedAt: now.UTC(),
		ExpiresAt: now.Add(s.RefreshTTL).UTC(),
	}
	if err := s.Families.Create(ctx, familyID, fam); err != nil {
		return session.Tokens{}, fmt.Errorf("issue: %w", err)
	}
	s.Log.Debug("issued tokens", "request_id", natsrpc.RequestID(ctx), "user_id", req.UserID, "appid", req.AppID, "sid", familyID)
	return s.tokens(access, refresh, fam.ExpiresAt, now), nil
}

// Refresh spends a refresh token: the family moves to a new token by
// compare-and-set, so of concurrent refreshes with one token exactly one wins.
func (s *Service) Refresh(ctx context.Context, req session.RefreshRequest) (session.Tokens, error) {
	familyID, err := tokens.ParseRefreshToken(req.RefreshToken)
	if err != nil {
		return session.Tokens{}, errInvalidRefresh
	}
	fam, rev, err := s.Families.Get(ctx, familyID)
	if errors.Is(err, kvstate.ErrNotFound) {
		return session.Tokens{}, errInvalidRefresh
	}
	if err != nil {
		return session.Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	now := s.Now()
	hash := tokens.HashRefreshToken(req.RefreshToken)
	if !tokens.HashesEqual(hash, fam.TokenHash) {
		return session.Tokens{}, s.mismatch(ctx, familyID, fam, hash, now)
	}
	switch {
	case fam.RevokedAt != nil:
		return session.Tokens{}, api.Errorf(api.CodeTokenRevoked, "refresh token revoked")
	case !now.Before(fam.ExpiresAt):
		return session.Tokens{}, api.Errorf(api.CodeTokenExpired, "refresh token expired")
	}

	// Sign first: once the family moves on, the old token is gone, so nothing
	// may fail after the update.
	access, err := s.Minter.Mint(now, accessClaims(fam.UserID, fam.Kind, fam.AppID, familyID))
	if err != nil {
		return session.Tokens{}, err
	}
	refresh, err := tokens.NewRefreshToken(familyID)
	if err != nil {
		return session.Tokens{}, err
	}
	next := fam
	next.SpentHashes = append(slices.Clone(fam.SpentHashes), fam.TokenHash)
	if len(next.SpentHashes) > maxSpent {
		next.SpentHashes = next.SpentHashes[len(next.SpentHashes)-maxSpent:]
	}
	next.TokenHash = tokens.HashRefreshToken(refresh)
	next.Generation = fam.Generation + 1
	err = s.Families.Update(ctx, familyID, next, rev)
	if errors.Is(err, kvstate.ErrConflict) {
		// A concurrent refresh with the same token won. That is a double
		// submit or a race with a thief; either way this token is spent now.
		// The family stays alive: a later replay of this token revokes it.
		s.Log.Info("refresh token used concurrently", "request_id", natsrpc.RequestID(ctx), "user_id", fam.UserID, "sid", familyID)
		return session.Tokens{}, errReused
	}
	if err != nil {
		return session.Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	return s.tokens(access, refresh, fam.ExpiresAt, now), nil
}

var (
	errInvalidRefresh = api.Errorf(api.CodeTokenInvalid, "refresh token invalid")
	errReused         = api.Errorf(api.CodeRefreshTokenReused, "refresh token already used; sign in again")
)

// mismatch answers a token that is not the family's current one. A spent
// token of the family means it was copied: the whole family is revoked, so
// whoever holds the newest token loses it too. Anything else is just invalid.
func (s *Service) mismatch(ctx context.Context, familyID string, fam kvstate.Family, hash string, now time.Time) error {
	spent := false
	for _, h := range fam.SpentHashes {
		if tokens.HashesEqual(hash, h) {
			spent = true
		}
	}
	if !spent {
		return errInvalidRefresh
	}
	if fam.RevokedAt == nil && now.Before(fam.ExpiresAt) {
		if err := s.Families.Revoke(ctx, familyID, now.UTC()); err != nil {
			return fmt.Errorf("revoke reused family: %w", err)
		}
		s.Log.Warn("refresh token reused; session revoked", "request_id", natsrpc.RequestID(ctx), "user_id", fam.UserID, "sid", familyID)
	}
	return errReused
}

// Revoke ends an access token by its jti and, if given, its refresh family.
func (s *Service) Revoke(ctx context.Context, req session.RevokeRequest) (session.RevokeResponse, error) {
	if req.JTI == "" && req.SessionID == "" {
		return session.RevokeResponse{}, api.Errorf(api.CodeInvalidRequest, "jti or sid is required")
	}
	// Both are ours and UUIDs; checking the form also keeps them valid KV keys.
	if req.JTI != "" {
		if !canonicalUUID(req.JTI) {
			return session.RevokeResponse{}, api.Errorf(api.CodeInvalidRequest, "jti is malformed")
		}
		if req.ExpiresAt <= 0 {
			return session.RevokeResponse{}, api.Errorf(api.CodeInvalidRequest, "exp is required with jti")
		}
	}
	if req.SessionID != "" && !canonicalUUID(req.SessionID) {
		return session.RevokeResponse{}, api.Errorf(api.CodeInvalidRequest, "sid is malformed")
	}
	if req.JTI != "" {
		if err := s.Revocations.Revoke(ctx, req.JTI, time.Unix(req.ExpiresAt, 0)); err != nil {
			return session.RevokeResponse{}, err
		}
	}
	if req.SessionID != "" {
		if err := s.Families.Revoke(ctx, req.SessionID, s.Now().UTC()); err != nil {
			return session.RevokeResponse{}, err
		}
	}
	s.Log.Debug("revoked", "request_id", natsrpc.RequestID(ctx), "sid", req.SessionID)
	return session.RevokeResponse{}, nil
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

func canonicalUUID(s string) bool {
	id, err := uuid.Parse(s)
	return err == nil && id.String() == s
}
