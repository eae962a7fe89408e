-- Creates web.customer_conversion of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.customer_conversion (
    conversion_seq   bigint PRIMARY KEY,
    old_code         text NOT NULL,
    new_code         text NOT NULL,
    conversion_date  timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    outcome          text,
    detail           text
);
