-- Creates web.customer of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.customer (
    customer_code           text PRIMARY KEY,
    name                    text NOT NULL,
    order_email_address     text,
    address1                text,
    address2                text,
    address3                text,
    address4                text,
    address5                text,
    address6                text,
    postcode                text,
    phone_number            text,
    abn                     text,
    industry_code           text,
    status                  text NOT NULL DEFAULT 'Active',
    is_debtor_customer      boolean NOT NULL DEFAULT false,
    is_cash_account         boolean NOT NULL DEFAULT false,
    auto_part_registration  boolean NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
