// Package store is identity's Postgres storage: users, their WeChat
// identities and the event outbox. It returns domain sentinels (ErrNotFound,
// ErrUserDisabled) wrapped with %w; callers map them to contract codes.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Sentinels of the store.
var (
	ErrNotFound     = errors.New("not found")
	ErrUserDisabled = errors.New("user is disabled")
	// ErrNotBound: a WeChat login with NoCreate found no account to log in to.
	ErrNotBound = errors.New("wechat identity not bound to an account")
)

// User is a users row without its secrets (no password hash).
type User struct {
	ID          string
	Username    string
	Nickname    string
	AvatarURL   string
	Gender      int
	Language    string
	City        string
	Province    string
	Country     string
	PhoneNumber string
	Email       string
	DateOfBirth *time.Time // a date: only year, month and day count
	Description string
	UnionID     string
	IsAdmin     bool
	DisabledAt  *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastLoginAt *time.Time
	Identities  []api.Identity
}

// Public is the wire view of u.
func (u User) Public() api.User {
	p := api.User{
		ID: u.ID, Username: u.Username, Nickname: u.Nickname, AvatarURL: u.AvatarURL, Gender: u.Gender,
		Language: u.Language, City: u.City, Province: u.Province, Country: u.Country,
		PhoneNumber: u.PhoneNumber, Email: u.Email, Description: u.Description, CreatedAt: u.CreatedAt,
		IsAdmin: u.IsAdmin, DisabledAt: u.DisabledAt, LastLoginAt: u.LastLoginAt,
	}
	if u.DateOfBirth != nil {
		p.DateOfBirth = u.DateOfBirth.Format(time.DateOnly)
	}
	// WeChat's ids of the person are for admins (ForAdmin), not the user's
	// own answers.
	for _, id := range u.Identities {
		id.OpenID, id.UnionID = "", ""
		p.Identities = append(p.Identities, id)
	}
	return p
}

// ForAdmin is Public with the identities' openid and unionid, for admin
// answers.
func (u User) ForAdmin() api.User {
	p := u.Public()
	p.Identities = u.Identities
	return p
}

// userColumns are the users columns User holds, in scan order.
var userColumns = []string{"id", "username", "nickname", "avatar_url", "gender", "language", "city",
	"province", "country", "phone_number", "email", "date_of_birth", "description", "unionid", "is_admin", "disabled_at", "created_at",
	"updated_at", "last_login_at"}

// selectUser lists userColumns qualified by prefix ("u." or "(usr.u)."),
// with a NULL unionid read as "".
func selectUser(prefix string) string {
	cols := make([]string, len(userColumns))
	for i, c := range userColumns {
		cols[i] = prefix + c
		if c == "unionid" {
			cols[i] = "COALESCE(" + prefix + c + ", '')"
		}
	}
	return strings.Join(cols, ", ")
}

func (u *User) dest() []any {
	return []any{&u.ID, &u.Username, &u.Nickname, &u.AvatarURL, &u.Gender, &u.Language, &u.City,
		&u.Province, &u.Country, &u.PhoneNumber, &u.Email, &u.DateOfBirth, &u.Description, &u.UnionID, &u.IsAdmin, &u.DisabledAt,
		&u.CreatedAt, &u.UpdatedAt, &u.LastLoginAt}
}

// Store is safe for concurrent use. Its statements are prepared once: each
// then costs one round trip.
type Store struct {
	db *sqlx.DB

	loginExisting    *sqlx.Stmt
	upsertByUnionID  *sqlx.Stmt
	upsertByUsername *sqlx.Stmt
	linkIdentity     *sqlx.Stmt
	touchByUnionID   *sqlx.Stmt
	userDisabled     *sqlx.Stmt
	credentials      *sqlx.Stmt
	getUser          *sqlx.Stmt
}

