-- Creates web.order_history of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.order_history (
    order_no       text PRIMARY KEY,
    customer_code  text NOT NULL,
    user_id        bigint,
    order_date     timestamptz NOT NULL,
    source         text NOT NULL,
    status         text NOT NULL,
    total          numeric(14,2) NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS order_history_code_idx ON web.order_history (customer_code);
