-- Creates erp.crm_contact of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS erp.crm_contact (
    contact_id                 bigint PRIMARY KEY,
    contact_email              text,
    contact_first_name         text,
    contact_surname            text,
    contact_phone              text,
    contact_active             boolean NOT NULL DEFAULT true,
    contact_date_last_changed  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_contact_last_changed_idx ON erp.crm_contact (contact_date_last_changed);