// New prepares the store's statements on db.
func New(ctx context.Context, db *sqlx.DB) (*Store, error) {
	s := &Store{db: db}
	for _, p := range []struct {
		stmt  **sqlx.Stmt
		query string
	}{
		{&s.loginExisting, qLoginExisting},
		// One person's unionid is one user: its row is the one to log in to.
		{&s.upsertByUnionID, fmt.Sprintf(qUpsertUser, "(unionid) WHERE unionid IS NOT NULL DO UPDATE SET "+profileSetAt(3))},
		// A row already holding the generated name is never logged in to:
		// names are 48 bits of a hash, so it may be another person's (or a
		// password account's). No row comes back, and firstLogin tells a
		// concurrent first login of this identity from a name that is taken.
		{&s.upsertByUsername, fmt.Sprintf(qUpsertUser, "(username) DO NOTHING")},
		{&s.linkIdentity, qLinkIdentity},
		{&s.touchByUnionID, qTouchByUnionID},
		{&s.credentials, qCredentials},
		{&s.userDisabled, `SELECT disabled_at IS NOT NULL FROM users WHERE id = $1`},
		{&s.getUser, qGetUser},
	} {
		stmt, err := db.PreparexContext(ctx, p.query)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*p.stmt = stmt
	}
	return s, nil
}

// Close releases the prepared statements (not the db).
func (s *Store) Close() error {
	for _, st := range []*sqlx.Stmt{s.loginExisting, s.upsertByUnionID, s.upsertByUsername,
		s.linkIdentity, s.touchByUnionID, s.userDisabled, s.credentials, s.getUser} {
		if st != nil {
			_ = st.Close()
		}
	}
	return nil
}

// Profile parameters $n..$n+6 in the order nickname, avatar_url, gender,
// language, city, province, country; a NULL leaves the stored value alone.
const profileSet = `
	nickname   = COALESCE(%[1]s::text, u.nickname),
	avatar_url = COALESCE(%[2]s::text, u.avatar_url),
	gender     = COALESCE(%[3]s::smallint, u.gender),
	language   = COALESCE(%[4]s::text, u.language),
	city       = COALESCE(%[5]s::text, u.city),
	province   = COALESCE(%[6]s::text, u.province),
	country    = COALESCE(%[7]s::text, u.country),
	updated_at = CASE WHEN num_nonnulls(%[1]s::text, %[2]s::text, %[3]s::smallint, %[4]s::text, %[5]s::text,
		%[6]s::text, %[7]s::text) > 0 THEN now() ELSE u.updated_at END,
	last_login_at = now()`

func profileSetAt(first int) string {
	var ps [7]any
	for i := range ps {
		ps[i] = fmt.Sprintf("$%d", first+i)
	}
	return fmt.Sprintf(profileSet, ps[:]...)
}

func profileArgs(p *identity.Profile) []any {
	if p == nil {
		return make([]any, 7)
	}
	return []any{p.Nickname, p.AvatarURL, p.Gender, p.Language, p.City, p.Province, p.Country}
}

// profileChanged is true when a profile parameter $n..$n+6 (order of
// profileSet) differs from what u holds; NULLs (not sent) never differ.
func profileChanged(first int) string {
	cols := []string{"nickname", "avatar_url", "gender", "language", "city", "province", "country"}
	conds := make([]string, len(cols))
	for i, c := range cols {
		typ := "text"
		if c == "gender" {
			typ = "smallint"
		}
		conds[i] = fmt.Sprintf("$%d::%s <> u.%s", first+i, typ, c)
	}
	return "COALESCE(" + strings.Join(conds, " OR ") + ", false)"
}

// lastLoginGranularity is how stale users.last_login_at (the admin list's
// "last login" and its sort) may be: a returning login writes the users row
// at most this often for it, so a busy user costs one identities row per
// login. identities.last_login_at is exact.
const lastLoginGranularity = "1 hour"

