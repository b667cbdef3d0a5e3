package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// Token route limits: a refresh token is well under 512 bytes, and these
// bodies hold nothing else.
const (
	maxRefreshTokenBytes = 512
	maxTokenBodyBytes    = 2 << 10
)

// Revocations is the gateway's local view of revoked access tokens
// (*revocation.Set): live-token routes check it, and logout adds to it.
type Revocations interface {
	middleware.Revocations
	// Add revokes the token's jti and refresh family locally at once.
	Add(claims *jwtverify.Claims)
	// AddUser revokes locally at once every token of the user issued up to
	// at (when the revocation began).
	AddUser(userID string, at time.Time)
}

func (s *server) registerTokens(v1 *gin.RouterGroup) {
	v1.POST("/auth/refresh", s.ipLimit, s.refresh)
	// Signature only: logout accepts a token that is already revoked, so
	// logging out twice (or after an admin disable) is not an error; it can
	// only revoke more.
	v1.POST("/auth/logout", s.signedToken, s.logout)
}

// refresh spends a refresh token for a new pair, answered in the token shape
// of every login (docs/api.md), user included. The user is checked first, so
// nothing is spent when identity cannot answer (503, the token still works)
// and a disabled user's sessions are revoked instead of renewed.
func (s *server) refresh(c *gin.Context) {
	body, err := readBodyMax(c, maxTokenBodyBytes)
	if err != nil {
		s.fail(c, err)
		return
	}
	f, err := parseFields(c.GetHeader("Content-Type"), body, "refresh_token")
	if err != nil {
		s.fail(c, err)
		return
	}
	token := f["refresh_token"]
	if err := required("refresh_token", token, maxRefreshTokenBytes); err != nil {
		s.fail(c, err)
		return
	}
	if err := opaque("refresh_token", token, maxRefreshTokenBytes); err != nil {
		s.fail(c, err)
		return
	}

	// The token's user is unverified here: it only picks whom to look up.
	// Session verifies the token, and its user must then be this one.
	// RefreshTokenUser takes only the canonical spelling of an id ("" for
	// others, which would reach identity's query as some other text).
	userID := session.RefreshTokenUser(token)
	if userID == "" {
		s.fail(c, errRefreshInvalid)
		return
	}
	user, err := s.refreshingUser(c, userID)
	if err != nil {
		s.fail(c, err)
		return
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	tokens, err := s.session.Refresh(ctx, token)
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	if got := session.RefreshTokenUser(tokens.RefreshToken); got != user.ID {
		// Session refreshed another user's family than the one checked: a
		// bug, and the pair must not be handed out under this user.
		s.fail(c, fmt.Errorf("refresh: session answered for user %q, identity checked %q", got, user.ID))
		return
	}
	writeTokens(c, http.StatusOK, tokens, user, false)
}

var errRefreshInvalid = api.Errorf(api.CodeTokenInvalid, "refresh token invalid")

// refreshingUser is the user a refresh is for, if it may go on: a user
// identity does not know is an invalid token; a disabled one is refused and
// its sessions are revoked (again: the revoke at disable time may have
// failed). Any other failure, identity being away above all, stops the
// refresh before anything is spent.
func (s *server) refreshingUser(c *gin.Context, userID string) (api.User, error) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	user, err := s.identity.GetUser(ctx, userID)
	cancel()
	switch {
	case api.CodeOf(err) == api.CodeNotFound:
		return api.User{}, errRefreshInvalid
	case api.CodeOf(err) == api.CodeUserDisabled:
	case err != nil:
		return api.User{}, err
	case user.ID != userID:
		// Identity's bug, but the id came from an unverified token: the
		// client gets the invalid token answer, the log the mismatch.
		s.log.LogAttrs(c.Request.Context(), slog.LevelError, "refresh: identity answered another user than the token names",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", userID), slog.String("answered_id", user.ID))
		return api.User{}, errRefreshInvalid
	case user.DisabledAt == nil:
		return user, nil
	}
	if err := s.revokeUser(c, userID); err != nil {
		// Refused either way; the next attempt revokes again.
		s.log.LogAttrs(c.Request.Context(), slog.LevelWarn, "refresh of a disabled user refused, its sessions not revoked yet",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", userID), slog.Any("error", err))
	} else {
		s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "refresh of a disabled user refused, its sessions revoked",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", userID))
	}
	return api.User{}, api.Errorf(api.CodeUserDisabled, "this account is disabled")
}

// logout revokes the access token and its refresh family. It answers 204
// whether or not they were still in force.
func (s *server) logout(c *gin.Context) {
	claims := middleware.ClaimsOf(c)
	// The body is optional; a refresh_token in it is checked for shape
	// only: the access token's sid already names its family.
	body, err := readBodyMax(c, maxTokenBodyBytes)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(body) > 0 {
		f, err := parseFields(c.GetHeader("Content-Type"), body, "refresh_token")
		if err != nil {
			s.fail(c, err)
			return
		}
		if err := opaque("refresh_token", f["refresh_token"], maxRefreshTokenBytes); err != nil {
			s.fail(c, err)
			return
		}
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	err = s.session.Revoke(ctx, session.RevokeRequest{
		JTI:       claims.ID,
		ExpiresAt: claims.ExpiresAt.Unix(),
		SessionID: claims.SessionID,
		Subject:   claims.Subject,
	})
	cancel()
	if err != nil {
		switch api.CodeOf(err) {
		case api.CodeTokenRevoked, api.CodeTokenInvalid, api.CodeTokenExpired, api.CodeNotFound:
			// Already gone: logging out is idempotent.
			s.log.LogAttrs(c.Request.Context(), slog.LevelDebug, "logout of a session that had already ended",
				slog.String("request_id", middleware.RequestIDOf(c)), slog.String("user_id", claims.Subject))
		default:
			s.fail(c, err)
			return
		}
	}
	if s.revocations != nil {
		s.revocations.Add(claims)
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusNoContent)
}

// revokeUser revokes every session of the user at the session service and,
// whatever it answers, on this gateway (fail closed: the caller only acts
// on a user that is to lose its sessions, e.g. a disabled one).
func (s *server) revokeUser(c *gin.Context, userID string) error {
	rev := session.RevokeRequest{UserID: userID}
	began := time.Now()
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	err := s.session.Revoke(ctx, rev)
	cancel()
	s.revokeHere(rev, began)
	return err
}

// revokeHere makes this gateway refuse at once what rev revoked (a session,
// a user's tokens up to began, taken before the session service was asked,
// so a login after session's own cut-off is never refused here); the other
// gateways learn it through their watch a moment later.
func (s *server) revokeHere(rev session.RevokeRequest, began time.Time) {
	if s.revocations == nil {
		return
	}
	if rev.SessionID != "" {
		s.revocations.Add(&jwtverify.Claims{SessionID: rev.SessionID})
	}
	if rev.UserID != "" {
		s.revocations.AddUser(rev.UserID, began)
	}
}

// readBodyMax reads at most limit bytes of the request body.
func readBodyMax(c *gin.Context, limit int64) ([]byte, error) {
	tooBig := api.Errorf(api.CodeInvalidRequest, "request body must be at most %d bytes", limit)
	if c.Request.ContentLength > limit {
		return nil, tooBig
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooBig
		}
		return nil, api.Errorf(api.CodeInvalidRequest, "could not read the request body")
	}
	return body, nil
}
