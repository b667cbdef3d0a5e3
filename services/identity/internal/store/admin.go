package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// ErrLastAdmin: the change would leave no enabled administrator.
var ErrLastAdmin = errors.New("last administrator")

// Audit is one admin_audit row. ActorID is "" for the command line.
type Audit struct {
	ID       string          `db:"id"`
	At       time.Time       `db:"at"`
	ActorID  string          `db:"actor_id"`
	Action   string          `db:"action"`
	TargetID string          `db:"target_id"`
	Detail   json.RawMessage `db:"detail"`
}

// qAudit writes an audit row and its admin event in one statement.
// $1 audit id, $2 actor or NULL, $3 action, $4 target or NULL, $5 detail,
// $6 event id.
const qAudit = `
WITH a AS (
	INSERT INTO admin_audit (id, actor_id, action, target_id, detail)
	VALUES ($1::uuid, $2::uuid, $3::text, $4::uuid, $5::jsonb)
	RETURNING *
)
INSERT INTO outbox (id, subject, payload)
SELECT $6::uuid, '` + identity.SubjectAdminEventPrefix + `' || a.action, jsonb_build_object(
	'id', $6::uuid, 'type', 'admin.' || a.action, 'occurred_at', a.at,
	'audit_id', a.id, 'actor_id', a.actor_id, 'action', a.action, 'target_id', a.target_id, 'detail', a.detail)
FROM a`

// audit writes one audit row (and its event) inside tx and returns its id.
func audit(ctx context.Context, tx sqlx.ExecerContext, actorID, action, targetID string, detail any) (string, error) {
	d, err := json.Marshal(detail)
	if err != nil {
		return "", fmt.Errorf("audit detail: %w", err)
	}
	if detail == nil {
		d = []byte(`{}`)
	}
	id := newEventID()
	if _, err := tx.ExecContext(ctx, qAudit, id, nullIfEmpty(actorID), action, nullIfEmpty(targetID), d, newEventID()); err != nil {
		return "", fmt.Errorf("write audit: %w", err)
	}
	return id, nil
}

// RecordAudit writes an audit row for an action done outside Postgres (a
// session revocation): the caller writes it first and then acts.
func (s *Store) RecordAudit(ctx context.Context, actorID, action, targetID string, detail any) (string, error) {
	if (actorID != "" && !api.ValidID(actorID)) || (targetID != "" && !api.ValidID(targetID)) {
		return "", ErrNotFound
	}
	return audit(ctx, s.db, actorID, action, targetID, detail)
}

// AuditFilter narrows the audit log; "" fields do not filter.
type AuditFilter struct {
	ActorID, TargetID, Action string
}

// auditCountCap bounds the count of an audit listing.
const auditCountCap = 10_000

// ListAudit returns one page of the audit log, newest first, and how many
// rows match (at most auditCountCap: beyond it the count says so, capped).
func (s *Store) ListAudit(ctx context.Context, f AuditFilter, limit, offset int) ([]Audit, int, bool, error) {
	if (f.ActorID != "" && !api.ValidID(f.ActorID)) || (f.TargetID != "" && !api.ValidID(f.TargetID)) {
		return []Audit{}, 0, false, nil
	}
	where := `($1::uuid IS NULL OR actor_id = $1::uuid) AND ($2::uuid IS NULL OR target_id = $2::uuid) AND ($3::text IS NULL OR action = $3::text)`
	args := []any{nullIfEmpty(f.ActorID), nullIfEmpty(f.TargetID), nullIfEmpty(f.Action)}
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM (SELECT 1 FROM admin_audit WHERE `+where+` LIMIT $4) AS m`,
		append(args, auditCountCap+1)...); err != nil {
		return nil, 0, false, fmt.Errorf("count audit: %w", err)
	}
	capped := total > auditCountCap
	total = min(total, auditCountCap)
	rows := []Audit{}
	if total == 0 || offset >= total {
		return rows, total, capped, nil
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT id, at, COALESCE(actor_id::text, '') AS actor_id, action,
		COALESCE(target_id::text, '') AS target_id, detail
		FROM admin_audit WHERE `+where+` ORDER BY at DESC, seq DESC LIMIT $4 OFFSET $5`, append(args, limit, offset)...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("list audit: %w", err)
	}
	return rows, total, capped, nil
}

// adminsLock serializes every change that could remove the last
// administrator (grant/revoke, disable), so two of them cannot each count
// the other's admin as remaining.
const adminsLock = `SELECT pg_advisory_xact_lock(hashtext('wxlogin.admins'))`