// qLoginExisting is a returning user's whole login in one statement: the
// identity's session_key, unionid and last_login_at, the profile, and the
// body of the logged_in event, which the caller publishes after the
// commit. The users row is written only if the profile or unionid changes,
// or its last_login_at is older than lastLoginGranularity
// (a user gets the unionid WeChat now reports unless it has one or another
// user holds it); then it is locked before the identities row, the order
// the new-user path uses too, so the two cannot deadlock: the identities
// update waits on a count of usr, which runs usr to completion first. A
// login that changes nothing in users reads it without a lock and locks
// only its identities row, one lock, so no order to keep; a disable
// committed after the statement began is not seen, as if this login had
// committed just before it: the window between a login's commit and its
// tokens that any login has, a statement's time wider.
//
// $1 appid, $2 openid, $3 session_key, $4 unionid or NULL, $5-$11 profile,
// $12 event id, $13 event type.
var qLoginExisting = `
WITH cur AS (
	SELECT u AS cu FROM users AS u
	-- A scalar subquery, not a join: the plan is two index lookups whatever
	-- the table statistics say.
	WHERE u.id = (SELECT i.user_id FROM identities AS i WHERE i.appid = $1 AND i.openid = $2)
		AND u.disabled_at IS NULL
), usr AS (
	UPDATE users AS u SET ` + profileSetAt(5) + `,
		unionid = COALESCE(u.unionid,
			(SELECT $4::text WHERE NOT EXISTS (SELECT 1 FROM users AS x WHERE x.unionid = $4::text)))
	WHERE u.id = (SELECT (cu).id FROM cur) AND u.disabled_at IS NULL
		AND (` + profileChanged(5) + ` OR (u.unionid IS NULL AND $4::text IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM users AS x WHERE x.unionid = $4::text))
			OR u.last_login_at IS NULL OR u.last_login_at < now() - interval '` + lastLoginGranularity + `')
	RETURNING u
), ident AS (
	UPDATE identities AS i
	SET session_key = $3, unionid = COALESCE($4::text, i.unionid), updated_at = now(), last_login_at = now()
	WHERE i.appid = $1 AND i.openid = $2 AND i.user_id = (SELECT (cu).id FROM cur)
		AND (SELECT count(*) FROM usr) >= 0
	RETURNING i
)
SELECT ` + selectUser("(COALESCE(usr.u, cur.cu)).") + `, (ident.i).id, (ident.i).last_login_at,
	wxlogin_user_event($12::uuid, $13::text, COALESCE(usr.u, cur.cu), ident.i) || jsonb_build_object('kind', (ident.i).kind)
FROM cur CROSS JOIN ident LEFT JOIN usr ON true`

// qUpsertUser creates the user of a first login; on a conflict it does
// what %[1]s (the conflict target and action) says. xmax = 0 only on a row
// this statement inserted.
//
// $1 username, $2 unionid or NULL, $3-$9 profile.
var qUpsertUser = `
INSERT INTO users AS u (username, unionid, nickname, avatar_url, gender, language, city, province, country, last_login_at)
VALUES ($1, $2::text, COALESCE($3::text, ''), COALESCE($4::text, ''), COALESCE($5::smallint, 0),
	COALESCE($6::text, ''), COALESCE($7::text, ''), COALESCE($8::text, ''), COALESCE($9::text, ''), now())
ON CONFLICT %[1]s
RETURNING ` + selectUser("u.") + `, (u.xmax = 0)`

// qLinkIdentity attaches (appid, openid) to user $1 and writes the events,
// but only if the identity really is that user's: one bound elsewhere
// comes back with its own user_id and no events, and the caller rolls back.
//
// $1 user id, $2 kind, $3 appid, $4 openid, $5 unionid or NULL, $6 session_key,
// $7-$9 created event (id, subject, type), $10-$12 logged_in event, $13 user is new.
const qLinkIdentity = `
WITH ident AS (
	INSERT INTO identities AS i (user_id, kind, appid, openid, unionid, session_key)
	VALUES ($1::uuid, $2, $3, $4, $5::text, $6)
	ON CONFLICT (appid, openid) DO UPDATE SET
		session_key = EXCLUDED.session_key,
		unionid = COALESCE(EXCLUDED.unionid, i.unionid),
		updated_at = now()
	RETURNING i
), event AS (
	INSERT INTO outbox (id, subject, payload)
	SELECT e.id, e.subject, wxlogin_user_event(e.id, e.type, u, ident.i) ||
		CASE WHEN e.ord = 2 THEN jsonb_build_object('kind', (ident.i).kind) ELSE '{}'::jsonb END
	FROM ident
	JOIN users AS u ON u.id = (ident.i).user_id
	CROSS JOIN (VALUES (1, $7::uuid, $8::text, $9::text), (2, $10::uuid, $11::text, $12::text)) AS e (ord, id, subject, type)
	WHERE (ident.i).user_id = $1::uuid AND (e.ord = 2 OR $13::boolean)
	ORDER BY e.ord
)
SELECT (ident.i).id, (ident.i).user_id FROM ident`

