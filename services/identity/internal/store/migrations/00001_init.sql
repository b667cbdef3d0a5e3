-- +goose Up
-- +goose StatementBegin
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text        NOT NULL,
    -- NULL for WeChat-only accounts: they have no usable password.
    password_hash text,
    nickname      text        NOT NULL DEFAULT '',
    avatar_url    text        NOT NULL DEFAULT '',
    gender        smallint    NOT NULL DEFAULT 0 CHECK (gender BETWEEN 0 AND 2),
    language      text        NOT NULL DEFAULT '',
    city          text        NOT NULL DEFAULT '',
    province      text        NOT NULL DEFAULT '',
    country       text        NOT NULL DEFAULT '',
    phone_number  text        NOT NULL DEFAULT '',
    email         text        NOT NULL DEFAULT '',
    date_of_birth date,
    description   text        NOT NULL DEFAULT '',
    unionid       text,
    is_admin      boolean     NOT NULL DEFAULT false,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    CONSTRAINT users_username_key UNIQUE (username)
);
-- The arbiter of ON CONFLICT (unionid) WHERE unionid IS NOT NULL.
CREATE UNIQUE INDEX users_unionid_key ON users (unionid) WHERE unionid IS NOT NULL;
-- Case-insensitive exact and prefix lookups of the admin search.
CREATE INDEX users_username_lower_idx ON users (lower(username) text_pattern_ops);

CREATE TABLE identities (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider    text        NOT NULL DEFAULT 'wechat',
    kind        text        NOT NULL CHECK (kind IN ('miniprogram', 'web')),
    appid       text        NOT NULL,
    openid      text        NOT NULL,
    unionid     text,
    -- The WeChat session_key: a secret that never leaves this table.
    session_key text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT identities_appid_openid_key UNIQUE (appid, openid)
);
CREATE INDEX identities_unionid_idx ON identities (unionid) WHERE unionid IS NOT NULL;
CREATE INDEX identities_user_id_idx ON identities (user_id);

CREATE TABLE outbox (
    id           uuid        PRIMARY KEY,
    -- seq orders the events of one transaction (user.created before user.logged_in),
    -- which share created_at.
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    subject      text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (created_at, seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- wxlogin_user_event builds the body of a user event (docs/nats.md, Events) in
-- the statement that changes the user, so a login needs no extra round trip
-- to write its event. "user" has the shape of api.User without identities,
-- its omitempty fields left out when empty (a test holds the two together);
-- no secret column is read.
CREATE FUNCTION wxlogin_user_event(event_id uuid, event_type text, u users, i identities)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'id', event_id,
        'type', event_type,
        'occurred_at', now(),
        'user', jsonb_build_object(
            'id', u.id,
            'username', u.username,
            'nickname', u.nickname,
            'avatar_url', u.avatar_url,
            'gender', u.gender,
            'language', u.language,
            'city', u.city,
            'province', u.province,
            'country', u.country,
            'phone_number', u.phone_number,
            'email', u.email,
            'created_at', u.created_at
        ) || jsonb_strip_nulls(jsonb_build_object(
            'date_of_birth', to_char(u.date_of_birth, 'YYYY-MM-DD'),
            'description', NULLIF(u.description, ''),
            'is_admin', CASE WHEN u.is_admin THEN true END,
            'disabled_at', u.disabled_at
        )),
        'identity', CASE WHEN i IS NULL THEN NULL ELSE jsonb_build_object(
            'id', i.id,
            'kind', i.kind,
            'appid', i.appid,
            'openid', i.openid,
            'unionid', i.unionid
        ) END
    )
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION wxlogin_user_event(uuid, text, users, identities);
DROP TABLE outbox;
DROP TABLE identities;
DROP TABLE users;
-- +goose StatementEnd
