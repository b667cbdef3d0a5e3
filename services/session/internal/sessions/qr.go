package sessions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/natsrpc"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// Random bytes in a ticket (also WeChat's state, and the KV key) and in a
// poll token (the browser's secret).
const (
	ticketBytes    = 16
	pollTokenBytes = 32
	// sceneBytes: the secret half of an official-account ticket's scene
	// (session.OAScene), which only WeChat's pushes carry.
	sceneBytes = 16
)

// Limits on what callers hand us.
const (
	maxAppNameLength = 64
	maxReasonLength  = 200
	// maxBindTokenLength bounds what is stored; identity's tokens are 43
	// characters and it refuses any longer than 128.
	maxBindTokenLength = 128
	// The WeChat nickname and avatar of a not_bound ticket: identity keeps
	// nicknames to 64 runes (256 bytes) and URLs to 1024 bytes.
	maxNicknameBytes  = 256
	maxAvatarURLBytes = 1024
)

// completeAttempts bounds the compare-and-set loop of QRComplete. Only a
// completion changes a pending ticket, so the second attempt already sees
// the winner's status; the bound is a guard, not a tuning knob.
const completeAttempts = 4

var (
	errTicketNotFound = api.Errorf(api.CodeQRTicketNotFound, "QR ticket not found")
	errTicketExpired  = api.Errorf(api.CodeQRTicketExpired, "QR ticket expired")
	// errQRFull sheds new QR logins while the ticket bucket is full
	// (WXLOGIN_QR_MAX_BYTES); the tickets in it keep working.
	errQRFull = api.Errorf(api.CodeServiceUnavailable, "too many QR logins are in progress; try again shortly")
)

// QRCreate starts a website login: a pending ticket for a web app; or,
// with kind officialaccount, a follow-to-log-in ticket of an official
// account, with the scene for its QR code.
func (s *Service) QRCreate(ctx context.Context, req session.QRCreateRequest) (session.QRTicket, error) {
	if len(req.App) > maxAppNameLength {
		return session.QRTicket{}, api.Errorf(api.CodeInvalidRequest, "app is too long")
	}
	kind, appKind, what, configure := api.KindWeb, apps.KindWeb, "website app", "WXLOGIN_WEB_APPID or a web app"
	switch req.Kind {
	case "", api.KindWeb:
	case api.KindOfficialAccount:
		kind, appKind, what, configure = api.KindOfficialAccount, apps.KindOfficialAccount, "official account",
			"WXLOGIN_OA_APPID or an officialaccount app"
	default:
		return session.QRTicket{}, api.Errorf(api.CodeInvalidRequest, "unknown QR login kind")
	}
	app, err := s.loginApp(req.App, appKind, what, configure)
	if err != nil {
		return session.QRTicket{}, err
	}
	// Creation is unauthenticated: a flood stops at the bucket's cap.
	if err := s.room(ctx, s.Tickets.Room, "QR ticket", errQRFull); err != nil {
		return session.QRTicket{}, err
	}
	ticket, err := tokens.RandomString(ticketBytes)
	if err != nil {
		return session.QRTicket{}, fmt.Errorf("qr ticket randomness: %w", err)
	}
	poll, err := tokens.RandomString(pollTokenBytes)
	if err != nil {
		return session.QRTicket{}, fmt.Errorf("qr poll token randomness: %w", err)
	}
	now := s.Now()
	rec := session.QRRecord{
		Status:        session.QRPending,
		App:           app.Name,
		AppID:         app.AppID,
		PollTokenHash: tokens.HashToken(poll),
		CreatedAt:     now.UTC(),
		ExpiresAt:     now.Add(s.QRTTL).UTC(),
	}
	scene := ""
	if kind == api.KindOfficialAccount {
		secret, err := tokens.RandomString(sceneBytes)
		if err != nil {
			return session.QRTicket{}, fmt.Errorf("qr scene randomness: %w", err)
		}
		rec.Kind, rec.SceneHash, scene = kind, tokens.HashToken(secret), session.OAScene(ticket, secret)
	}
	if err := s.Tickets.Create(ctx, ticket, rec); err != nil {
		return session.QRTicket{}, err // ErrConflict needs a 128-bit collision
	}
	// Never the ticket: it is WeChat's state parameter.
	s.Log.Info("qr ticket created", "request_id", natsrpc.RequestID(ctx), "appid", app.AppID, "kind", kind)
	return session.QRTicket{Ticket: ticket, PollToken: poll, AppID: app.AppID, ExpiresIn: int64(s.QRTTL / time.Second), Scene: scene}, nil
}

