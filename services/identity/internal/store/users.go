package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// ProfileUpdate is a change to a user's own data: nil fields stay, "" clears
// (DateOfBirth "" sets it NULL). Values are validated by the caller.
type ProfileUpdate struct {
	identity.Profile
	Email       *string
	DateOfBirth *string // YYYY-MM-DD
	Description *string
	PhoneNumber *string
}

func (p ProfileUpdate) empty() bool {
	q := p.Profile
	for _, v := range []*string{q.Nickname, q.AvatarURL, q.Language, q.City, q.Province, q.Country,
		p.Email, p.DateOfBirth, p.Description, p.PhoneNumber} {
		if v != nil {
			return false
		}
	}
	return q.Gender == nil
}

// qUpdateUser: $1 user id, $2-$8 profile, $9 email, $10 date_of_birth,
// $11 description, $12 phone_number, $13 event id.
var qUpdateUser = `
WITH usr AS (
	UPDATE users AS u SET
		nickname      = COALESCE($2::text, u.nickname),
		avatar_url    = COALESCE($3::text, u.avatar_url),
		gender        = COALESCE($4::smallint, u.gender),
		language      = COALESCE($5::text, u.language),
		city          = COALESCE($6::text, u.city),
		province      = COALESCE($7::text, u.province),
		country       = COALESCE($8::text, u.country),
		email         = COALESCE($9::text, u.email),
		date_of_birth = CASE WHEN $10::text IS NULL THEN u.date_of_birth ELSE NULLIF($10::text, '')::date END,
		description   = COALESCE($11::text, u.description),
		phone_number  = COALESCE($12::text, u.phone_number),
		updated_at    = now()
	WHERE u.id = $1 AND u.disabled_at IS NULL
	RETURNING u
), event AS (
	INSERT INTO outbox (id, subject, payload)
	SELECT $13::uuid, '` + identity.SubjectUserUpdated + `', wxlogin_user_event($13::uuid, '` + identity.EventUserUpdated + `', usr.u, NULL::identities)
	FROM usr
)
SELECT ` + selectUser("(usr.u).") + ` FROM usr`

// UpdateUser applies p to the user and writes user.updated, in one
// statement. Nothing to change: the user as it is, no event.
// ErrNotFound, ErrUserDisabled.
func (s *Store) UpdateUser(ctx context.Context, userID string, p ProfileUpdate) (User, error) {
	if !api.ValidID(userID) {
		return User{}, ErrNotFound
	}
	if p.empty() {
		u, err := s.GetUser(ctx, userID)
		if err == nil && u.DisabledAt != nil {
			return User{}, ErrUserDisabled
		}
		u.Identities = nil
		return u, err
	}
	args := append([]any{userID}, profileArgs(&p.Profile)...)
	args = append(args, p.Email, p.DateOfBirth, p.Description, p.PhoneNumber, newEventID())
	var u User
	err := s.db.QueryRowxContext(ctx, qUpdateUser, args...).Scan(u.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, s.userState(ctx, s.db, userID)
	}
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	return u, nil
}

// ActiveUser returns ErrNotFound or ErrUserDisabled unless the user can act.
func (s *Store) ActiveUser(ctx context.Context, userID string) error {
	if !api.ValidID(userID) {
		return ErrNotFound
	}
	var disabled bool
	err := s.userDisabled.QueryRowContext(ctx, userID).Scan(&disabled)
	return activeUser(err, disabled, "user state")
}

