-- Creates erp.deb_master of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS erp.deb_master (
    dr_cust_code          text PRIMARY KEY,
    dr_cust_name          text NOT NULL,
    dr_cust_type          text NOT NULL DEFAULT '',
    dr_email              text,
    dr_phone              text,
    dr_addr_1             text,
    dr_addr_2             text,
    dr_addr_3             text,
    dr_addr_4             text,
    dr_addr_5             text,
    dr_addr_6             text,
    dr_postcode           text,
    dr_abn                text,
    dr_industry_code      text,
    dr_price_code         text,
    dr_tax_code           text,
    dr_territory          text,
    dr_credit_limit       numeric(14,2),
    dr_account_status     text NOT NULL DEFAULT 'A',
    dr_date_created       timestamptz NOT NULL DEFAULT now(),
    dr_date_last_changed  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deb_master_last_changed_idx ON erp.deb_master (dr_date_last_changed);