// sceneMatches reports whether a completion may complete rec: a website
// ticket by its callback (no scene), an official-account ticket only by a
// push naming its scene (whose secret only WeChat has).
func sceneMatches(rec session.QRRecord, req session.QRCompleteRequest) bool {
	if rec.SceneHash == "" || req.Scene == "" {
		return rec.SceneHash == "" && req.Scene == ""
	}
	ticket, secret, ok := session.ParseOAScene(req.Scene)
	return ok && ticket == req.Ticket && validRandom(secret, sceneBytes) &&
		tokens.HashesEqual(tokens.HashToken(secret), rec.SceneHash)
}

// loginApp is the app a new login names ("" = the kind's default), or an
// invalid_request saying which variable configures one.
func (s *Service) loginApp(name, kind, what, configure string) (apps.App, error) {
	app, ok := s.Apps.Lookup(name, kind)
	switch {
	case ok:
		return app, nil
	case name == "":
		return apps.App{}, api.Errorf(api.CodeInvalidRequest, "no %s is configured (%s in WXLOGIN_APPS_FILE)", what, configure)
	default:
		return apps.App{}, api.Errorf(api.CodeInvalidRequest, "unknown %s %q", what, name)
	}
}

// room sheds a new login with full (503) while check says its bucket is
// full (kvstate.ErrFull); the logins in it keep working.
func (s *Service) room(ctx context.Context, check func(context.Context) error, what string, full error) error {
	err := check(ctx)
	if errors.Is(err, kvstate.ErrFull) {
		s.Log.Warn(what+" bucket full; refusing new logins", "request_id", natsrpc.RequestID(ctx))
		return full
	}
	return err
}

// QRComplete records the callback's outcome under a pending ticket, once:
// compare-and-set from pending, so a second callback or a lost race answers
// the stored status and changes nothing. The outcome is confirmed (a user),
// denied, or not_bound (a bind token for the poller; the WeChat user has no
// account yet).
func (s *Service) QRComplete(ctx context.Context, req session.QRCompleteRequest) (session.QRStatus, error) {
	if !validRandom(req.Ticket, ticketBytes) {
		return session.QRStatus{}, errTicketNotFound
	}
	reason := req.Reason
	bind := req.BindToken != ""
	switch {
	case bind && (req.Denied || req.User != nil):
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "a not_bound ticket has a bind token only: no user, not denied")
	case bind && len(req.BindToken) > maxBindTokenLength:
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "bind_token is too long")
	case !bind && (req.Nickname != "" || req.AvatarURL != ""):
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "nickname and avatar_url go with a bind token only")
	case len(req.Nickname) > maxNicknameBytes || len(req.AvatarURL) > maxAvatarURLBytes:
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "nickname or avatar_url is too long")
	case req.Denied && req.User != nil:
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "a denied ticket has no user")
	case req.Denied && len(reason) > maxReasonLength:
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "reason is too long")
	case req.Denied && reason == "":
		reason = "denied"
	case !req.Denied && !bind && (req.User == nil || !tokens.ValidUserID(req.User.ID)):
		return session.QRStatus{}, api.Errorf(api.CodeInvalidRequest, "user with an id is required unless denied or not bound")
	}
	for range completeAttempts {
		rec, rev, err := s.Tickets.Get(ctx, req.Ticket)
		if errors.Is(err, kvstate.ErrNotFound) {
			return session.QRStatus{}, errTicketNotFound
		}
		if err != nil {
			return session.QRStatus{}, err
		}
		if !sceneMatches(rec, req) {
			return session.QRStatus{}, errTicketNotFound
		}
		if !s.Now().Before(rec.ExpiresAt) {
			return session.QRStatus{}, errTicketExpired
		}
		if rec.Status != session.QRPending {
			return session.QRStatus{Status: rec.Status}, nil
		}
		next := rec
		switch {
		case bind:
			next.Status, next.BindToken = session.QRNotBound, req.BindToken
			next.Nickname, next.AvatarURL = req.Nickname, req.AvatarURL
		case req.Denied:
			next.Status, next.Reason = session.QRDenied, reason
		default:
			next.Status, next.User, next.IsNewUser = session.QRConfirmed, req.User, req.IsNewUser
		}
		err = s.Tickets.Update(ctx, req.Ticket, next, rev)
		if errors.Is(err, kvstate.ErrConflict) {
			continue // completed (or consumed) meanwhile: answer what is stored
		}
		if err != nil {
			return session.QRStatus{}, err
		}
		userID := ""
		if next.User != nil {
			userID = next.User.ID
		}
		s.Log.Info("qr ticket completed", "request_id", natsrpc.RequestID(ctx), "status", next.Status, "user_id", userID,
			"appid", rec.AppID, "reason", next.Reason)
		return session.QRStatus{Status: next.Status}, nil
	}
	return session.QRStatus{}, fmt.Errorf("complete qr ticket: %w after %d attempts", kvstate.ErrConflict, completeAttempts)
}