// qTouchByUnionID records a login on the user holding unionid $1, for an
// identity of that person new to us. $2-$8 profile.
var qTouchByUnionID = `
UPDATE users AS u SET ` + profileSetAt(2) + `
WHERE u.unionid = $1
RETURNING ` + selectUser("u.")

var qGetUser = `
SELECT ` + selectUser("u.") + `,
	COALESCE((SELECT json_agg(json_build_object('id', i.id, 'provider', i.provider, 'kind', i.kind,
		'appid', i.appid, 'openid', i.openid, 'unionid', COALESCE(i.unionid, ''), 'created_at', i.created_at) ORDER BY i.created_at, i.id)
		FROM identities AS i WHERE i.user_id = u.id), '[]')
FROM users AS u
WHERE u.id = $1`

// WechatLogin is a successful WeChat code exchange. SessionKey is a secret:
// it is written to identities.session_key and nowhere else (websites have
// none: "").
type WechatLogin struct {
	Kind       string
	AppID      string
	OpenID     string
	UnionID    string
	SessionKey string
	Profile    *identity.Profile
	// NoCreate: an identity seen for the first time is linked to the user
	// holding its unionid, if any, and otherwise refused with ErrNotBound
	// (WXLOGIN_AUTO_REGISTER=false).
	NoCreate bool
}

// LoginResult is a committed login.
type LoginResult struct {
	User       User
	IdentityID string
	IsNewUser  bool
	// Outbox: the commit wrote events to the outbox (the relay has work).
	Outbox bool
	// Publish are events the commit did not write to the outbox: the
	// caller publishes them now, at most once (a returning login's
	// user.logged_in).
	Publish []Event
}

// Event is an event body ready to publish; ID is its Nats-Msg-Id.
type Event struct {
	ID      string
	Subject string
	Payload []byte
}

// GeneratedUsername is the username of a WeChat account: "wx_" and the
// first n hex digits of sha256(appid:openid). n is 12 unless that name is
// held by another account (a password account, or another person whose
// hash starts alike): then 20, then all 64.
func GeneratedUsername(appid, openid string, n int) string {
	sum := sha256.Sum256([]byte(appid + ":" + openid))
	return "wx_" + hex.EncodeToString(sum[:])[:n]
}

// usernameLengths are the candidate name lengths, tried in order.
var usernameLengths = []int{12, 20, 64}

// maxLoginAttempts bounds the retries of a login that lost a race (a
// concurrent first login, a unique violation, a deadlock).
const maxLoginAttempts = 8

var (
	errNoIdentity     = errors.New("no such identity")
	errRetry          = errors.New("lost a race; retry")
	errUsernameTaken  = errors.New("generated username held by another account")
	errUsernameClash  = errors.New("generated username clash")
	errUsernameOthers = errors.New("no free generated username")
)

