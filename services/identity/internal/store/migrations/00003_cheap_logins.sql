-- +goose Up
-- A returning WeChat login writes one row: its identity (session_key,
-- last_login_at). The users row is written only when the profile or the
-- unionid really changes (users.last_login_at is then set too, as by first
-- and password logins); a WeChat identity's latest login is
-- identities.last_login_at. Neither table indexes a column a login changes,
-- and the free room fillfactor leaves on each page lets those updates be
-- HOT (no index entry, the new version on the same page). The setting
-- applies to pages written from now on.
ALTER TABLE identities ADD COLUMN last_login_at timestamptz;
UPDATE identities AS i SET last_login_at = u.last_login_at FROM users AS u WHERE u.id = i.user_id;
ALTER TABLE identities SET (fillfactor = 70);
ALTER TABLE users SET (fillfactor = 80);
-- The relay deletes what it published instead of marking it (one write per
-- event, not two, and no index to keep on published_at). A row a relay of
-- the previous version marks during a rolling upgrade is left behind,
-- published and never looked at again.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_published_idx;

-- +goose Down
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
ALTER TABLE users RESET (fillfactor);
ALTER TABLE identities RESET (fillfactor);
ALTER TABLE identities DROP COLUMN last_login_at;
