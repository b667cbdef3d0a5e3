package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Sentinels of the account operations.
var (
	ErrUsernameTaken = errors.New("username taken")
	// ErrIdentityBound: the WeChat identity (or its unionid) belongs to
	// another account.
	ErrIdentityBound = errors.New("wechat identity bound to another account")
	// ErrLastLoginMethod: removing the identity would leave the account
	// without any way to log in.
	ErrLastLoginMethod = errors.New("last login method")
)

// event is an outbox event to write for a user (and an identity).
type event struct {
	typ, subject string
	kind         string // the login kind of a logged_in event
}

var (
	evCreated = event{typ: identity.EventUserCreated, subject: identity.SubjectUserCreated}
	evBound   = event{typ: identity.EventUserBound, subject: identity.SubjectUserBound}
	evUpdated = event{typ: identity.EventUserUpdated, subject: identity.SubjectUserUpdated}
)

func newEventID() string { return uuid.NewString() }

func evLoggedIn(kind string) event {
	return event{typ: identity.EventUserLoggedIn, subject: identity.SubjectUserLoggedIn, kind: kind}
}

// qEvents writes events about user $1 (and identity $2, or NULL) as the
// transaction sees them now, in the order given.
const qEvents = `
INSERT INTO outbox (id, subject, payload)
SELECT e.id, e.subject, wxlogin_user_event(e.id, e.type, u, i) ||
	CASE WHEN e.kind = '' THEN '{}'::jsonb ELSE jsonb_build_object('kind', e.kind) END
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS e (id, subject, type, kind, ord)
JOIN users AS u ON u.id = $1::uuid
LEFT JOIN identities AS i ON i.id = $2::uuid
ORDER BY e.ord`

func writeEvents(ctx context.Context, tx *sqlx.Tx, userID, identityID string, events ...event) error {
	ids, subjects, types, kinds := make([]string, len(events)), make([]string, len(events)), make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		ids[i], subjects[i], types[i], kinds[i] = newEventID(), e.subject, e.typ, e.kind
	}
	res, err := tx.ExecContext(ctx, qEvents, userID, nullIfEmpty(identityID),
		pq.Array(ids), pq.Array(subjects), pq.Array(types), pq.Array(kinds))
	if err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(events)) {
		return fmt.Errorf("write events: %d of %d written", n, len(events))
	}
	return nil
}