// LoginWechat records a WeChat login in one transaction: the user (created
// on first login, or found by unionid on another app), the identity with
// its session_key, the profile fields that were sent, and the events. It is
// safe under any number of concurrent first logins of one person: one user,
// one identity, and exactly one caller sees IsNewUser.
func (s *Store) LoginWechat(ctx context.Context, in WechatLogin) (LoginResult, error) {
	nameLen, clashes := 0, 0
	var err error
	for range maxLoginAttempts {
		var res LoginResult
		res, err = s.returningLogin(ctx, in)
		if err == nil {
			return res, nil
		}
		if errors.Is(err, errNoIdentity) && in.NoCreate {
			res, err = s.linkToUnionID(ctx, in)
			if err == nil {
				return res, nil
			}
		} else if errors.Is(err, errNoIdentity) {
			res, err = s.firstLogin(ctx, in, usernameLengths[nameLen])
			if err == nil {
				return res, nil
			}
		}
		switch {
		case errors.Is(err, errUsernameClash) && clashes == 0:
			// A unique violation on the name (unionid path) may come from a
			// concurrent first login of the same person, whose identity is
			// committed by now: retry as is once.
			clashes++
		case errors.Is(err, errUsernameTaken) || errors.Is(err, errUsernameClash):
			clashes = 0
			if nameLen++; nameLen == len(usernameLengths) {
				return LoginResult{}, errUsernameOthers
			}
		case errors.Is(err, errRetry) || retryable(err):
		default:
			return LoginResult{}, err
		}
	}
	// %v: the last race is not the caller's to interpret (it would read as a conflict).
	return LoginResult{}, fmt.Errorf("login gave up after %d attempts: %v", maxLoginAttempts, err)
}

// retryable reports the Postgres errors a concurrent login can cause and a
// fresh attempt resolves.
func retryable(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "40001", "40P01": // unique_violation, serialization_failure, deadlock_detected
		return true
	}
	return false
}

func (s *Store) returningLogin(ctx context.Context, in WechatLogin) (LoginResult, error) {
	var res LoginResult
	args := append([]any{in.AppID, in.OpenID, nullIfEmpty(in.SessionKey), nullIfEmpty(in.UnionID)}, profileArgs(in.Profile)...)
	id := uuid.New()
	args = append(args, id, identity.EventUserLoggedIn)
	ev := Event{ID: id.String(), Subject: identity.SubjectUserLoggedIn}
	// LastLoginAt is scanned twice: the identity's, this login, wins.
	err := s.loginExisting.QueryRowContext(ctx, args...).Scan(append(res.User.dest(), &res.IdentityID, &res.User.LastLoginAt, &ev.Payload)...)
	if errors.Is(err, sql.ErrNoRows) {
		return LoginResult{}, errNoIdentity
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("login existing: %w", err)
	}
	res.Publish = []Event{ev}
	return res, nil
}

func (s *Store) firstLogin(ctx context.Context, in WechatLogin, nameLen int) (res LoginResult, err error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return LoginResult{}, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	upsert := s.upsertByUsername
	if in.UnionID != "" {
		upsert = s.upsertByUnionID
	}
	args := append([]any{GeneratedUsername(in.AppID, in.OpenID, nameLen), nullIfEmpty(in.UnionID)}, profileArgs(in.Profile)...)
	err = tx.StmtxContext(ctx, upsert).QueryRowContext(ctx, args...).Scan(append(res.User.dest(), &res.IsNewUser)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return LoginResult{}, s.nameHolder(ctx, tx, in)
	case isUniqueViolation(err, "users_username_key"):
		return LoginResult{}, errUsernameClash
	case err != nil:
		return LoginResult{}, fmt.Errorf("upsert user: %w", err)
	case res.User.DisabledAt != nil:
		return LoginResult{}, ErrUserDisabled
	}

	if err = s.link(ctx, tx, &res, in); err != nil {
		return LoginResult{}, err
	}
	if err = tx.Commit(); err != nil {
		return LoginResult{}, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// link attaches the identity of in to res.User inside tx, with the events.
func (s *Store) link(ctx context.Context, tx *sqlx.Tx, res *LoginResult, in WechatLogin) error {
	var owner string
	err := tx.StmtxContext(ctx, s.linkIdentity).QueryRowContext(ctx,
		res.User.ID, in.Kind, in.AppID, in.OpenID, nullIfEmpty(in.UnionID), nullIfEmpty(in.SessionKey),
		uuid.New(), identity.SubjectUserCreated, identity.EventUserCreated,
		uuid.New(), identity.SubjectUserLoggedIn, identity.EventUserLoggedIn,
		res.IsNewUser,
	).Scan(&res.IdentityID, &owner)
	if err != nil {
		return fmt.Errorf("link identity: %w", err)
	}
	res.Outbox = true
	if owner != res.User.ID {
		// The identity appeared meanwhile and belongs to another account
		// (bound to it): that account's state decides, and rolling back
		// drops any user this attempt created.
		return s.ownerState(ctx, tx, owner)
	}
	return nil
}

// nameHolder is the answer when the generated name is held already. The
// insert waited for any concurrent first login holding it to finish, and
// this statement sees what that committed: if it was this identity's, the
// returning path takes it (errRetry, or ErrUserDisabled); otherwise the name
// is someone else's and never theirs to log in to (errUsernameTaken).
func (s *Store) nameHolder(ctx context.Context, tx *sqlx.Tx, in WechatLogin) error {
	owner, err := s.identityOwner(ctx, tx, in)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errUsernameTaken
	case err != nil:
		return err
	}
	return s.ownerState(ctx, tx, owner)
}

// identityOwner is the user holding the identity of in, or sql.ErrNoRows.
func (s *Store) identityOwner(ctx context.Context, tx *sqlx.Tx, in WechatLogin) (string, error) {
	var owner string
	err := tx.QueryRowContext(ctx, `SELECT user_id FROM identities WHERE appid = $1 AND openid = $2`, in.AppID, in.OpenID).Scan(&owner)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("identity owner: %w", err)
	}
	return owner, err
}

