-- Creates web.verification_token of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.verification_token (
    token_hash  text PRIMARY KEY,
    user_id     bigint NOT NULL,
    purpose     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
