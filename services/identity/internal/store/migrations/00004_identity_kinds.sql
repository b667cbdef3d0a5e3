-- +goose Up
-- Issue 11: identities of an official account (the in-WeChat browser and the
-- follow-to-log-in QR code) and of a native mobile app.
ALTER TABLE identities DROP CONSTRAINT identities_kind_check;
ALTER TABLE identities ADD CONSTRAINT identities_kind_check
    CHECK (kind IN ('miniprogram', 'web', 'officialaccount', 'app'));

-- +goose Down
DELETE FROM identities WHERE kind IN ('officialaccount', 'app');
ALTER TABLE identities DROP CONSTRAINT identities_kind_check;
ALTER TABLE identities ADD CONSTRAINT identities_kind_check
    CHECK (kind IN ('miniprogram', 'web'));