// ownerState is the answer for an identity found to belong to owner after
// all: ErrUserDisabled, or errRetry (the returning-user path will take it).
func (s *Store) ownerState(ctx context.Context, tx *sqlx.Tx, owner string) error {
	var disabled bool
	if err := tx.StmtxContext(ctx, s.userDisabled).QueryRowContext(ctx, owner).Scan(&disabled); err != nil {
		return fmt.Errorf("identity owner: %w", err)
	}
	if disabled {
		return ErrUserDisabled
	}
	return errRetry
}

// linkToUnionID is the first login of an identity when accounts are not
// created on the fly: the user that holds its unionid gets it, else nobody
// (ErrNotBound) and nothing is written.
func (s *Store) linkToUnionID(ctx context.Context, in WechatLogin) (res LoginResult, err error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return LoginResult{}, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if in.UnionID != "" {
		args := append([]any{in.UnionID}, profileArgs(in.Profile)...)
		err = tx.StmtxContext(ctx, s.touchByUnionID).QueryRowContext(ctx, args...).Scan(res.User.dest()...)
		switch {
		case err == nil:
			if res.User.DisabledAt != nil {
				return LoginResult{}, ErrUserDisabled
			}
			if err = s.link(ctx, tx, &res, in); err != nil {
				return LoginResult{}, err
			}
			if err = tx.Commit(); err != nil {
				return LoginResult{}, fmt.Errorf("commit: %w", err)
			}
			return res, nil
		case !errors.Is(err, sql.ErrNoRows):
			return LoginResult{}, fmt.Errorf("user by unionid: %w", err)
		}
	}
	// Nobody to link to, unless the identity itself appeared meanwhile (or
	// belongs to a disabled user, which the returning path skips).
	owner, err := s.identityOwner(ctx, tx, in)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return LoginResult{}, ErrNotBound
	case err != nil:
		return LoginResult{}, err
	}
	return LoginResult{}, s.ownerState(ctx, tx, owner)
}

// GetUser returns the user with its identities, or ErrNotFound (also for an
// id that is not one as we write them, api.ValidID: Postgres would read other
// spellings of a UUID, or fail on them).
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	if !api.ValidID(id) {
		return User{}, ErrNotFound
	}
	var u User
	var idents []byte
	err := s.getUser.QueryRowContext(ctx, id).Scan(append(u.dest(), &idents)...)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	if err := json.Unmarshal(idents, &u.Identities); err != nil {
		return User{}, fmt.Errorf("get user: identities: %w", err)
	}
	return u, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func isUniqueViolation(err error, constraint string) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "23505" && pe.Constraint == constraint
}
