-- Creates web.user_customer of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.user_customer (
    user_id                bigint NOT NULL,
    customer_code          text NOT NULL,
    initial_role           text,
    hide_in_account_select boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, customer_code)
);
CREATE INDEX IF NOT EXISTS user_customer_code_idx ON web.user_customer (customer_code);
