-- Creates erp.deb_conversion of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS erp.deb_conversion (
    conversion_seq   bigint PRIMARY KEY,
    old_cust_code    text NOT NULL,
    new_cust_code    text NOT NULL,
    conversion_date  timestamptz NOT NULL DEFAULT now()
);