// othersAdmin reports whether an enabled admin other than userID remains.
func othersAdmin(ctx context.Context, tx *sqlx.Tx, userID string) (bool, error) {
	var n bool
	err := tx.GetContext(ctx, &n, `SELECT EXISTS (SELECT 1 FROM users WHERE is_admin AND disabled_at IS NULL AND id <> $1)`, userID)
	if err != nil {
		return false, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// SetUserAdmin grants or revokes admin rights of user userID on behalf of
// actorID, with the audit row and its event in the same transaction.
// ErrNotFound; ErrLastAdmin when revoking the last enabled administrator.
// Returns the user with its identities.
func (s *Store) SetUserAdmin(ctx context.Context, actorID, userID string, admin bool) (User, error) {
	if !api.ValidID(userID) {
		return User{}, ErrNotFound
	}
	if _, err := s.setAdmin(ctx, actorID, `id = $1`, userID, admin, true); err != nil {
		return User{}, err
	}
	return s.GetUser(ctx, userID)
}

// SetAdmin grants or revokes admin rights by username for the identity
// command line (audited with no actor). It is the operator's way back in,
// so it may revoke the last administrator. ErrNotFound if no such username.
func (s *Store) SetAdmin(ctx context.Context, username string, admin bool) error {
	_, err := s.setAdmin(ctx, "", `username = $1`, username, admin, false)
	return err
}

// setAdmin sets is_admin of the user that where (on $1 = key) selects,
// audited; guardLast refuses to revoke the last enabled administrator.
func (s *Store) setAdmin(ctx context.Context, actorID, where, key string, admin, guardLast bool) (string, error) {
	var userID string
	err := s.inTx(ctx, nil, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, adminsLock); err != nil {
			return fmt.Errorf("lock admins: %w", err)
		}
		var was, enabled bool
		err := tx.QueryRowxContext(ctx, `SELECT id, is_admin, disabled_at IS NULL FROM users WHERE `+where+` FOR UPDATE`, key).Scan(&userID, &was, &enabled)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		if guardLast && !admin && was && enabled {
			others, err := othersAdmin(ctx, tx, userID)
			if err != nil {
				return err
			}
			if !others {
				return ErrLastAdmin
			}
		}
		if was != admin {
			if err := setAdminEvent(ctx, tx, userID, admin); err != nil {
				return err
			}
		}
		action := identity.AuditUserGrantAdmin
		if !admin {
			action = identity.AuditUserRevokeAdmin
		}
		_, err = audit(ctx, tx, actorID, action, userID, map[string]bool{"changed": was != admin})
		return err
	})
	return userID, err
}

// setAdminEvent flips is_admin with a user.updated event.
func setAdminEvent(ctx context.Context, tx *sqlx.Tx, userID string, admin bool) error {
	_, err := tx.ExecContext(ctx, `
WITH usr AS (
	UPDATE users AS u SET is_admin = $2, updated_at = now() WHERE u.id = $1 RETURNING u
)
INSERT INTO outbox (id, subject, payload)
SELECT $3::uuid, '`+identity.SubjectUserUpdated+`', wxlogin_user_event($3::uuid, '`+identity.EventUserUpdated+`', usr.u, NULL::identities)
FROM usr`, userID, admin, newEventID())
	if err != nil {
		return fmt.Errorf("set admin: %w", err)
	}
	return nil
}

// SetDisabled disables or re-enables the user on behalf of actorID ("" for
// none), with a user.updated event when the state changes and an audit row
// either way, in one transaction. Disabling the last enabled administrator
// is ErrLastAdmin. Returns the user with its identities; ErrNotFound.
func (s *Store) SetDisabled(ctx context.Context, actorID, userID string, disabled bool) (User, error) {
	if !api.ValidID(userID) {
		return User{}, ErrNotFound
	}
	err := s.inTx(ctx, nil, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, adminsLock); err != nil {
			return fmt.Errorf("lock admins: %w", err)
		}
		var isAdmin, was bool
		err := tx.QueryRowxContext(ctx, `SELECT is_admin, disabled_at IS NOT NULL FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&isAdmin, &was)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		if disabled && !was && isAdmin {
			others, err := othersAdmin(ctx, tx, userID)
			if err != nil {
				return err
			}
			if !others {
				return ErrLastAdmin
			}
		}
		if _, err := tx.ExecContext(ctx, qSetDisabled, userID, disabled, newEventID()); err != nil {
			return fmt.Errorf("set disabled: %w", err)
		}
		action := identity.AuditUserEnable
		if disabled {
			action = identity.AuditUserDisable
		}
		_, err = audit(ctx, tx, actorID, action, userID, map[string]bool{"changed": was != disabled})
		return err
	})
	if err != nil {
		return User{}, err
	}
	return s.GetUser(ctx, userID)
}

// Stats are the dashboard figures.
type Stats struct {
	UsersTotal    int            `db:"users_total"`
	UsersNew24h   int            `db:"users_new_24h"`
	UsersNew7d    int            `db:"users_new_7d"`
	UsersDisabled int            `db:"users_disabled"`
	Logins24h     map[string]int `db:"-"`
}

// Stats counts users (one scan of users: an admin screen, not a hot path,
// and no column a login writes gets an index for it) and sums the login
// counts of the last 24 hours by kind.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	// created_at's index answers the two "new" counts; the total and the
	// disabled count take one pass over the table.
	err := s.db.GetContext(ctx, &st, `SELECT
		(SELECT count(*) FROM users) AS users_total,
		(SELECT count(*) FROM users WHERE created_at > now() - interval '24 hours') AS users_new_24h,
		(SELECT count(*) FROM users WHERE created_at > now() - interval '7 days') AS users_new_7d,
		(SELECT count(*) FROM users WHERE disabled_at IS NOT NULL) AS users_disabled`)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	rows, err := s.db.QueryxContext(ctx, `SELECT kind, sum(n) FROM login_counts
		WHERE minute > now() - interval '24 hours' GROUP BY kind`)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: logins: %w", err)
	}
	defer rows.Close()
	st.Logins24h = map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return Stats{}, fmt.Errorf("stats: logins: %w", err)
		}
		st.Logins24h[kind] = n
	}
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("stats: logins: %w", err)
	}
	return st, nil
}