// inTx runs fn in a transaction, then before (if not nil), then commits.
// before is the last chance to refuse: it spends what must be spent once
// (a bind token) only when everything else has succeeded.
func (s *Store) inTx(ctx context.Context, before func(context.Context) error, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if before != nil {
		if err := before(ctx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// NewAccount is a username/password account to create, optionally with a
// WeChat identity (whose profile the user starts with).
type NewAccount struct {
	Username     string
	PasswordHash string
	Identity     *WechatLogin
	// BeforeCommit, if set, runs last inside the transaction; an error
	// rolls everything back and is returned as is.
	BeforeCommit func(context.Context) error
}

const qInsertAccount = `
INSERT INTO users AS u (username, password_hash, unionid, nickname, avatar_url, gender, language, city, province, country, last_login_at)
VALUES ($1, $2, $3::text, COALESCE($4::text, ''), COALESCE($5::text, ''), COALESCE($6::smallint, 0),
	COALESCE($7::text, ''), COALESCE($8::text, ''), COALESCE($9::text, ''), COALESCE($10::text, ''), now())
RETURNING `

const qInsertIdentity = `
INSERT INTO identities (user_id, kind, appid, openid, unionid, session_key)
VALUES ($1, $2, $3, $4, $5::text, $6::text)
ON CONFLICT (appid, openid) DO NOTHING
RETURNING id`

// CreateAccount creates the account and its identity in one transaction,
// with the events user.created, user.bound (with an identity) and
// user.logged_in (kind password). ErrUsernameTaken, ErrIdentityBound.
func (s *Store) CreateAccount(ctx context.Context, in NewAccount) (User, error) {
	var u User
	err := s.inTx(ctx, in.BeforeCommit, func(tx *sqlx.Tx) error {
		var unionid any
		var profile *identity.Profile
		if in.Identity != nil {
			unionid, profile = nullIfEmpty(in.Identity.UnionID), in.Identity.Profile
		}
		args := append([]any{in.Username, in.PasswordHash, unionid}, profileArgs(profile)...)
		err := tx.QueryRowxContext(ctx, qInsertAccount+selectUser("u."), args...).Scan(u.dest()...)
		switch {
		case isUniqueViolation(err, "users_username_key"):
			return ErrUsernameTaken
		case isUniqueViolation(err, "users_unionid_key"):
			return ErrIdentityBound
		case err != nil:
			return fmt.Errorf("insert user: %w", err)
		}
		if in.Identity == nil {
			return writeEvents(ctx, tx, u.ID, "", evCreated, evLoggedIn(api.KindPassword))
		}
		var identityID string
		id := in.Identity
		err = tx.QueryRowxContext(ctx, qInsertIdentity, u.ID, id.Kind, id.AppID, id.OpenID,
			nullIfEmpty(id.UnionID), nullIfEmpty(id.SessionKey)).Scan(&identityID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrIdentityBound
		case err != nil:
			return fmt.Errorf("insert identity: %w", err)
		}
		return writeEvents(ctx, tx, u.ID, identityID, evCreated, evBound, evLoggedIn(api.KindPassword))
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// UsernameExists reports whether username is taken.
func (s *Store) UsernameExists(ctx context.Context, username string) (bool, error) {
	var exists bool
	if err := s.db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)`, username); err != nil {
		return false, fmt.Errorf("username exists: %w", err)
	}
	return exists, nil
}

// Credentials are what a password check needs of an account. PasswordHash
// is "" for an account without a password.
type Credentials struct {
	UserID       string
	PasswordHash string
	Disabled     bool
}

const qCredentials = `SELECT id, COALESCE(password_hash, ''), disabled_at IS NOT NULL FROM users WHERE username = $1`

// Credentials returns the credentials of username; ErrNotFound if none.
func (s *Store) Credentials(ctx context.Context, username string) (Credentials, error) {
	var c Credentials
	err := s.credentials.QueryRowContext(ctx, username).Scan(&c.UserID, &c.PasswordHash, &c.Disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return Credentials{}, ErrNotFound
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	return c, nil
}

// RecordPasswordLogin records a password login of the user (last_login_at
// and the user.logged_in event); ErrUserDisabled, ErrNotFound.
func (s *Store) RecordPasswordLogin(ctx context.Context, userID string) (User, error) {
	var u User
	err := s.inTx(ctx, nil, func(tx *sqlx.Tx) error {
		err := tx.QueryRowxContext(ctx, `UPDATE users AS u SET last_login_at = now()
			WHERE u.id = $1 AND u.disabled_at IS NULL RETURNING `+selectUser("u."), userID).Scan(u.dest()...)
		if errors.Is(err, sql.ErrNoRows) {
			return s.userState(ctx, tx, userID)
		}
		if err != nil {
			return fmt.Errorf("record login: %w", err)
		}
		return writeEvents(ctx, tx, u.ID, "", evLoggedIn(api.KindPassword))
	})
	return u, err
}

// BindResult is a committed bind.
type BindResult struct {
	User       User
	IdentityID string
	// Bound is false when the identity already was the user's.
	Bound bool
}

// qBindIdentity attaches the identity to user $1, or refreshes it if it is
// already the user's; another user's identity comes back as no row.
const qBindIdentity = `
INSERT INTO identities AS i (user_id, kind, appid, openid, unionid, session_key)
VALUES ($1, $2, $3, $4, $5::text, $6::text)
ON CONFLICT (appid, openid) DO UPDATE SET
	session_key = COALESCE(EXCLUDED.session_key, i.session_key),
	unionid = COALESCE(EXCLUDED.unionid, i.unionid),
	updated_at = now()
WHERE i.user_id = EXCLUDED.user_id
RETURNING id, (xmax = 0)`

// qBindUser gives user $1 the identity's unionid $2 if it has none, fills
// its empty profile fields from the identity's ($3-$9), and records the
// login.
var qBindUser = `
UPDATE users AS u SET
	unionid    = COALESCE(u.unionid, $2::text),
	nickname   = CASE WHEN u.nickname = '' THEN COALESCE($3::text, '') ELSE u.nickname END,
	avatar_url = CASE WHEN u.avatar_url = '' THEN COALESCE($4::text, '') ELSE u.avatar_url END,
	gender     = CASE WHEN u.gender = 0 THEN COALESCE($5::smallint, 0) ELSE u.gender END,
	language   = CASE WHEN u.language = '' THEN COALESCE($6::text, '') ELSE u.language END,
	city       = CASE WHEN u.city = '' THEN COALESCE($7::text, '') ELSE u.city END,
	province   = CASE WHEN u.province = '' THEN COALESCE($8::text, '') ELSE u.province END,
	country    = CASE WHEN u.country = '' THEN COALESCE($9::text, '') ELSE u.country END,
	updated_at = now(),
	last_login_at = now()
WHERE u.id = $1
RETURNING ` + selectUser("u.")

// BindIdentity attaches a WeChat identity to an existing account and
// records the login (events user.bound when it is new to the account, and
// user.logged_in kind password). Binding an identity the user already has
// succeeds (Bound false). ErrIdentityBound when the identity or its unionid
// belongs to another user; ErrNotFound, ErrUserDisabled.
func (s *Store) BindIdentity(ctx context.Context, userID string, in WechatLogin, beforeCommit func(context.Context) error) (BindResult, error) {
	if !api.ValidID(userID) {
		return BindResult{}, ErrNotFound
	}
	var res BindResult
	err := s.inTx(ctx, beforeCommit, func(tx *sqlx.Tx) error {
		// The user row first, locked: the order every login path takes.
		var disabled bool
		err := tx.QueryRowxContext(ctx, `SELECT disabled_at IS NOT NULL FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&disabled)
		if err := activeUser(err, disabled, "lock user"); err != nil {
			return err
		}
		if in.UnionID != "" {
			// The person's unionid on another account: their other apps log
			// in there, so this one must not come here.
			var elsewhere bool
			if err := tx.GetContext(ctx, &elsewhere, `SELECT EXISTS (SELECT 1 FROM users WHERE unionid = $1 AND id <> $2)`,
				in.UnionID, userID); err != nil {
				return fmt.Errorf("unionid owner: %w", err)
			}
			if elsewhere {
				return ErrIdentityBound
			}
		}
		err = tx.QueryRowxContext(ctx, qBindIdentity, userID, in.Kind, in.AppID, in.OpenID,
			nullIfEmpty(in.UnionID), nullIfEmpty(in.SessionKey)).Scan(&res.IdentityID, &res.Bound)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrIdentityBound
		case err != nil:
			return fmt.Errorf("bind identity: %w", err)
		}
		args := append([]any{userID, nullIfEmpty(in.UnionID)}, profileArgs(in.Profile)...)
		err = tx.QueryRowxContext(ctx, qBindUser, args...).Scan(res.User.dest()...)
		switch {
		case isUniqueViolation(err, "users_unionid_key"):
			return ErrIdentityBound // taken since the check above
		case err != nil:
			return fmt.Errorf("bind user: %w", err)
		}
		events := []event{evLoggedIn(api.KindPassword)}
		if res.Bound {
			events = []event{evBound, evLoggedIn(api.KindPassword)}
		}
		return writeEvents(ctx, tx, userID, res.IdentityID, events...)
	})
	if err != nil {
		return BindResult{}, err
	}
	return res, nil
}

// userState explains why a statement on user id found no row: ErrNotFound
// or ErrUserDisabled; nil if neither (the caller then has a bug).
func (s *Store) userState(ctx context.Context, q sqlx.QueryerContext, id string) error {
	var disabled bool
	err := sqlx.GetContext(ctx, q, &disabled, `SELECT disabled_at IS NOT NULL FROM users WHERE id = $1`, id)
	if err := activeUser(err, disabled, "user state"); err != nil {
		return err
	}
	return fmt.Errorf("user %s: no row changed", id)
}

// activeUser translates the read of a user's disabled flag: ErrNotFound
// for no row, ErrUserDisabled for a disabled user, nil for an active one.
func activeUser(err error, disabled bool, what string) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case disabled:
		return ErrUserDisabled
	}
	return nil
}