// QRConsume hands out the tokens of a confirmed ticket exactly once: the
// ticket is deleted by compare-and-set, and only the deleter gets tokens.
// Anything the poller may not see (wrong poll token, not confirmed, already
// consumed) is "not found", so the answer reveals nothing about the ticket.
func (s *Service) QRConsume(ctx context.Context, req session.QRConsumeRequest) (session.QRConsumeResult, error) {
	if !validRandom(req.Ticket, ticketBytes) || !validRandom(req.PollToken, pollTokenBytes) {
		return session.QRConsumeResult{}, errTicketNotFound
	}
	rec, rev, err := s.Tickets.Get(ctx, req.Ticket)
	if errors.Is(err, kvstate.ErrNotFound) {
		return session.QRConsumeResult{}, errTicketNotFound
	}
	if err != nil {
		return session.QRConsumeResult{}, err
	}
	if !tokens.HashesEqual(tokens.HashToken(req.PollToken), rec.PollTokenHash) {
		return session.QRConsumeResult{}, errTicketNotFound
	}
	if !s.Now().Before(rec.ExpiresAt) {
		return session.QRConsumeResult{}, errTicketExpired
	}
	if rec.Status != session.QRConfirmed {
		return session.QRConsumeResult{}, errTicketNotFound
	}
	if rec.User == nil || !tokens.ValidUserID(rec.User.ID) {
		return session.QRConsumeResult{}, errors.New("consume qr ticket: confirmed record without a valid user")
	}
	kind := api.KindWeb
	if rec.Kind != "" {
		kind = rec.Kind // a follow-to-log-in ticket: officialaccount
	}
	tok, err := s.issueOnce(ctx, *rec.User, kind, rec.AppID, rec.CreatedAt, "qr",
		func(ctx context.Context) error { return s.Tickets.Consume(ctx, req.Ticket, rev) })
	if errors.Is(err, kvstate.ErrConflict) {
		return session.QRConsumeResult{}, errTicketNotFound // a concurrent poll won
	}
	if err != nil {
		return session.QRConsumeResult{}, err
	}
	return session.QRConsumeResult{Tokens: tok, User: *rec.User, IsNewUser: rec.IsNewUser}, nil
}

// issueOnce hands out the tokens of a login recorded in KV (a confirmed QR
// ticket, an in-WeChat login code) exactly once: consume deletes the record
// by compare-and-set, and only its winner gets tokens (the others get
// kvstate.ErrConflict). A user revoked (disabled) after the login began gets
// none, and the record goes.
func (s *Service) issueOnce(ctx context.Context, user api.User, kind, appID string, began time.Time, via string,
	consume func(context.Context) error) (session.Tokens, error) {
	now := s.Now()
	if at, ok := s.UserRevocations.Cutoff(user.ID, now); ok && began.Unix() <= at {
		if err := consume(ctx); err != nil && !errors.Is(err, kvstate.ErrConflict) {
			s.Log.Warn("drop login of revoked user", "request_id", natsrpc.RequestID(ctx), "user_id", user.ID, "via", via, "error", err)
		}
		return session.Tokens{}, api.Errorf(api.CodeTokenRevoked, "the account's sessions were revoked during this login")
	}
	// Sign before consuming: after the delete nothing but storing the family
	// may fail.
	g, err := s.newGrant(user.ID, kind, appID, now)
	if err != nil {
		return session.Tokens{}, err
	}
	if err := consume(ctx); err != nil {
		return session.Tokens{}, err
	}
	tok, err := s.store(ctx, g, now)
	if err != nil {
		// The record is spent; the browser has to start over.
		return session.Tokens{}, fmt.Errorf("%s login consumed but no session stored: %w", via, err)
	}
	s.Metrics.TokensIssued(kind)
	s.Log.Info("tokens issued", "request_id", natsrpc.RequestID(ctx), "user_id", user.ID, "sid", g.familyID,
		"kind", kind, "appid", appID, "via", via)
	return tok, nil
}

// validRandom reports whether s is base64url (no padding) of exactly n bytes,
// the form of our tickets and poll tokens. Anything else cannot name a
// ticket, and is never used as a KV key.
func validRandom(s string, n int) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}