// DeleteIdentity unbinds one of the user's identities. ErrNotFound when it
// is not the user's; ErrLastLoginMethod when the user has no password and
// this is its only identity. The user's unionid goes with its last
// identity that carries it, so the person's next WeChat login is not
// linked back here.
func (s *Store) DeleteIdentity(ctx context.Context, userID, identityID string) error {
	if !api.ValidID(userID) || !api.ValidID(identityID) {
		return ErrNotFound
	}
	return s.inTx(ctx, nil, func(tx *sqlx.Tx) error {
		// Locking the user serializes deletes of its identities: two
		// concurrent ones cannot each leave the other as the last.
		var hasPassword, disabled bool
		err := tx.QueryRowxContext(ctx, `SELECT password_hash IS NOT NULL, disabled_at IS NOT NULL FROM users WHERE id = $1 FOR UPDATE`,
			userID).Scan(&hasPassword, &disabled)
		if err := activeUser(err, disabled, "lock user"); err != nil {
			return err
		}
		var count int
		var owned bool
		if err := tx.QueryRowxContext(ctx, `SELECT count(*), COALESCE(bool_or(id = $2), false) FROM identities WHERE user_id = $1`,
			userID, identityID).Scan(&count, &owned); err != nil {
			return fmt.Errorf("count identities: %w", err)
		}
		switch {
		case !owned:
			return ErrNotFound
		case count == 1 && !hasPassword:
			return ErrLastLoginMethod
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM identities WHERE id = $1 AND user_id = $2`, identityID, userID); err != nil {
			return fmt.Errorf("delete identity: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users AS u SET unionid = NULL, updated_at = now()
			WHERE u.id = $1 AND u.unionid IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM identities AS i WHERE i.user_id = u.id AND i.unionid = u.unionid)`, userID); err != nil {
			return fmt.Errorf("release unionid: %w", err)
		}
		return nil
	})
}

// The search texts the trigram indexes of migration 00005 are built on:
// every searchable field of the table joined by U+0001, which no search
// text contains, so no match straddles two fields.
const (
	usersSearchText      = `(u.username || E'\x01' || u.nickname || E'\x01' || u.email || E'\x01' || u.phone_number || E'\x01' || COALESCE(u.unionid, ''))`
	identitiesSearchText = `(i.openid || E'\x01' || COALESCE(i.unionid, ''))`
)

// Search orders.
const (
	SortCreatedDesc   = "-created_at"
	SortCreatedAsc    = "created_at"
	SortLastLoginDesc = "-last_login_at"
	SortLastLoginAsc  = "last_login_at"
)

var searchOrders = map[string]string{
	SortCreatedDesc:   `u.created_at DESC, u.id`,
	SortCreatedAsc:    `u.created_at, u.id DESC`,
	SortLastLoginDesc: `u.last_login_at DESC NULLS LAST, u.id`,
	SortLastLoginAsc:  `u.last_login_at NULLS FIRST, u.id`,
}

// ValidSort reports whether sort is one of the search orders.
func ValidSort(sort string) bool { _, ok := searchOrders[sort]; return ok }

// SearchCountCap bounds the count of a search: counting every one of a
// hundred thousand matches would cost more than the page itself. Beyond it
// the total is the cap and capped is true.
const SearchCountCap = 1_000

// Search is one page of an admin search.
type Search struct {
	Q      string // "" lists everybody
	Sort   string // one of the Sort constants; "" is SortCreatedDesc
	Limit  int
	Offset int
}

