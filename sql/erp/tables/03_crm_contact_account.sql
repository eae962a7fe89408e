-- Creates erp.crm_contact_account of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS erp.crm_contact_account (
    contact_id    bigint NOT NULL,  -- a crm_contact
    dr_cust_code  text NOT NULL,    -- a deb_master debtor; no foreign key, so that the ERP may delete debtors freely
    PRIMARY KEY (contact_id, dr_cust_code)
);
CREATE INDEX IF NOT EXISTS crm_contact_account_code_idx ON erp.crm_contact_account (dr_cust_code);
