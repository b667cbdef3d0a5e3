-- +goose Up
-- The admin search (issue 4): exact openid lookups (the unique key leads
-- with appid, so it cannot serve them) and the listing order. The substring
-- matches on username, nickname, email and phone scan users; fine for an
-- admin screen at our sizes (pg_trgm indexes would serve them at scale).
CREATE INDEX identities_openid_idx ON identities (openid);
CREATE INDEX users_created_at_idx ON users (created_at DESC, id);

-- +goose Down
DROP INDEX users_created_at_idx;
DROP INDEX identities_openid_idx;
