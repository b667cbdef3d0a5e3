-- +goose NO TRANSACTION
-- The admin console (issue 12): the audit log, per-minute login counts,
-- and the indexes that keep the user search fast at a million users.
--
-- No transaction, so the indexes build CONCURRENTLY: on a live users table a
-- plain CREATE INDEX would block every login for the whole build. Every
-- statement is IF NOT EXISTS, so a migration cut short runs again cleanly.
--
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may
-- create it without being a superuser. If the service's role cannot, an
-- operator runs `CREATE EXTENSION pg_trgm` in the database once beforehand.
--
-- Nothing here indexes a column every login writes (last_login_at,
-- updated_at, session_key): a returning login stays a HOT update.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- One row per admin action, written in the transaction of the action itself
-- (session revocations, which live in NATS KV, write it just before).
CREATE TABLE IF NOT EXISTS admin_audit (
    id        uuid        PRIMARY KEY,
    -- seq orders the rows of one transaction, which share "at".
    seq       bigint      GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL DEFAULT now(),
    -- NULL: the identity command line, which has no user behind it.
    actor_id  uuid,
    action    text        NOT NULL,
    target_id uuid,
    detail    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_at_idx ON admin_audit (at DESC, seq DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_actor_idx ON admin_audit (actor_id, at DESC, seq DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_target_idx ON admin_audit (target_id, at DESC, seq DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_action_idx ON admin_audit (action, at DESC, seq DESC);

-- Logins per minute and kind, added by the outbox relay as it publishes the
-- user.logged_in events: off the login's own path, exactly once per event
-- (in the transaction that marks it published). The dashboard sums the last
-- 24 hours of it.
CREATE TABLE IF NOT EXISTS login_counts (
    minute timestamptz NOT NULL,
    kind   text        NOT NULL,
    n      bigint      NOT NULL,
    PRIMARY KEY (minute, kind)
);

-- The search: one trigram index per table over every searchable field,
-- joined by U+0001 (a control character no search text may contain, so no
-- match can straddle two fields). The expressions are the store's
-- usersSearchText and identitiesSearchText; a test holds them together.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_search_trgm_idx ON users USING gin (
    (username || E'\x01' || nickname || E'\x01' || email || E'\x01' || phone_number || E'\x01' || COALESCE(unionid, ''))
    gin_trgm_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS identities_search_trgm_idx ON identities USING gin (
    (openid || E'\x01' || COALESCE(unionid, ''))
    gin_trgm_ops);
-- The enabled administrators, counted before one loses the role.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_admins_idx ON users (id) WHERE is_admin;
-- Exact phone lookups (openid and unionid have theirs already).
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_phone_number_idx ON users (phone_number) WHERE phone_number <> '';

-- +goose Down
DROP INDEX IF EXISTS users_phone_number_idx;
DROP INDEX IF EXISTS users_admins_idx;
DROP INDEX IF EXISTS identities_search_trgm_idx;
DROP INDEX IF EXISTS users_search_trgm_idx;
DROP TABLE IF EXISTS login_counts;
DROP TABLE IF EXISTS admin_audit;