// SearchUsers returns one page of the users matching q, in the order asked,
// and how many match (capped at SearchCountCap): the users that q
// identifies exactly (exactBranches) if any, else those it matches as a
// substring (searchBranches).
func (s *Store) SearchUsers(ctx context.Context, in Search) (users []User, total int, capped bool, err error) {
	order, ok := searchOrders[in.Sort]
	if in.Sort == "" {
		order, ok = searchOrders[SortCreatedDesc], true
	}
	if !ok {
		return nil, 0, false, fmt.Errorf("search: unknown order %q", in.Sort)
	}
	var branches []string
	var args []any
	if in.Q != "" {
		branches, args = exactBranches, []any{in.Q}
		if total, capped, err = s.countSearch(ctx, branches, args); err != nil {
			return nil, 0, false, err
		}
	}
	if total == 0 {
		branches, args = searchBranches(in.Q)
		if total, capped, err = s.countSearch(ctx, branches, args); err != nil {
			return nil, 0, false, err
		}
	}
	if total == 0 || (!capped && in.Offset >= total) {
		return []User{}, total, capped, nil
	}
	// Each branch's first offset+limit in the order, then the page of their
	// union: every branch can walk the order's index (a broad match) or sort
	// its few matches (a narrow one), whichever its own estimate favours.
	n := len(args)
	parts := make([]string, len(branches))
	for i, b := range branches {
		parts[i] = fmt.Sprintf(`(SELECT u.* FROM %s ORDER BY %s LIMIT $%d)`, b, order, n+1)
	}
	rows, err := s.db.QueryxContext(ctx, fmt.Sprintf(`SELECT %s FROM (%s) AS u ORDER BY %s LIMIT $%d OFFSET $%d`,
		selectUser("u."), strings.Join(parts, " UNION "), order, n+2, n+3), append(args, in.Offset+in.Limit, in.Limit, in.Offset)...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	users = []User{}
	for rows.Next() {
		var u User
		if err := rows.Scan(u.dest()...); err != nil {
			return nil, 0, false, fmt.Errorf("search users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("search users: %w", err)
	}
	return users, total, capped, nil
}

// countSearch counts the users of the branches up to SearchCountCap: each
// branch stops at one more than the cap, so a broad match costs no more.
func (s *Store) countSearch(ctx context.Context, branches []string, args []any) (int, bool, error) {
	parts := make([]string, len(branches))
	for i, b := range branches {
		parts[i] = fmt.Sprintf(`(SELECT u.id FROM %s LIMIT %d)`, b, SearchCountCap+1)
	}
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(DISTINCT id) FROM (`+strings.Join(parts, " UNION ALL ")+`) AS m`, args...); err != nil {
		return 0, false, fmt.Errorf("count users: %w", err)
	}
	return min(total, SearchCountCap), total > SearchCountCap, nil
}

// exactBranches find the users one of whose phone number, openid or
// unionid is $1, through their own indexes. When there are any, they are
// the answer: a value that identifies a user is what was searched for (a
// username is not: "alice" should find alice2 too).
var exactBranches = []string{
	`users AS u WHERE u.phone_number = $1 AND u.phone_number <> '' OR u.unionid = $1`,
	`users AS u JOIN identities AS i ON i.user_id = u.id WHERE i.openid = $1 OR i.unionid = $1`,
}

// searchBranches are the FROM clauses (over users AS u) whose users match q
// as a substring, and their arguments. From 3 characters on, of any field
// through the trigram indexes; of 2 (a Chinese given name, 小明: no trigram
// to look up), of the nickname through its character-pair index; of 1, of
// any field by walking the order's index (most users match anyway).
func searchBranches(q string) ([]string, []any) {
	switch utf8.RuneCountInString(q) {
	case 0:
		return []string{`users AS u`}, nil
	case 2:
		return []string{`users AS u WHERE wxlogin_bigrams(u.nickname) @> ARRAY[lower($1)]`}, []any{q}
	}
	return []string{
		`users AS u WHERE ` + usersSearchText + ` ILIKE $1 ESCAPE '\'`,
		`users AS u JOIN identities AS i ON i.user_id = u.id WHERE ` + identitiesSearchText + ` ILIKE $1 ESCAPE '\'`,
	}, []any{"%" + escapeLike(q) + "%"}
}

// escapeLike makes s match itself literally in a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// IsActiveAdmin reports whether the user is an administrator that is not
// disabled. Unknown or malformed ids are not.
func (s *Store) IsActiveAdmin(ctx context.Context, userID string) (bool, error) {
	if !api.ValidID(userID) {
		return false, nil
	}
	var admin bool
	err := s.db.GetContext(ctx, &admin, `SELECT is_admin AND disabled_at IS NULL FROM users WHERE id = $1`, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is admin: %w", err)
	}
	return admin, nil
}

// qSetDisabled changes disabled_at only if the state changes, with a
// user.updated event. $1 id, $2 disabled, $3 event id.
var qSetDisabled = `
WITH usr AS (
	UPDATE users AS u SET
		disabled_at = CASE WHEN $2::boolean THEN now() END,
		updated_at = now()
	WHERE u.id = $1 AND (u.disabled_at IS NOT NULL) <> $2::boolean
	RETURNING u
)
INSERT INTO outbox (id, subject, payload)
SELECT $3::uuid, '` + identity.SubjectUserUpdated + `', wxlogin_user_event($3::uuid, '` + identity.EventUserUpdated + `', usr.u, NULL::identities)
FROM usr`
